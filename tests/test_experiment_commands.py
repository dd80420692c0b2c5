"""The new experiment commands from the command line: one-line refusals (exit 2), and a tiny run end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from minitx.cli import app

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(("args", "message"), [
    (["experiment", "norm", "--norms", "pre,sandwich"], "is not a norm"),
    (["experiment", "attention", "--archs", "gpt"], "reads no source"),
    (["experiment", "attention", "--archs", "encoder-decoder", "--short-words", "90"], "--short-words"),
    (["experiment", "heads", "--heads", "1,5"], "--heads 5"),
    (["experiment", "heads", "--heads", "one"], "comma-separated whole numbers"),
])
def test_a_bad_flag_gets_one_line_and_exit_2_and_no_directory(tmp_path, args, message):
    result = run(*args, "--out", tmp_path / "exp")
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow  # trains 5 tiny models
def test_experiment_norm_quick_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "norm"
    args = ["experiment", "norm", "--quick", "--steps", "6", "--threads", "1", "--quiet", "--out", out]
    first = run(*args)
    assert first.exit_code == 0, first.output + first.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["variants"]) == 10 and set(report["init_gradients"]) == {"pre", "post", "none", "pre-rms"}
    assert "Santurkar's test" in (out / "report.md").read_text()
    again = run(*args)
    assert again.exit_code == 0 and again.output.count("done, reused") == 10
    refused = run("experiment", "norm", "--quick", "--steps", "7", "--quiet", "--out", out)
    assert refused.exit_code == 2 and "other settings" in refused.stderr
