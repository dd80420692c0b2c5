"""`minitx experiment attention` on a tiny config: the length curve per variant, its report and its figure."""

from __future__ import annotations

import pytest

from minitx.config import ARCHITECTURES
from minitx.errors import UserError
from minitx.experiments.attention import AttentionExperiment, build_report, findings, render_markdown
from minitx.experiments.engine import run_experiment

TINY_TRAIN = {"steps": 3, "batch_size": 4, "warmup": 1, "eval_every": 3, "eval_batches": 1, "save_every": 3,
              "threads": 1, "device": "cpu", "compile": False}
TINY_MODEL = {"n_layers": 1, "n_heads": 2, "dim": 16, "block_size": 256}
#: The RNN architectures of issue 27, where this branch has them registered.
RNN_ARCHS = [a for a in ("rnn", "rnn-attention") if a in ARCHITECTURES]


def tiny(archs: list[str]) -> AttentionExperiment:
    return AttentionExperiment(archs=archs, seeds=1, model=dict(TINY_MODEL), train=dict(TINY_TRAIN), vocab_size=300,
                               train_pairs=200, join=3, max_words=40, short_words=20, per_bucket=2, align_pairs=3)


def run_tiny(tmp_path, archs):
    experiment = tiny(archs)
    result = run_experiment(tmp_path / "lab", experiment, show_progress=False)
    variants = [name for name, _, _ in experiment.variants()]
    assert result.finished and [r["variant"] for r in result.runs] == variants
    return experiment, variants, result


@pytest.mark.slow
def test_the_transformer_and_its_short_variant_are_scored_per_length_bucket(tmp_path):
    experiment, variants, result = run_tiny(tmp_path, ["encoder-decoder"])
    assert variants == ["encoder-decoder", "encoder-decoder-20"]
    lab = tmp_path / "lab"
    short = [len(line) for line in (lab / "pairs-20.jsonl").read_text().splitlines()]
    assert 0 < len(short) < len((lab / "pairs.jsonl").read_text().splitlines())  # the short share only
    import json

    config = json.loads((lab / "runs" / "encoder-decoder-20-seed0" / "config.json").read_text())
    assert config["train"]["corpus_files"][0].endswith("pairs-20.jsonl")
    for run in result.runs:
        assert list(run["buckets"]) == ["0-10", "10-20", "20-30", "30-40", "40-50", "50-60"]
        assert all(b["n"] == 2 for b in run["buckets"].values())  # sources up to 60 words fit the block
        assert run["best_aer"] is not None and 0.0 <= run["best_aer"] <= 1.0
        assert run["tokens_per_second"] > 0
    report = build_report(experiment.to_dict(), variants, result.runs, result.seconds, True)
    assert report["rows"]["encoder-decoder"]["buckets"]["0-10"]["chrf"]["n"] == 1
    markdown = render_markdown(report, "minitx experiment attention")
    assert "| encoder-decoder-20 |" in markdown and "best map AER" in markdown
    assert report["findings"][0].startswith("Caution")
    again = run_experiment(lab, experiment, show_progress=False)  # a rerun reuses every measured run
    assert again.runs == result.runs
    from minitx.experiments.attention import save_length_plot
    from minitx.experiments.plots import plot_available

    if plot_available():
        assert save_length_plot(report, tmp_path / "length.png") and (tmp_path / "length.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", RNN_ARCHS)
def test_each_registered_rnn_runs_the_same_experiment(tmp_path, arch):
    _, _, result = run_tiny(tmp_path, [arch])
    assert all(len(r["buckets"]) == 6 for r in result.runs)


def test_unknown_or_decoder_only_archs_are_refused_in_one_line():
    with pytest.raises(UserError, match="unknown architecture"):
        tiny(["lstm-2000"]).validate()
    with pytest.raises(UserError, match="reads no source"):
        tiny(["gpt"]).validate()


def stat(mean, sd=0.0):
    return {"mean": mean, "sd": sd, "n": 2, "low": None, "high": None}


def test_findings_say_which_model_falls_with_length():
    buckets = ["0-10", "50-60"]
    rows = {"rnn": {"seeds": 2, "buckets": {"0-10": {"chrf": stat(80.0, 1.0)}, "50-60": {"chrf": stat(30.0, 1.0)}}},
            "rnn-attention": {"seeds": 2, "buckets": {"0-10": {"chrf": stat(85.0, 1.0)},
                                                      "50-60": {"chrf": stat(84.0, 1.0)}}}}
    said = findings({"settings": {"seeds": 2}, "variants": ["rnn", "rnn-attention"], "buckets": buckets,
                     "rows": rows})
    assert said[0].startswith("rnn falls with length") and said[1].startswith("rnn-attention holds with length")


def test_findings_name_the_model_that_falls_least_and_compare_attention_on_short_pairs_with_the_fixed_vector():
    buckets = ["0-10", "20-30", "50-60"]

    def row(*means):
        return {"seeds": 2, "buckets": {b: {"chrf": stat(m, 1.0)} for b, m in zip(buckets, means, strict=True)}}

    rows = {"rnn": row(65.0, 34.0, 30.0), "rnn-attention": row(98.0, 95.0, 86.0),
            "rnn-attention-30": row(97.0, 90.0, 55.0)}
    report = {"settings": {"seeds": 2, "archs": ["rnn", "rnn-attention"], "short_words": 30},
              "variants": ["rnn", "rnn-attention", "rnn-attention-30"], "buckets": buckets, "rows": rows}
    said = findings(report)
    assert "rnn-attention falls least (-12.0 chrF) and rnn most (-35.0)" in " ".join(said)
    assert said[-1].startswith("rnn-attention-30, trained on sources of at most 30 words only, is above rnn (trained "
                               "on every length) in every bucket, by +25.0 to +56.0 chrF")
    rows["rnn-attention-30"] = row(97.0, 30.0, 25.0)  # below the fixed vector past 10 words
    assert "in 1 of 3 buckets" in findings(report)[-1]
