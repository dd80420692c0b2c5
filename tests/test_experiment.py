"""`minitx experiment positions` end to end: a tiny experiment, its report, and resuming it."""

from __future__ import annotations

import json
import os
import signal

import pytest
from typer.testing import CliRunner

from minitx.cli import app

runner = CliRunner()
TINY = ["--steps", "20", "--layers", "1", "--dim", "32", "--block-size", "32", "--corpus-bytes", "80000",
        "--pairs", "30", "--stories", "3", "--vocab-size", "300", "--quiet"]


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "exp"
    result = run("experiment", "positions", "--out", out, "--kinds", "rope,learned", "--seeds", "1", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    return out, result.output


@pytest.mark.slow  # the lab trains models
def test_tiny_experiment_writes_a_report_with_every_field(experiment):
    from minitx.corpus.pairs import PHENOMENA
    from minitx.experiments.report import REPORT_FIELDS, ROW_FIELDS

    out, output = experiment
    report = json.loads((out / "report.json").read_text())
    assert set(REPORT_FIELDS) <= set(report)
    assert report["kinds"] == ["rope", "learned"] and report["seeds"] == 1
    for kind in ("rope", "learned"):
        row = report["rows"][kind]
        assert set(ROW_FIELDS) <= set(row)
        for key in ROW_FIELDS:
            if key != "grammar_errors":
                assert set(row[key]) == {"mean", "spread", "values"} and len(row[key]["values"]) == 1
        assert set(row["pairs_adjective_order"]) and all(f"pairs_{p}" in row for p in PHENOMENA)
    assert report["rows"]["learned"]["extrapolation_2x"]["mean"] is None  # refused, not invented
    assert report["rows"]["rope"]["extrapolation_2x"]["mean"] > 0
    (lab,) = [r for r in report["runs"] if r["kind"] == "rope"]
    assert {"val_loss", "val_bpb", "curve", "minimal_pairs", "order_test", "grammar", "extrapolation",
            "train_seconds", "eval_seconds"} <= set(lab)
    assert lab["minimal_pairs"]["total"] == 30 and lab["curve"][-1]["step"] == 20
    assert report["findings"] and all(isinstance(s, str) and s.endswith(".") for s in report["findings"])
    markdown = (out / "report.md").read_text()
    assert "| rope |" in markdown and "## What the table shows" in markdown
    from minitx.experiments.plots import plot_available

    assert plot_available() or not os.environ.get("CI"), "CI installs the plot extra: the PNGs must be tested"
    assert report["pictures"] == (["curves.png", "metrics.png"] if plot_available() else [])
    for picture in report["pictures"]:
        assert (out / picture).read_bytes().startswith(b"\x89PNG")
    assert "run 2/2: learned" in output


@pytest.mark.slow  # the lab trains models
def test_rerunning_a_finished_experiment_reuses_every_run(experiment):
    out, _ = experiment
    weights = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/**/model.safetensors")}
    assert len(weights) == 2
    result = run("experiment", "positions", "--out", out, "--kinds", "rope,learned", "--seeds", "1", *TINY)
    assert result.exit_code == 0, result.output
    assert result.output.count("done, reused") == 2
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/**/model.safetensors")} == weights


@pytest.mark.slow  # the lab trains models
def test_a_report_file_changed_since_the_lab_wrote_it_is_refused_without_force(experiment):
    out, _ = experiment
    args = ["experiment", "positions", "--out", out, "--kinds", "rope,learned", "--seeds", "1", *TINY]
    lab_wrote = (out / "report.md").read_text()
    (out / "report.md").write_text(lab_wrote + "\nmy notes\n")
    refused = run(*args)
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "report.md was changed since the lab wrote it" in refused.stderr and "--force" in refused.stderr
    assert "done, reused" not in refused.output  # refused before any work
    assert (out / "report.md").read_text() == lab_wrote + "\nmy notes\n"
    forced = run(*args, "--force")
    assert forced.exit_code == 0, forced.output + forced.stderr
    assert "my notes" not in (out / "report.md").read_text()
    assert run(*args).exit_code == 0  # its own report again: rewritten without --force


@pytest.mark.slow  # the lab trains models
def test_more_seeds_add_runs_and_fewer_kinds_report_on_a_subset(experiment):
    out, _ = experiment
    subset = run("experiment", "positions", "--out", out, "--kinds", "rope", "--seeds", "1", *TINY)
    assert subset.exit_code == 0 and subset.output.count("done, reused") == 1
    assert json.loads((out / "report.json").read_text())["kinds"] == ["rope"]
    more = run("experiment", "positions", "--out", out, "--kinds", "rope", "--seeds", "2", *TINY)
    assert more.exit_code == 0 and more.output.count("done, reused") == 1 and "seed 1 · training" in more.output
    assert json.loads((out / "report.json").read_text())["rows"]["rope"]["val_bpb"]["values"][1] > 0


@pytest.mark.slow  # the lab trains models
def test_other_settings_in_the_same_directory_are_refused(experiment):
    out, _ = experiment
    args = [a if a != "20" else "40" for a in TINY]
    result = run("experiment", "positions", "--out", out, "--kinds", "rope,learned", "--seeds", "1", *args)
    assert result.exit_code == 2 and "other settings" in result.stderr and "train" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # the lab trains models
def test_eval_measures_on_a_run_and_learned_refuses_extrapolation(experiment):
    out, _ = experiment
    result = run("eval", out / "runs" / "rope-seed0", "--minimal-pairs", "12", "--order-test", "--context", "64",
                 "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["minimal_pairs"]["total"] == 12 and len(data["minimal_pairs"]["by_phenomenon"]) == 6
    assert {"words", "sentences"} <= set(data["order_test"])
    assert [b["start"] for b in data["extrapolation"]["buckets"]] == [0, 32]
    refused = run("eval", out / "runs" / "learned-seed0", "--context", "64")
    assert refused.exit_code == 2 and "learned positions" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.output
    quantized = run("eval", out / "runs" / "rope-seed0", "--context", "64", "--quantize", "int8")
    assert quantized.exit_code == 2 and "--quantize" in quantized.stderr


@pytest.mark.slow  # the lab trains models
def test_an_interrupted_experiment_resumes_without_retraining_finished_runs(tmp_path, monkeypatch):
    from minitx.experiments.positions import PositionsExperiment, run_experiment
    from minitx.training.loop import Trainer

    experiment = PositionsExperiment(kinds=["none", "alibi"], seeds=1,
                                     model={"n_layers": 1, "n_heads": 2, "dim": 32, "block_size": 32},
                                     train={"steps": 20, "batch_size": 8, "eval_every": 10, "save_every": 5,
                                            "threads": 1},
                                     vocab_size=300, corpus_bytes=60_000)
    experiment.lab = type(experiment.lab)(pairs=12, stories=2, order_documents=30, extrapolation_windows=10)
    original_step = Trainer.train_step

    def ctrl_c_in_the_second_run(self):  # the user presses Ctrl-C at step 12 of run 2
        loss = original_step(self)
        if self.model_config.pos == "alibi" and self.step == 12:
            signal.raise_signal(signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_in_the_second_run)
    first = run_experiment(tmp_path, experiment, show_progress=False)
    assert not first.finished and [r["kind"] for r in first.runs] == ["none"]
    from minitx import rundir

    checkpoint = rundir.latest_checkpoint(tmp_path / "runs" / "alibi-seed0")
    assert json.loads((checkpoint / rundir.TRAINER_STATE).read_text())["step"] == 12  # saved at the Ctrl-C
    from minitx.experiments.report import build_report

    partial = build_report(experiment.to_dict(), first.runs, first.seconds, [], partial=True)
    assert partial["partial"] and partial["rows"]["alibi"]["val_bpb"]["mean"] is None
    assert partial["rows"]["none"]["val_bpb"]["mean"] > 0 and any("1 seed per kind" in s for s in partial["findings"])
    finished = rundir.latest_checkpoint(tmp_path / "runs" / "none-seed0")
    finished_weights = (finished / rundir.WEIGHTS).stat().st_mtime_ns

    monkeypatch.setattr(Trainer, "train_step", original_step)
    states = []

    class Record:
        def preparing(self, what): ...
        def measuring(self, status): ...
        def run_done(self, status, lab): ...
        def run_started(self, index, total, status, eta):
            states.append((status.name, status.state))

    second = run_experiment(tmp_path, experiment, Record(), show_progress=False)
    assert second.finished and states == [("none-seed0", "measured"), ("alibi-seed0", "partial")]
    assert rundir.latest_checkpoint(tmp_path / "runs" / "none-seed0") == finished
    assert (finished / rundir.WEIGHTS).stat().st_mtime_ns == finished_weights
    metrics_file = tmp_path / "runs" / "alibi-seed0" / "metrics.jsonl"
    metrics = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20]
    assert [r["kind"] for r in second.runs] == ["none", "alibi"]


def _row(**metrics):
    from minitx.experiments.report import ROW_FIELDS

    row = {key: {"mean": None, "spread": None, "values": []} for key in ROW_FIELDS}
    row["grammar_errors"] = {}
    for key, (mean, spread) in metrics.items():
        row[key] = {"mean": mean, "spread": spread, "values": [mean - spread, mean + spread]}
    return row


def test_findings_say_which_differences_exceed_the_spread_and_which_are_noise():
    from minitx.experiments.report import findings

    rows = {
        "rope": _row(val_bpb=(1.00, 0.01), pairs_accuracy=(0.90, 0.02)),
        "alibi": _row(val_bpb=(1.01, 0.01), pairs_accuracy=(0.89, 0.02)),
        "none": _row(val_bpb=(1.20, 0.01), pairs_accuracy=(0.88, 0.02)),
    }
    text = findings(rows, seeds=2)
    (bpb,) = [s for s in text if s.startswith("Val bits/byte")]
    assert "rope is lowest" in bpb and "none highest" in bpb and "more than the spread" in bpb
    assert "alibi cannot be told apart from rope" in bpb
    (pairs,) = [s for s in text if s.startswith("Minimal pairs")]
    assert "within the spread" in pairs and "No kind can be told apart from rope" in pairs
    rows["none"]["val_bpb"] = {"mean": 1.005, "spread": 0.01, "values": [0.995, 1.015]}
    (bpb,) = [s for s in findings(rows, seeds=2) if s.startswith("Val bits/byte")]
    assert "within the spread" in bpb
    assert any("one seed" in s for s in findings(rows, seeds=1))


def test_checker_reasons_are_grouped_into_error_kinds():
    from minitx.experiments.measure import error_kind

    assert error_kind("agreement: plural subject 'the dogs' with singular verb 'runs'") == "agreement"
    assert error_kind("pronoun 'he' has no earlier male antecedent") == "pronoun"
    assert error_kind("not a sentence of the grammar (parse failed at 'dog')") == "structure"
    assert error_kind("unknown word 'xyzzy'") == "unknown word"
    assert error_kind("adjective order: 'old' (age) before 'tiny' (size)") == "adjective order"
