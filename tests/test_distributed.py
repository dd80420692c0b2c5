"""DistributedDataParallel under torchrun, on CPU with gloo over 127.0.0.1.

Each torchrun launch starts fresh Python processes (a few seconds each), so the runs are shared
by module-scoped fixtures: one uninterrupted 2-rank run is compared with a 1-rank run of the same
global batch, with itself resumed after a crash, a SIGTERM or a Ctrl-C, and with the same run
launched as two "nodes". Every launch is marked slow (`make test` leaves them to CI); the refusals
of `--nproc` run in-process and are fast.

No test guesses at timing: a signal is sent while the ranks wait for it (MINITX_TEST_HOLD_AT_STEP),
a rank dies at a named step (MINITX_TEST_FAIL_RANK_AT_STEP), and a port taken by someone else
between choosing and using it makes the launch retry with another (`_with_a_free_port`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from minitx.cli import app
from minitx.dataset.batches import BatchSampler
from minitx.rundir import latest_checkpoint
from minitx.training.distributed import EXIT_PEER_LOST, FAIL_ENV, HOLD_ENV, World
from minitx.training.launch import LaunchReport, relay_stderr

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this PyTorch build has no torch.distributed with gloo",
)

MODEL = ["--tokenizer", "char", "--layers", "2", "--heads", "2", "--dim", "32", "--block-size", "32",
         "--steps", "12", "--eval-every", "6", "--eval-batches", "2", "--save-every", "1", "--lr", "3e-3",
         "--warmup", "2", "--device", "cpu", "--quiet",
         # AdamW, not the default preset's Muon: torch.optim.Muon orthogonalizes each update in bfloat16, which
         # turns the last-bit difference of a gradient summed in another order (all-reduce of 2 ranks against
         # one batch of 8) into ~5e-5 after 12 steps; the mechanism checked here is data parallelism itself
         "--optimizer", "adamw",
         # fp32, whatever `auto` picks here: 2 ranks x 4 rows equal 1 rank x 8 to 1e-5 only in fp32 (under
         # bf16 autocast the matmuls round differently for another batch shape)
         "--dtype", "float32"]
TIMEOUT = 240  # seconds any one launch may take before the test fails (a hang is a failure, not a skip)


def _free_port() -> int:
    """A port the OS says is free now; someone may take it before it is used (see `_with_a_free_port`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_was_taken(stderr: str) -> bool:
    return "address already in use" in stderr.lower() or "eaddrinuse" in stderr.lower()


def _with_a_free_port(launch: Callable[[int], tuple[int, str]], tries: int = 3) -> tuple[int, str]:
    """Run `launch(port)` -> (exit code, stderr); again with another port if that one was taken meanwhile."""
    for _ in range(tries):
        code, stderr = launch(_free_port())
        if code == 0 or not _port_was_taken(stderr):
            break
    return code, stderr


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MINITX_DIST_TIMEOUT": "100"}


def _torchrun(args: list[str], nproc: int = 2, env: dict[str, str] | None = None,
              where: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", *(where or ["--standalone"]),
           "--nproc-per-node", str(nproc), "-m", "minitx", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env or _env())


def _minitx(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "minitx", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env or _env())


def _held(cmd: list[str], marker: Path, ranks: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `cmd` with every rank holding after step 6 for a signal; return once all of them wait."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, HOLD_ENV: f"6:{marker}"})
    deadline = time.monotonic() + TIMEOUT
    while not all(Path(f"{marker}.rank{r}").exists() for r in range(ranks)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the job never reached step 6 (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    return proc


def _saved_step(out: Path) -> int | None:
    checkpoint = latest_checkpoint(out)
    return json.loads((checkpoint / "trainer_state.json").read_text())["step"] if checkpoint else None


def _assert_resume_equals(out: Path, args: list[str], uninterrupted: Path,
                          env: dict[str, str] | None = None) -> None:
    resumed = _torchrun([*args, "--resume"], env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    w, expected = _weights(out), _weights(uninterrupted)
    for name in expected:
        assert torch.equal(w[name], expected[name]), name
    assert _losses(out) == _losses(uninterrupted)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from minitx.rundir import load_model

    model, _ = load_model(run)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _losses(run: Path) -> list[tuple[float, float]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(m["train_loss"], m["val_loss"]) for m in map(json.loads, lines)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from minitx.corpus import generate_corpus

    path = tmp_path_factory.mktemp("ddp") / "stories.txt"
    path.write_text(generate_corpus(60_000, 0), encoding="utf-8")
    return path


def _args(corpus: Path, out: Path) -> list[str]:
    """The flags of `two_ranks`, into `out`."""
    return [str(corpus), "--out", str(out), "--batch-size", "4", "--grad-accum", "2", *MODEL]


@pytest.fixture(scope="module")
def two_ranks(corpus: Path) -> Path:
    """An uninterrupted run: 2 ranks × batch 4, grad-accum 2 (global batch 16)."""
    out = corpus.parent / "two"
    done = _torchrun([str(corpus), "--out", str(out), "--batch-size", "4", "--grad-accum", "2", *MODEL])
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_every_rank_draws_the_same_global_batch_and_keeps_its_own_slice() -> None:
    data = torch.arange(1000)
    whole = BatchSampler(data, 8, 6, seed=3).next()[0]
    parts = [BatchSampler(data, 8, 3, seed=3, rank=r, world_size=2).next()[0] for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)


def test_world_comes_from_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = World.from_env()
    assert (world.rank, world.local_rank, world.size, world.is_main, world.distributed) == (3, 1, 4, False, True)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert World.from_env() == World(0, 0, 1)


@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_the_whole_batch(corpus: Path, two_ranks: Path) -> None:
    one = corpus.parent / "one"
    done = _minitx([str(corpus), "--out", str(one), "--batch-size", "8", "--grad-accum", "2", "--threads", "1",
                    *MODEL])
    assert done.returncode == 0, done.stderr[-2000:]
    for (t2, v2), (t1, v1) in zip(_losses(two_ranks), _losses(one), strict=True):
        assert t2 == pytest.approx(t1, abs=1e-5) and v2 == pytest.approx(v1, abs=1e-5)
    w2, w1 = _weights(two_ranks), _weights(one)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_without_accumulation_two_ranks_also_equal_one(corpus: Path) -> None:
    args = [a for a in MODEL]
    two, one = corpus.parent / "two-noaccum", corpus.parent / "one-noaccum"
    done = _torchrun([str(corpus), "--out", str(two), "--batch-size", "4", *args])
    assert done.returncode == 0, done.stderr[-2000:]
    done = _minitx([str(corpus), "--out", str(one), "--batch-size", "8", "--threads", "1", *args])
    assert done.returncode == 0, done.stderr[-2000:]
    w2, w1 = _weights(two), _weights(one)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_resume_with_another_world_size_is_refused_in_one_line(two_ranks: Path, corpus: Path) -> None:
    done = _minitx([str(corpus), "--out", str(two_ranks), "--batch-size", "4", "--grad-accum", "2", *MODEL,
                    "--steps", "20", "--resume"])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 processes" in lines[0] and "this is 1" in lines[0]


@pytest.mark.slow
def test_with_default_flags_two_one_thread_ranks_choose_the_dtype_of_one_process_and_equal_it(corpus: Path) -> None:
    """No --dtype, no --threads: torchrun's ranks at OMP_NUM_THREADS=1 × batch 4 against one process × batch 8
    at its own default thread count. `--dtype auto` is a property of the machine, so both train in the same
    dtype; in float32 (every CPU without AMX) the weights agree to 1e-5."""
    args = [a for a in MODEL if a not in ("--dtype", "float32")]
    two, one = corpus.parent / "two-default", corpus.parent / "one-default"
    done = _torchrun([str(corpus), "--out", str(two), "--batch-size", "4", *args])
    assert done.returncode == 0, done.stderr[-2000:]
    plain = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = _minitx([str(corpus), "--out", str(one), "--batch-size", "8", *args], env=plain)
    assert done.returncode == 0, done.stderr[-2000:]
    from minitx.device import auto_dtype
    from minitx.rundir.files import read_config

    dtype = read_config(one)["train"]["dtype"]
    assert read_config(two)["train"]["dtype"] == dtype == auto_dtype("cpu").dtype
    w2, w1 = _weights(two), _weights(one)
    tolerance = 1e-5 if dtype == "float32" else 2e-2  # bf16 autocast rounds each batch shape its own way
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=tolerance, rtol=0)



# --------------------------------------------------------------------------------------------
# a rank that dies


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_and_resume_equals_the_uninterrupted_run(corpus: Path, two_ranks: Path) -> None:
    out = corpus.parent / "killed"
    args = _args(corpus, out)
    started = time.monotonic()
    crash = [sys.executable, "-m", "minitx", "train", "--nproc", "2", *args]  # the shortcut for torchrun
    crashed = subprocess.run(crash, capture_output=True, text=True, timeout=TIMEOUT,
                             env={**_env(), FAIL_ENV: "1:7"})  # rank 1 dies right after step 7
    assert crashed.returncode != 0
    assert time.monotonic() - started < 90  # the surviving rank did not hang (collectives time out at 100 s)
    # Rank 1 died before step 7's save, which needs every rank: the checkpoint kept is step 6's.
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None and _saved_step(out) == 6
    assert crashed.stderr.strip().splitlines() == [
        f"minitx: error: rank 1 stopped with exit code 1; torchrun stopped the other ranks -- the checkpoint "
        f"kept is {checkpoint}; continue with --resume"
    ]
    _assert_resume_equals(out, args, two_ranks)


@pytest.mark.slow
def test_under_plain_torchrun_a_lost_peer_is_one_minitx_line_and_no_traceback(corpus: Path) -> None:
    out = corpus.parent / "killed-torchrun"
    crashed = _torchrun(_args(corpus, out), env={**_env(), FAIL_ENV: "1:3"})
    assert crashed.returncode != 0
    ours = [line for line in crashed.stderr.splitlines() if line.startswith("minitx: ")]
    assert len(ours) == 1, crashed.stderr
    assert re.fullmatch(rf"minitx: error: rank 0 lost contact with the other ranks \([^;]*Connection (closed|reset) "
                        rf"by peer[^;]*\); the checkpoint kept is {re.escape(str(latest_checkpoint(out)))}; "
                        rf"continue with --resume", ours[0]), ours[0]
    assert not [line for line in crashed.stderr.splitlines() if line.startswith("[rank")], crashed.stderr
    assert f"exitcode  : {EXIT_PEER_LOST}" in crashed.stderr  # rank 0 left with its own code, not a signal
    assert _saved_step(out) == 2


# --------------------------------------------------------------------------------------------
# SIGTERM and Ctrl-C: save first, exit 130, resume exactly


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_to_a_two_rank_job_saves_first_exits_130_and_resume_equals_the_uninterrupted_run(
    corpus: Path, two_ranks: Path, tmp_path: Path, sig: signal.Signals,
) -> None:
    out = tmp_path / "run"
    args = _args(corpus, out)
    env = {**_env(), "MINITX_CACHE": str(tmp_path / "cache")}
    job = _held([sys.executable, "-m", "minitx", "train", "--nproc", "2", *args], tmp_path / "held", 2, env)
    job.send_signal(sig)
    stdout, stderr = job.communicate(timeout=TIMEOUT)
    assert job.returncode == 130, stderr[-2000:]
    assert stderr.strip() == ""  # no traceback, no torchrun report
    assert "training stopped early" in stdout and "--resume" in stdout
    assert _saved_step(out) == 6
    # Resume with the cache entry gone: both ranks prepare the same entry at once.
    shutil.rmtree(tmp_path / "cache")
    _assert_resume_equals(out, args, two_ranks, env=env)


@pytest.mark.slow
def test_ctrl_c_under_plain_torchrun_saves_first_and_resume_equals_the_uninterrupted_run(
    corpus: Path, two_ranks: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    args = _args(corpus, out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "minitx", "train", *args]
    job = _held(cmd, tmp_path / "held", 2, _env())
    job.send_signal(signal.SIGINT)  # torchrun passes it on to every rank
    stdout, stderr = job.communicate(timeout=TIMEOUT)
    ranks_said = [line for line in stderr.splitlines() if line.startswith(("[rank", "minitx: "))]
    assert ranks_said == [], stderr[-2000:]
    assert "training stopped early" in stdout
    assert _saved_step(out) == 6
    _assert_resume_equals(out, args, two_ranks)


# --------------------------------------------------------------------------------------------
# launching: two nodes, a c10d rendezvous on --port, and the refusals


@pytest.mark.slow
def test_two_nodes_on_one_machine_train_like_one_node_of_two(corpus: Path, two_ranks: Path) -> None:
    out = corpus.parent / "nodes"

    # Static rendezvous (node 0 hosts the store at --master-addr:--master-port): deterministic ranks and a
    # clean exit. The README shows c10d's elastic rendezvous, which on a loaded machine sometimes kept the
    # store-hosting torchrun alive for minutes after training had finished; `--port` below uses c10d.
    def launch(port: int) -> tuple[int, str]:
        cmd = lambda node: [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",  # noqa: E731
                            "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
                            "--nproc-per-node", "1", "-m", "minitx", "train", *_args(corpus, out), "--force"]
        nodes = [subprocess.Popen(cmd(n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
                 for n in (0, 1)]
        try:
            results = [p.communicate(timeout=TIMEOUT) for p in nodes]
        finally:
            for p in nodes:
                p.kill()
        code = max(abs(p.returncode) for p in nodes)
        return code, "\n".join(r[1][-1500:] for r in results)

    code, stderr = _with_a_free_port(launch)
    assert code == 0, stderr
    w, expected = _weights(out), _weights(two_ranks)
    for name in expected:
        torch.testing.assert_close(w[name], expected[name], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_nproc_with_a_port_rendezvous_through_c10d_like_standalone(corpus: Path, two_ranks: Path) -> None:
    out = corpus.parent / "c10d"

    def launch(port: int) -> tuple[int, str]:
        done = _minitx([*_args(corpus, out), "--force", "--nproc", "2", "--port", str(port)])
        return done.returncode, done.stderr

    code, stderr = _with_a_free_port(launch)
    assert code == 0, stderr[-2000:]
    w, expected = _weights(out), _weights(two_ranks)
    for name in expected:
        assert torch.equal(w[name], expected[name]), name


def _in_process(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def test_nproc_more_than_the_cores_is_one_line_before_anything_starts(tmp_path: Path, corpus: Path) -> None:
    cores = os.cpu_count() or 1
    done = _in_process(str(corpus), "--out", str(tmp_path / "x"), "--nproc", str(cores + 1), *MODEL)
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"--nproc {cores + 1} is more than the {cores} CPU cores here" in done.stderr
    assert not (tmp_path / "x").exists()


def test_nproc_on_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path, corpus: Path) -> None:
    with socket.socket() as busy:  # held open (listening) for the whole call: no race
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _in_process(str(corpus), "--out", str(tmp_path / "y"), "--nproc", "2", "--port", str(port), *MODEL)
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use; pass another --port" in done.stderr
    assert not (tmp_path / "y").exists()


# --------------------------------------------------------------------------------------------
# the relay of the ranks' stderr (no launch needed)

TORCHRUN_REPORT = """\
E1202 06:07:25.880000 11653 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 4) local_rank: 0
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
minitx FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-02_06:07:25
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 11683)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_06:07:25
  rank      : 0 (local_rank: 0)
  exitcode  : 4 (pid: 11676)
============================================================
"""


def test_the_relay_names_the_rank_that_failed_first_not_the_one_that_lost_its_peer() -> None:
    # torchrun compares whole seconds: the rank that only lost its peer may be called the root cause.
    lost = ("minitx: error: rank 0 lost contact with the other ranks (Connection closed by peer); "
            "the checkpoint kept is run/checkpoints/step-000006; continue with --resume\n")
    shown: list[str] = []
    report = relay_stderr(iter([lost, *TORCHRUN_REPORT.splitlines(keepends=True)]), shown.append)
    assert shown == []
    assert report.root_cause == 0 and report.failures == [(1, "1"), (0, "4")]
    assert report.first_failure() == (1, "1")


def test_the_relay_keeps_back_rank_tracebacks_and_native_dumps_and_shows_each_error_once() -> None:
    lines = ["note: reusing the token cache\n",
             "[rank0]: ╭──── Traceback (most recent call last) ────╮\n", "[rank0]: │ cli.py in wrapper │\n",
             "[rank0]: ╰──────────────────────────────────────────╯\n", "\n",
             "[rank0]: RuntimeError: something broke\n",
             "Fatal Python error: Aborted\n", "\n", "Thread 0x00007f (most recent call first):\n",
             '  File "x.py", line 3 in f\n', "\n",
             "minitx: error: run was trained by 2 processes and this is 1\n",
             "minitx: error: run was trained by 2 processes and this is 1\n"]
    shown: list[str] = []
    report = relay_stderr(iter(lines), shown.append)
    assert shown == ["note: reusing the token cache\n", "minitx: error: run was trained by 2 processes and this is 1\n"]
    assert report.ours and report.last_words == {0: "RuntimeError: something broke"}


def test_a_rank_that_lost_its_peer_is_never_named_as_the_cause() -> None:
    report = LaunchReport(peer_lost={0}, failures=[(0, "4"), (1, "-9")], root_cause=0)
    assert report.first_failure() == (1, "-9")
    assert LaunchReport(failures=[(0, "-15")], root_cause=0).first_failure() == (0, "-15")  # nothing better known
