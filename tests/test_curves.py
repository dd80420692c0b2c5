"""`minitx info RUN... --png`, `info --device`, the plain progress lines, and --log tensorboard."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from minitx.cli import app
from minitx.commands.progress import TrainDisplay

runner = CliRunner()


def _fake_run(path, losses):
    """A run directory with a config and metrics.jsonl only: enough for the curves."""
    from minitx import rundir
    from minitx.config import ModelConfig, TrainConfig
    from minitx.text.tokenizer import Tokenizer

    path.mkdir()
    rundir.save_config(path, ModelConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=1, dim=8), TrainConfig())
    Tokenizer.train_char("abcdefghi").save(path / rundir.TOKENIZER)
    for step, loss in enumerate(losses, start=1):
        rundir.append_metrics(path, {"step": step * 10, "train_loss": loss + 0.1, "val_loss": loss, "lr": 1e-3,
                                     "tokens_per_second": 1000.0, "mfu": 0.2})
    return path


def test_png_of_several_runs_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    a, b = _fake_run(tmp_path / "a", [3.0, 2.5, 2.2]), _fake_run(tmp_path / "b", [3.1, 2.4])
    png = tmp_path / "curves.png"
    result = runner.invoke(app, ["info", str(a), str(b), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 runs, 5 evaluations" in result.output


def test_legend_names_runs_by_directory_and_parent_when_alike(tmp_path):
    from minitx.commands.info import _label

    paths = [tmp_path / "x" / "run", tmp_path / "y" / "run", tmp_path / "z"]
    assert [_label(p, paths) for p in paths] == ["x/run", "y/run", "z"]


@pytest.mark.parametrize("args, words", [
    (["--png", "c.png"], ["--png", "run directories"]),
    ([], ["run directory", "--device"]),
])
def test_info_without_a_run_is_a_user_error(args, words):
    result = runner.invoke(app, ["info", *args])
    assert result.exit_code == 2
    assert all(w in result.stderr for w in words) and "Traceback" not in result.stderr


def test_png_of_a_run_without_evaluations_is_a_user_error(tmp_path):
    run = _fake_run(tmp_path / "a", [])
    result = runner.invoke(app, ["info", str(run), "--png", str(tmp_path / "c.png")])
    assert result.exit_code == 2 and "no evaluations" in result.stderr
    assert not (tmp_path / "c.png").exists()


def test_info_device_shows_the_cached_peak(tmp_path, monkeypatch):
    from minitx.training import mfu

    monkeypatch.setenv("MINITX_CACHE", str(tmp_path))
    monkeypatch.setattr(mfu, "measure_matmul_peak",
                        lambda device, dtype: mfu.Peak(123.4e9, "Test CPU", dtype, 1, 1024, "2026-01-01", 1.0))
    result = runner.invoke(app, ["info", "--device"])
    assert result.exit_code == 0, result.output
    assert "123.4" in result.output and "measured now" in result.output
    assert "--dtype auto trains in" in result.output
    again = runner.invoke(app, ["info", "--device", "--json"])
    assert [p["flops"] for p in json.loads(again.output).values()] == [123.4e9]


def test_progress_off_a_terminal_is_whole_plain_lines():
    from rich.console import Console

    out = io.StringIO()
    display = TrainDisplay(Console(file=out, width=40))  # a file: not a terminal
    assert display.plain
    display.started(total=100, start=0, band=(2.5, 2.6))
    for step in range(1, 101):
        display.stepped(step, loss=3.0, lr=1e-3, tokens_per_second=12345.0, mfu=0.25)
        if step % 50 == 0:
            display.evaluated({"step": step, "train_loss": 3.1, "val_loss": 3.2, "val_bpb": 1.5,
                               "tokens_per_second": 12000.0, "mfu": 0.2})
    display.finished()
    lines = out.getvalue().splitlines()
    steps = [line for line in lines if "/100" in line]
    assert len(steps) == 10 and steps[-1].startswith("step    100/100  loss 3.0000")
    assert all("MFU 25.0%" in line and "ETA" in line for line in steps)  # never cut at the console's width
    evals = [line for line in lines if "val 3.2000" in line]
    assert len(evals) == 2 and "(expect 2.50–2.60)" in evals[0] and "MFU 20.0%" in evals[0]
    assert not any("━" in line for line in lines)  # no bar


def test_log_tensorboard_writes_the_metrics_as_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from minitx import rundir

    run = _tensorboard_run(tmp_path)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    val = [(e.step, e.value) for e in events.Scalars("loss/val")]
    assert val == [(m["step"], pytest.approx(m["val_loss"])) for m in rundir.read_metrics(run)]
    assert {"loss/train", "lr", "speed/tokens_per_second", "speed/mfu"} <= set(events.Tags()["scalars"])


def test_log_tensorboard_without_the_package_is_a_user_error(tmp_path, monkeypatch):
    import sys

    from minitx.errors import UserError

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(UserError, match=r"pip install 'minitx\[tensorboard\]'"):
        _tensorboard_run(tmp_path)
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def _tensorboard_run(tmp_path):
    from minitx.corpus.generate import generate_corpus
    from minitx.training.setup import run_training

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(generate_corpus(30_000, seed=0), encoding="utf-8")
    flags = {"preset": "tiny", "steps": 6, "eval_every": 3, "threads": 1, "batch_size": 4, "warmup": 1,
             "n_layers": 1, "dim": 32, "block_size": 16, "vocab_size": 300, "log": "tensorboard",
             "tokenizer": "char"}
    run_training([corpus], tmp_path / "run", flags=flags, show_progress=False)
    return tmp_path / "run"
