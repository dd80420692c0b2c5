"""Crashes at every moment of a save, and at random moments: `--resume` always works and loses nothing.

A SIGKILL gives a process no chance to clean up, so these tests kill for real: the test-only variable
MINITX_TEST_CRASH_AT makes the training process SIGKILL itself at a named moment between two writes
(`fileio.crash_point`). Each crashing run is a child made with os.fork() -- torch is already imported,
so a child starts in milliseconds, and 30 crashes fit in a few seconds -- running `minitx train`
exactly as the command line does. Which moment dies is chosen, not timed, so every run of these tests
crashes at the same places: nothing depends on the machine's speed.

After every crash, `minitx train --resume` must work, and the final weights and validation losses must
equal those of a run that was never interrupted, bit for bit (CPU, one thread, same seed).
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from minitx import rundir
from minitx.fileio import CRASH_ENV

STEPS = 8
RECIPE = ["--tokenizer", "char", "--preset", "tiny", "--layers", "1", "--heads", "2", "--dim", "16",
          "--block-size", "16", "--batch-size", "4", "--warmup", "2", "--eval-every", "3", "--eval-batches", "1",
          "--seed", "3", "--threads", "1", "--device", "cpu", "--no-compile", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from minitx.corpus import generate_corpus

    path = tmp_path_factory.mktemp("crash") / "stories.txt"
    path.write_text(generate_corpus(6000, seed=1), encoding="utf-8")
    return path


def train_in_child(args: list[str], log: Path, crash_at: str | None = None) -> int:
    """Run `minitx ARGS` in a forked child; return its exit code, or -9 if it was SIGKILLed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # not pytest's capture
            if crash_at:
                os.environ[CRASH_ENV] = crash_at
            from minitx.cli import app

            app([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def final_state(run_dir: Path) -> tuple[dict, list]:
    """The newest checkpoint's weights and the logged validation losses."""
    weights = load_file(rundir.latest_checkpoint(run_dir) / rundir.WEIGHTS)
    return weights, [m["val_loss"] for m in rundir.read_metrics(run_dir)]


def assert_same_run(a: Path, b: Path) -> None:
    (wa, va), (wb, vb) = final_state(a), final_state(b)
    assert wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)
    assert va == vb and va


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus) -> dict[int, Path]:
    """Uninterrupted runs of STEPS and of 40 steps, by their length.

    They run in this process, which imports everything training needs: the forked children then
    start with torch and minitx loaded, in milliseconds instead of seconds.
    """
    from typer.testing import CliRunner

    from minitx.cli import app

    runs = {}
    for steps in (STEPS, 40):
        out = tmp_path_factory.mktemp("reference") / "run"
        args = ["train", corpus, "--out", out, "--steps", steps, "--save-every", steps, *RECIPE]
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        runs[steps] = out
    return runs


# Every moment at which a crash can land in a run saving every 2 steps: (which time the moment is
# reached, the checkpoint that must survive). The save crashed into is the second one, of step 4.
MOMENTS = {
    "step": (3, 2),  # between steps, no save under way (the 3rd step just finished)
    "started": (2, 2),  # the .partial directory exists, empty
    "weights": (2, 2),  # model.safetensors written into it
    "optimizer": (2, 2),  # optimizer.safetensors too
    "trainer_state": (2, 2),  # all three written, not yet renamed
    "renamed": (2, 4),  # step-000004 in place; step-000002 not yet deleted
    "doomed": (1, 4),  # step-000002 renamed to .step-000002.deleting, not yet deleted (the first save prunes none)
    "pruned": (2, 4),  # all done
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_crash_at_any_moment_of_a_save_keeps_a_complete_checkpoint_and_resume_equals_an_unbroken_run(
    tmp_path, corpus, reference, moment
):
    out, log = tmp_path / "run", tmp_path / "log"
    nth, survives = MOMENTS[moment]
    code = train_in_child(["train", corpus, "--out", out, "--steps", STEPS, "--save-every", "2", *RECIPE], log,
                          crash_at=f"{moment}:{nth}")
    assert code == -signal.SIGKILL, log.read_text()
    survivor = rundir.latest_checkpoint(out)
    assert survivor.name == rundir.checkpoint_name(survives)
    assert {p.name for p in survivor.iterdir()} == {rundir.WEIGHTS, rundir.OPTIMIZER, rundir.TRAINER_STATE}
    had_leftovers = bool(rundir.leftovers(out))
    assert had_leftovers == (moment in ("started", "weights", "optimizer", "trainer_state", "doomed"))

    code = train_in_child(["train", "--out", out, "--resume", *RECIPE], log)
    assert code == 0, log.read_text()
    assert ("removed what an interrupted save left behind" in log.read_text()) == had_leftovers
    assert rundir.leftovers(out) == []
    assert [p.name for p in (out / rundir.CHECKPOINTS).iterdir()] == [rundir.checkpoint_name(STEPS)]
    assert_same_run(out, reference[STEPS])


def test_a_crash_before_the_first_checkpoint_resumes_from_the_start(tmp_path, corpus, reference):
    out, log = tmp_path / "run", tmp_path / "log"
    code = train_in_child(["train", corpus, "--out", out, "--steps", STEPS, "--save-every", "2", *RECIPE], log,
                          crash_at="started:1")
    assert code == -signal.SIGKILL
    assert rundir.latest_checkpoint(out) is None
    assert train_in_child(["train", "--out", out, "--resume", *RECIPE], log) == 0, log.read_text()
    assert_same_run(out, reference[STEPS])


@pytest.mark.slow
def test_thirty_kills_at_random_moments_lose_nothing(tmp_path, corpus, reference):
    """30 SIGKILLs, each at a moment drawn from all the crash points of the next few steps (saves included)."""
    out, log = tmp_path / "run", tmp_path / "log"
    rng = random.Random(9)
    args = ["train", corpus, "--out", out, "--steps", "40", "--save-every", "1", "--keep", "2", *RECIPE]
    steps_reached, mid_save = set(), 0
    for kill in range(30):
        # about 8 crash points per step (step, started, weights, optimizer, trainer_state, renamed, doomed,
        # pruned): a draw in 1..12 dies within the first two steps, so 30 kills never finish the 40 steps
        moment = f"*:{rng.randint(1, 12)}"
        code = train_in_child(args if kill == 0 else ["train", "--out", out, "--resume", *RECIPE], log, moment)
        assert code == -signal.SIGKILL, log.read_text()
        latest = rundir.latest_checkpoint(out)
        steps_reached.add(rundir.checkpoint_step(latest) if latest else 0)
        mid_save += bool(rundir.leftovers(out))  # killed while a save was writing or deleting
    assert train_in_child(["train", "--out", out, "--resume", *RECIPE], log) == 0, log.read_text()
    assert len(steps_reached) > 10 and mid_save >= 10  # spread over the run, many in the middle of a save
    assert_same_run(out, reference[40])
    assert len(rundir.list_checkpoints(out)) == 2 and rundir.leftovers(out) == []


# --------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: the signal is sent while the run waits for it after step 5 (the test-only
# MINITX_TEST_HOLD_AT_STEP), so where it lands is chosen, not timed.


def interrupt_in_child(args: list[str], log: Path, marker: Path, signals: list[int]) -> int:
    """Run `minitx ARGS` in a forked child holding after step 5; send it `signals`, one per hold; its exit code."""
    import time

    from minitx.training.distributed import HOLD_ENV

    os.environ[HOLD_ENV] = f"5:{marker}:{len(signals)}"
    try:
        pid = os.fork()
        if pid == 0:
            train_in_child_body(args, log)
    finally:
        del os.environ[HOLD_ENV]
    for k, sig in enumerate(signals):
        waiting = Path(f"{marker}.rank0" + (f".{k}" if k else ""))
        deadline = time.monotonic() + 120
        while not waiting.exists():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        os.kill(pid, sig)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def train_in_child_body(args: list[str], log: Path) -> None:
    """The forked child of `interrupt_in_child`: `minitx ARGS` with its output in `log`; never returns."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)
        from minitx.cli import app

        app([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_finishes_the_step_saves_exits_130_and_resume_equals_an_unbroken_run(
    tmp_path, corpus, reference, sig
):
    out, log = tmp_path / "run", tmp_path / "log"
    args = ["train", corpus, "--out", out, "--steps", STEPS, "--save-every", STEPS, *RECIPE]
    assert interrupt_in_child(args, log, tmp_path / "held", [sig]) == 130, log.read_text()
    said = log.read_text()
    assert "Traceback" not in said and "training stopped early" in said and "--resume" in said
    assert rundir.checkpoint_step(rundir.latest_checkpoint(out)) == 5  # saved at once, not at --save-every
    assert train_in_child(["train", "--out", out, "--resume", *RECIPE], log) == 0, log.read_text()
    assert_same_run(out, reference[STEPS])


def test_a_second_ctrl_c_aborts_at_once_and_the_last_complete_checkpoint_resumes_exactly(
    tmp_path, corpus, reference
):
    out, log = tmp_path / "run", tmp_path / "log"
    args = ["train", corpus, "--out", out, "--steps", STEPS, "--save-every", "2", *RECIPE]
    code = interrupt_in_child(args, log, tmp_path / "held", [signal.SIGINT, signal.SIGINT])
    said = log.read_text()
    assert code == 130 and "Traceback" not in said, said
    assert "training stopped early" not in said  # it aborted: no summary, no save of step 5
    assert rundir.checkpoint_step(rundir.latest_checkpoint(out)) == 4  # step 5 was never saved
    assert rundir.leftovers(out) == []
    assert train_in_child(["train", "--out", out, "--resume", *RECIPE], log) == 0, log.read_text()
    assert_same_run(out, reference[STEPS])
