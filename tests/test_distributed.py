"""DistributedDataParallel under torchrun, on CPU with gloo over 127.0.0.1.

Each torchrun launch starts fresh Python processes (a few seconds each), so the runs are shared
by module-scoped fixtures: one uninterrupted 2-rank run is compared with a 1-rank run of the same
global batch, with itself resumed after a crash, and with the same run launched as two "nodes".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minitx.dataset.batches import BatchSampler
from minitx.training.distributed import FAIL_ENV, World

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this PyTorch build has no torch.distributed with gloo",
)

MODEL = ["--tokenizer", "char", "--layers", "2", "--heads", "2", "--dim", "32", "--block-size", "32",
         "--steps", "12", "--eval-every", "6", "--eval-batches", "2", "--save-every", "1", "--lr", "3e-3",
         "--warmup", "2", "--device", "cpu", "--quiet"]
TIMEOUT = 240  # seconds any one launch may take before the test fails (a hang is a failure, not a skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MINITX_DIST_TIMEOUT": "100"}


def _torchrun(args: list[str], nproc: int = 2, env: dict[str, str] | None = None,
              where: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", *(where or ["--standalone"]),
           "--nproc-per-node", str(nproc), "-m", "minitx", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env or _env())


def _minitx(args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "minitx", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())


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


def test_a_killed_rank_ends_the_job_and_resume_equals_the_uninterrupted_run(corpus: Path, two_ranks: Path) -> None:
    out = corpus.parent / "killed"
    args = [str(corpus), "--out", str(out), "--batch-size", "4", "--grad-accum", "2", *MODEL]
    started = time.monotonic()
    crash = [sys.executable, "-m", "minitx", "train", "--nproc", "2", *args]  # the shortcut for torchrun
    crashed = subprocess.run(crash, capture_output=True, text=True, timeout=TIMEOUT,
                             env={**_env(), FAIL_ENV: "1:7"})  # rank 1 dies right after step 7
    assert crashed.returncode != 0
    assert time.monotonic() - started < 90  # the surviving rank did not hang (collectives time out at 100 s)
    assert crashed.stderr.strip().splitlines() == [
        "minitx: error: rank 1 stopped with exit code 1; torchrun stopped the other ranks -- the last checkpoint "
        "is kept, continue with --resume"
    ]
    from minitx.rundir import latest_checkpoint

    checkpoint = latest_checkpoint(out)
    state = json.loads((checkpoint / "trainer_state.json").read_text()) if checkpoint else None
    assert state is None or state["step"] <= 8
    resumed = _torchrun([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    w, expected = _weights(out), _weights(two_ranks)
    for name in expected:
        assert torch.equal(w[name], expected[name]), name
    assert _losses(out) == _losses(two_ranks)


def test_resume_with_another_world_size_is_refused_in_one_line(two_ranks: Path, corpus: Path) -> None:
    done = _minitx([str(corpus), "--out", str(two_ranks), "--batch-size", "4", "--grad-accum", "2", *MODEL,
                    "--steps", "20", "--resume"])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 processes" in lines[0] and "this is 1" in lines[0]


def test_two_nodes_on_one_machine_train_like_one_node_of_two(corpus: Path, two_ranks: Path) -> None:
    out = corpus.parent / "nodes"
    port = _free_port()
    # Static rendezvous (node 0 hosts the store at --master-addr:--master-port): deterministic ranks and a
    # clean exit. The README shows c10d's elastic rendezvous, which on a loaded machine sometimes kept the
    # store-hosting torchrun alive for minutes after training had finished.
    cmd = lambda node: [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),  # noqa: E731
                        "--master-addr", "127.0.0.1", "--master-port", str(port),
                        "--nproc-per-node", "1", "-m", "minitx", "train", str(corpus), "--out", str(out),
                        "--batch-size", "4", "--grad-accum", "2", *MODEL]
    nodes = [subprocess.Popen(cmd(n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for n in (0, 1)]
    try:
        results = [p.communicate(timeout=TIMEOUT) for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    assert [p.returncode for p in nodes] == [0, 0], [r[1][-1500:] for r in results]
    w, expected = _weights(out), _weights(two_ranks)
    for name in expected:
        torch.testing.assert_close(w[name], expected[name], atol=1e-6, rtol=0)


def test_nproc_mistakes_are_one_line_before_anything_starts(tmp_path: Path, corpus: Path) -> None:
    cores = os.cpu_count() or 1
    done = _minitx([str(corpus), "--out", str(tmp_path / "x"), "--nproc", str(cores + 1), *MODEL])
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "CPU cores" in done.stderr and not (tmp_path / "x").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _minitx([str(corpus), "--out", str(tmp_path / "y"), "--nproc", "2", "--port", str(port), *MODEL])
    assert done.returncode == 2 and "already in use" in done.stderr and len(done.stderr.strip().splitlines()) == 1
