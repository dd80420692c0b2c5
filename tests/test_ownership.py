"""Issue 31: a run directory has one writer, setup is a unit, hostile values get one line, signals win.

Every test here runs the command as a user does (CliRunner, a forked child, or a subprocess for the
signals) on tiny runs with one thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitx import rundir
from minitx.cli import app
from minitx.console import error_line, printable, safe
from minitx.rundir.lock import LOCK, run_lock

TINY = ["--tokenizer", "char", "--preset", "tiny", "--layers", "1", "--heads", "2", "--dim", "16",
        "--block-size", "16", "--batch-size", "4", "--warmup", "1", "--eval-every", "4", "--eval-batches", "1",
        "--seed", "5", "--threads", "1", "--device", "cpu", "--no-compile", "--quiet"]
SRC = str(Path(__file__).parents[1] / "src")


def run(*args: object, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def one_line(result, *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from minitx.corpus import generate_corpus

    path = tmp_path_factory.mktemp("own") / "stories.txt"
    path.write_text(generate_corpus(6000, seed=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("own-run") / "run"
    result = run("train", corpus, "--out", out, "--steps", "4", *TINY)
    assert result.exit_code == 0, result.output
    return out


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else b"")
            for p in sorted(path.rglob("*"))} if path.exists() else {}


# --------------------------------------------------------------------------------------------
# 1. One writer per run directory; readers read the newest complete checkpoint meanwhile.


@pytest.mark.parametrize("how", [[], ["--force"], ["--resume"]], ids=["fresh", "force", "resume"])
def test_a_second_writer_is_refused_in_one_line_naming_the_holder_and_touches_nothing(tmp_path, corpus, trained,
                                                                                       how):
    out = tmp_path / "run"
    if how:  # --force and --resume meet an existing run
        shutil.copytree(trained, out)
    with run_lock(out):  # this process holds it, as a training run would (a second open file: flock refuses it)
        before = snapshot(out)
        result = run("train", corpus, "--out", out, "--steps", "8", *how, *TINY)
        one_line(result, "is in use", f"process {os.getpid()}", "choose another --out")
        assert snapshot(out) == before
    assert not (out / LOCK).exists()  # the owner removes its lock file when done


def test_a_lock_file_left_by_a_killed_process_holds_nothing(tmp_path, corpus):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("999999\n")  # kill -9 leaves the file; the kernel dropped the lock itself
    result = run("train", corpus, "--out", out, "--steps", "2", *TINY)
    assert result.exit_code == 0, result.output
    assert rundir.saved_step(out) == 2 and not (out / LOCK).exists()


def test_readers_use_the_newest_complete_checkpoint_while_a_writer_holds_the_run(tmp_path, trained):
    out = shutil.copytree(trained, tmp_path / "run")
    partial = out / "checkpoints" / ".step-000099.partial"
    with run_lock(out):  # a run training: it holds the lock and is in the middle of its next save
        partial.mkdir()
        (partial / "model.safetensors").write_bytes(b"half written")
        assert rundir.latest_checkpoint(out).name == "step-000004"
        generated = run("generate", out, "--max-new-tokens", "5", "--device", "cpu", "--seed", "1")
        assert generated.exit_code == 0, generated.output
        assert run("info", out).exit_code == 0


def test_two_trainers_started_together_leave_one_consistent_run(tmp_path, corpus):
    """The issue's repro: two shapes on one --out; one trains, one refuses, the run loads and resumes."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC}
    children = []
    for dim in ("16", "32"):
        args = [sys.executable, "-m", "minitx", "train", str(corpus), "--out", str(out), "--steps", "6",
                "--save-every", "1", "--keep", "2", *TINY]
        args[args.index("--dim") + 1] = dim
        children.append(subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env))
    codes = [c.wait(timeout=300) for c in children]
    errors = [c.stderr.read().decode() for c in children]
    assert sorted(codes) == [0, 2], errors
    loser = errors[codes.index(2)].strip().splitlines()
    assert len(loser) == 1 and "is in use" in loser[0], loser
    winner_dim = (16, 32)[codes.index(0)]
    model, run_ = rundir.load_model(out)
    assert run_.model_config.dim == winner_dim == model.transformer.wte.weight.shape[1]
    resumed = run("train", "--out", out, "--resume", "--steps", "7", "--threads", "1", "--quiet")
    assert resumed.exit_code == 0, resumed.output


# --------------------------------------------------------------------------------------------
# 2. Setup is a unit.


def train_in_child(args: list[str], crash_at: str) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.environ["MINITX_TEST_CRASH_AT"] = crash_at
            app([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_kill_during_setup_then_a_plain_rerun_trains(tmp_path, corpus):
    out = tmp_path / "run"
    assert train_in_child(["train", corpus, "--out", out, "--steps", "2", *TINY], "setup") == -9
    assert (out / "tokenizer.json").exists() and not (out / "config.json").exists()
    one_line(run("train", "--out", out, "--resume", *TINY), "setup that never finished", "without --resume")
    result = run("train", corpus, "--out", out, "--steps", "2", *TINY)  # no --force needed
    assert result.exit_code == 0, result.output
    assert rundir.saved_step(out) == 2


def test_a_setup_that_fails_leaves_no_directory(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny\n")
    out = tmp_path / "run"
    result = run("train", short, "--out", out, *TINY)
    assert result.exit_code == 2 and not out.exists(), result.output


# --------------------------------------------------------------------------------------------
# 3. Control characters reach the terminal escaped.


def test_printable_escapes_c0_c1_and_bidi_controls_and_keeps_newline_and_tab():
    assert printable("a\x1b[31mb\x07\x9b\u202ec\u2066\x7f\n\t") == "a\\x1b[31mb\\x07\\x9b\\u202ec\\u2066\\x7f\n\t"
    assert printable("a\nb\tc", one_line=True) == "a\\nb\\tc"
    assert safe("[bold]\x1b") == "\\[bold]\\x1b"
    assert error_line("bad \x1b]0;title\x07 path\nnext") == "minitx: error: bad \\x1b]0;title\\x07 path\\nnext"


def test_info_and_eval_show_a_run_directory_named_with_escapes_escaped(tmp_path, trained):
    out = shutil.copytree(trained, tmp_path / "run\x1b[31m")
    result = run("info", out)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "run\\x1b[31m" in result.output.replace("\n", "")


def test_an_error_line_shows_an_escape_in_a_path_escaped(tmp_path):
    result = run("info", tmp_path / "no\x1b[2Jsuch")
    assert result.exit_code == 2 and "\x1b" not in result.stderr and "\\x1b[2J" in result.stderr


# --------------------------------------------------------------------------------------------
# 4 and 6. config.json checked by type and range; sizes checked against memory; flags against ranges.


@pytest.mark.parametrize("section, field, value, words", [
    ("model", "dim", "32", "'dim' is the text \"32\", but it must be an integer"),
    ("model", "bias", "yes", "'bias' is the text \"yes\", but it must be true or false"),
    ("model", "tie_embeddings", 7, "'tie_embeddings' is the integer 7, but it must be true or false"),
    ("model", "n_layers", True, "'n_layers' is the boolean true, but it must be an integer"),
    ("train", "lr", "abc", "'lr' is the text \"abc\", but it must be a finite number"),
    ("train", "threads", -1, "--threads has an impossible value: -1"),
    ("train", "seed", 2**70, "--seed has an impossible value"),
    ("model", "arch", 5, "'arch' is the integer 5, but it must be text"),
])
def test_each_bad_config_value_is_one_line_naming_the_file_the_field_and_the_value(tmp_path, trained, section,
                                                                                   field, value, words):
    out = shutil.copytree(trained, tmp_path / "run")
    raw = json.loads((out / "config.json").read_text())
    raw[section][field] = value
    (out / "config.json").write_text(json.dumps(raw))
    for command in (["info", out], ["generate", out, "--max-new-tokens", "3", "--device", "cpu"],
                    ["train", "--out", out, "--resume", "--steps", "8", "--quiet"]):
        one_line(run(*command), str(out / "config.json"), words)


def test_a_block_size_that_cannot_fit_is_refused_before_allocating(tmp_path, trained):
    out = shutil.copytree(trained, tmp_path / "run")
    raw = json.loads((out / "config.json").read_text())
    raw["model"]["block_size"] = 1_000_000_000
    (out / "config.json").write_text(json.dumps(raw))
    started = time.perf_counter()
    one_line(run("generate", out, "--device", "cpu"), "needs about", "KV cache", "available")
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("flag, value, words", [
    ("--dim", "100000", "needs about"), ("--layers", "100000000", "needs about"),
    ("--batch-size", "100000000", "needs about"), ("--seed", "1180591620717411303424", "--seed"),
    ("--lr", "inf", "'lr' is the number inf"), ("--lr", "nan", "'lr'"), ("--threads", "-1", "--threads"),
])
def test_flags_out_of_range_are_one_line_before_any_work_or_directory(tmp_path, corpus, flag, value, words):
    out = tmp_path / "run"
    args = [a for a in TINY]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    if flag == "--dim":
        args[args.index("--heads") + 1] = "4"
    one_line(run("train", corpus, "--out", out, "--steps", "2", *args), words)
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 6 and 7. Messages that say what is really wrong; pipes and FIFOs never hang.


def test_a_hand_edited_arch_is_named_not_the_corpus(tmp_path, corpus, trained):
    out = shutil.copytree(trained, tmp_path / "run")
    raw = json.loads((out / "config.json").read_text())
    raw["model"]["arch"] = "encoder-decoder"
    (out / "config.json").write_text(json.dumps(raw))
    result = run("train", corpus, "--out", out, "--resume", "--steps", "8", "--quiet")
    one_line(result, "config.json does not describe the weights", "was changed")
    assert "sha256" not in result.stderr


def test_a_fifo_is_refused_by_train_in_one_line_and_prepared_as_a_stream(tmp_path, corpus):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    one_line(run("train", fifo, "--out", tmp_path / "run", *TINY), "is a pipe or FIFO", "minitx prepare")
    env = {**os.environ, "PYTHONPATH": SRC}
    child = subprocess.Popen([sys.executable, "-m", "minitx", "prepare", str(fifo), "--out", str(tmp_path / "data"),
                              "--tokenizer", "char"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    with open(fifo, "wb") as writer:  # opened once, read once: the stream is spooled for the second pass
        writer.write(corpus.read_bytes())
    assert child.wait(timeout=120) == 0, child.stderr.read()
    assert (tmp_path / "data" / "train.bin").exists()


# --------------------------------------------------------------------------------------------
# 8. --resume of a finished run is done, not wrong; --steps below the steps done says so.


def test_resume_of_a_finished_run_is_one_line_and_exit_0(trained):
    before = snapshot(trained)
    result = run("train", "--out", trained, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    said = f"{trained} is already complete at step 4; pass a larger --steps to train it further"
    assert result.stdout.strip() == said
    assert snapshot(trained) == before


def test_resume_with_fewer_steps_than_done_names_both(trained):
    one_line(run("train", "--out", trained, "--resume", "--steps", "2", "--quiet"),
             "--steps 2 is fewer than the 4 steps", "new total")


# --------------------------------------------------------------------------------------------
# 5. Signals win inside a step that never ends.


def long_step_child(tmp_path: Path, corpus: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, marker = tmp_path / "run", tmp_path / "in-step-3"
    env = {**os.environ, "PYTHONPATH": SRC, "MINITX_TEST_LONG_STEP": f"3:{marker}", "MINITX_STOP_GRACE": "2"}
    child = subprocess.Popen([sys.executable, "-m", "minitx", "train", str(corpus), "--out", str(out), "--steps", "6",
                              "--save-every", "2", *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.05)
    return child, out, marker


@pytest.mark.slow
@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["sigterm", "ctrl-c-twice"])
def test_sigterm_and_a_second_ctrl_c_end_a_step_that_never_ends_keeping_the_last_checkpoint(tmp_path, corpus,
                                                                                            signals):
    child, out, _ = long_step_child(tmp_path, corpus)
    started = time.monotonic()
    for sig in signals:
        child.send_signal(sig)
        time.sleep(0.2)
    code = child.wait(timeout=30)
    took = time.monotonic() - started
    stderr = child.stderr.read().decode()
    assert code == 130 and took < 2 + 3, (code, took, stderr)  # the grace (2 s, or 1 s after a second signal)
    assert stderr.strip().count("\n") == 0 and "stopped at once" in stderr and "step-000002" in stderr, stderr
    assert rundir.saved_step(out) == 2
    resumed = run("train", "--out", out, "--resume", "--quiet")  # the lock the hard exit left holds nothing
    assert resumed.exit_code == 0, resumed.output
    assert rundir.saved_step(out) == 6


# -- inspect's inputs: nothing empty is accepted, nothing long is cut without a word (issue 31, points 6-7) --------


def test_an_empty_lens_target_is_one_line(trained):
    one_line(run("inspect-lens", trained, "--prompt", "The dog", "--target", "", "--threads", 1),
             "answer word is empty")


@pytest.mark.parametrize("clean, corrupt, flag", [("", "The dogs", "--clean"), ("The dog", "  ", "--corrupt")])
def test_an_empty_clean_or_corrupt_prompt_is_one_line(trained, clean, corrupt, flag):
    one_line(run("inspect-patch", trained, "--clean", clean, "--corrupt", corrupt, "--answer", "run", "runs",
                 "--threads", 1), f"{flag} is empty")


def test_inspect_attention_says_how_many_tokens_of_a_long_prompt_it_leaves_out(trained):
    block = json.loads((trained / "config.json").read_text())["model"]["block_size"]
    result = run("inspect-attention", trained, "--prompt", "The dog runs. " * block, "--threads", 1)
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if line.startswith("note: the first"))
    assert f"keeps the last {block}" in note and "block" in note
    short = run("inspect-attention", trained, "--prompt", "The dog runs.", "--threads", 1)
    assert short.exit_code == 0 and "left out" not in short.output
