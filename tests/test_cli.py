"""The command line end to end: what a user types, what they see, and the exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitx.cli import app

runner = CliRunner()


def run(*args: str, input: str | None = None):  # `input` as CliRunner names it
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_user_error(result, *words: str) -> None:
    """Exit code 2, exactly one line on stderr that names the problem, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("minitx: error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.output + result.stderr


@pytest.fixture(scope="module")
def stories(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "stories.txt"
    result = run("data", "grammar", "--bytes", "60000", "--seed", "3", "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_help_lists_every_command_and_does_not_import_torch():
    code = (
        "import sys\nfrom minitx.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TORCH")
    for name in ("train", "generate", "translate", "eval", "info", "tokenize", "data", "experiment"):
        assert name in out


def test_tokenize_train_encode_decode_round_trip(tmp_path, stories):
    tok = tmp_path / "tok.json"
    result = run("tokenize", "train", stories, "--vocab-size", "300", "--out", tok, "--quiet")
    assert result.exit_code == 0, result.output
    assert "bytes per token" in result.output
    text = "The dog runs.  Émile 🦊 says\thi\r\n"
    ids = run("tokenize", "encode", "--tokenizer", tok, "--ids", "-", input=text)
    assert ids.exit_code == 0
    back = run("tokenize", "decode", "--tokenizer", tok, *ids.stdout.split())
    assert back.exit_code == 0
    assert back.stdout_bytes.decode("utf-8") == text + "\n"  # .stdout would fold \r\n


def test_char_tokenizer_refuses_unknown_characters(tmp_path, stories):
    tok = tmp_path / "char.json"
    assert run("tokenize", "train", stories, "--kind", "char", "--out", tok).exit_code == 0
    assert_user_error(run("tokenize", "encode", "--tokenizer", tok, "naïve 🦊"), "U+")


@pytest.mark.parametrize("case", ["missing", "empty", "binary", "vocab"])
def test_bad_tokenizer_inputs_exit_2_with_one_line(tmp_path, stories, case):
    args = ["tokenize", "train", "--out", tmp_path / "t.json", "--vocab-size", "1000"]
    if case == "missing":
        args.insert(2, tmp_path / "nope.txt")
        words = ("nope.txt",)
    elif case == "empty":
        (tmp_path / "empty.txt").write_text("")
        args.insert(2, tmp_path / "empty.txt")
        words = ("empty",)
    elif case == "binary":
        (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 10)
        args.insert(2, tmp_path / "bin.dat")
        words = ("bin.dat",)
    else:
        args = ["tokenize", "train", stories, "--out", tmp_path / "t.json", "--vocab-size", "200"]
        words = ("257",)
    assert_user_error(run(*args), *words)
    assert not (tmp_path / "t.json").exists()


def test_existing_output_is_not_overwritten_without_force(tmp_path, stories):
    out = tmp_path / "tok.json"
    out.write_text("precious")
    assert_user_error(run("tokenize", "train", stories, "--out", out), "--force")
    assert out.read_text() == "precious"
    assert_user_error(run("data", "grammar", "--out", out, "--bytes", "100"), "--force")
    assert out.read_text() == "precious"


def test_data_check_exits_like_a_linter(tmp_path, stories):
    assert run("data", "check", stories).exit_code == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("<|doc|>The dogs runs. A red little ball is big.\n")
    result = run("data", "check", bad, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["total"] == 2 and report["accepted"] == 0
    assert any("agreement" in r["reason"] for r in report["rejected"])


TINY = ["--preset", "tiny", "--layers", "1", "--dim", "32", "--block-size", "32", "--batch-size", "4",
        "--eval-every", "5", "--eval-batches", "2", "--threads", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, stories) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run("train", stories, "--out", out, "--steps", "10", "--vocab-size", "300", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    assert "training done" in result.output
    return out


def newest(run_dir: Path) -> Path:
    """The newest checkpoint directory of a run."""
    from minitx.rundir import latest_checkpoint

    return latest_checkpoint(run_dir)


def test_train_writes_a_complete_run_directory(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert names == {"config.json", "tokenizer.json", "checkpoints", "metrics.jsonl"}
    assert [p.name for p in (tiny_run / "checkpoints").iterdir()] == ["step-000010"]  # --keep 1 by default
    assert {p.name for p in newest(tiny_run).iterdir()} == {"model.safetensors", "optimizer.safetensors",
                                                            "trainer_state.json"}
    metrics = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [5, 10]
    assert all(m["val_bpb"] > 0 for m in metrics)


def test_info_shows_config_steps_and_losses(tiny_run):
    from minitx.model import GPT
    from minitx.rundir import load_run

    result = run("info", tiny_run)
    assert result.exit_code == 0, result.output
    for text in ("model.n_layers", "parameters", "steps done", "10 / 10", "last val loss"):
        assert text in result.output
    parameters = GPT(load_run(tiny_run).model_config).num_parameters()  # the tied lm_head counted once
    row = next(line for line in result.output.splitlines() if "parameters" in line)
    assert row.replace("│", " ").split() == ["parameters", f"{parameters:,}"]


def test_info_reads_sizes_from_the_weights_header_without_importing_torch(tiny_run):
    code = (
        "import sys\nfrom minitx.cli import app\n"
        f"try:\n    app(['info', {str(tiny_run)!r}])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "parameters" in out and out.strip().endswith("NO-TORCH")


def test_info_on_a_run_with_truncated_weights_still_shows_the_rest(tmp_path, tiny_run):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(tiny_run, target)
    weights = newest(target) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    result = run("info", target)
    assert result.exit_code == 0, result.output + result.stderr
    assert "missing or damaged" in result.output and "10 / 10" in result.output


def test_training_into_an_existing_run_needs_resume_or_force(tiny_run, stories):
    before = (newest(tiny_run) / "model.safetensors").read_bytes()
    assert_user_error(run("train", stories, "--out", tiny_run, *TINY), "--resume", "--force")
    assert (newest(tiny_run) / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("problem", ["missing", "not-a-run", "truncated", "other-format"])
def test_unusable_checkpoints_are_user_errors(tmp_path, tiny_run, problem):
    import shutil

    target = tmp_path / "run"
    if problem == "missing":
        words = ("not found",)
    elif problem == "not-a-run":
        target.mkdir()
        words = ("not a minitx run directory",)
    else:
        shutil.copytree(tiny_run, target)
        if problem == "truncated":
            weights = newest(target) / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:500])
            words = ("truncated",)
        else:
            config = json.loads((target / "config.json").read_text())
            config["format"] = 99
            (target / "config.json").write_text(json.dumps(config))
            words = ("format 99",)
    assert_user_error(run("generate", target, "--max-new-tokens", "5"), *words)


def test_bad_flag_values_are_user_errors(tmp_path, stories):
    assert_user_error(run("train", stories, "--out", tmp_path / "r", "--pos", "spiral", *TINY), "--pos",
                      "spiral", "'rope'", "'alibi'", "minitx train --help")
    assert_user_error(run("train", stories, "--out", tmp_path / "r", "--steps", "many", *TINY), "--steps", "integer")
    assert_user_error(run("generate", tmp_path, "--quantize", "int4"), "--quantize", "int8")
    assert_user_error(run("train", stories, "--out", tmp_path / "r", "--heads", "3", *TINY), "divisible")
    assert_user_error(run("train", stories, "--out", tmp_path / "r", "--lr", "-1", *TINY), "--lr")


def test_corpus_shorter_than_a_block_is_a_user_error(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny corpus\n")
    assert_user_error(run("train", short, "--out", tmp_path / "r", "--tokenizer", "char", *TINY), "too short")
    assert not (tmp_path / "r").exists()


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, stories):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "minitx.cli", "train", str(stories), "--out", str(out), "--steps", "100000",
           "--save-every", "100000", "--vocab-size", "300", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:  # training has started
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    state = json.loads((newest(out) / "trainer_state.json").read_text())
    assert state["step"] >= 5
    assert "--resume" in stdout
    resumed = run("train", "--out", out, "--resume", "--steps", str(state["step"] + 3), *TINY)
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert json.loads((newest(out) / "trainer_state.json").read_text())["step"] == state["step"] + 3


def test_damaged_or_mismatched_runs_are_user_errors(tmp_path, tiny_run):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(tiny_run, target)
    config = json.loads((target / "config.json").read_text())
    config["model"]["vocab_size"] = "many"
    (target / "config.json").write_text(json.dumps(config))
    assert_user_error(run("generate", target, "--max-new-tokens", "3"), "damaged")
    config["model"]["vocab_size"] = 999
    (target / "config.json").write_text(json.dumps(config))
    assert_user_error(run("info", target), "tokenizer")


def test_written_files_get_ordinary_permissions(tmp_path):
    out = tmp_path / "s.txt"
    assert run("data", "grammar", "--bytes", "200", "--out", out).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o666 & ~umask


def test_output_path_that_is_a_directory_is_a_user_error(tmp_path):
    assert_user_error(run("data", "grammar", "--bytes", "200", "--out", tmp_path, "--force"), "directory")


def test_resume_refuses_a_different_corpus(tmp_path, tiny_run):
    other = tmp_path / "other.txt"
    other.write_text("<|doc|>The cat sits. " * 500)
    assert_user_error(run("train", other, "--out", tiny_run, "--resume", "--steps", "20", *TINY), "sha256")


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--lr", "0.01"], ("--lr 0.01 differs from the saved 0.003", "drop the flag", "--force")),
        (["--no-bias"], ("--no-bias differs from the saved --bias",)),
        (["--layers", "2", "--seed", "9"], ("--layers 2 differs from the saved 1", "--seed 9", "1337",
                                            "drop these flags")),
        (["--compile"], ("--compile differs from the saved auto",)),
        (["--tokenizer", "char"], ("--tokenizer char",)),
    ],
)
def test_resume_refuses_a_changed_recipe_flag_and_leaves_the_run_untouched(tiny_run, flags, words):
    before = _files(tiny_run)
    result = run("train", "--out", tiny_run, "--resume", "--steps", "20", *TINY, *flags)
    assert_user_error(result, "--resume keeps the run's recipe", *words)
    assert _files(tiny_run) == before


def test_resume_refuses_the_other_dtype_than_the_one_the_run_trained_in(tiny_run):
    saved = json.loads((tiny_run / "config.json").read_text())["train"]["dtype"]  # what auto resolved to
    assert saved in ("float32", "bfloat16")
    other = "float32" if saved == "bfloat16" else "bfloat16"
    before = _files(tiny_run)
    result = run("train", "--out", tiny_run, "--resume", "--steps", "20", *TINY, "--dtype", other)
    assert_user_error(result, "--resume keeps the run's recipe", f"--dtype {other} differs from the saved {saved}")
    assert _files(tiny_run) == before


def test_resume_accepts_recipe_flags_equal_to_the_saved_ones(tmp_path, tiny_run):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(tiny_run, target)
    same = ["--lr", "3e-3", "--bias", "--seed", "1337", "--vocab-size", "300", "--no-doc-aligned",
            "--tokenizer", target / "tokenizer.json"]
    result = run("train", "--out", target, "--resume", "--steps", "12", *TINY, *same)
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads((newest(target) / "trainer_state.json").read_text())["step"] == 12


def test_resume_may_change_what_changes_no_result_and_its_help_lists_exactly_that(tmp_path, tiny_run):
    import shutil

    from minitx.config import changeable_on_resume

    assert {"--steps", "--save-every", "--eval-every", "--device", "--threads", "--keep"} <= set(changeable_on_resume())
    assert not {"--lr", "--eval-batches", "--seed", "--layers"} & set(changeable_on_resume())
    help_text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output.split())
    assert f"recipe (only {', '.join(changeable_on_resume())} may change)" in help_text
    target = tmp_path / "run"
    shutil.copytree(tiny_run, target)
    result = run("train", "--out", target, "--resume", *TINY, "--steps", "12", "--save-every", "3", "--eval-every", "4")
    assert result.exit_code == 0, result.output + result.stderr
    saved = json.loads((target / "config.json").read_text())["train"]
    assert (saved["save_every"], saved["eval_every"], saved["steps"]) == (3, 4, 12)
