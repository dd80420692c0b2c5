"""Training on several processes at once: PyTorch's DistributedDataParallel (DDP) under torchrun.

Data parallelism in one picture, for N processes ("ranks") each holding a full copy of the model:

    one seeded generator draws the GLOBAL batch         B × N windows, the same on every rank
    rank r takes rows r·B .. (r+1)·B - 1                 its own disjoint slice
    forward + backward on the slice                      local gradient g_r
    all-reduce: g = (g_0 + ... + g_{N-1}) / N            every rank now holds the same mean gradient
    AdamW step                                           identical weights stay identical

Because the mean of the N slice means is the mean over the whole global batch, N ranks × batch B
compute the same step as 1 rank × batch N·B: the data a run sees does not depend on how it is split.
With --grad-accum K the all-reduce is skipped (`no_sync`) on the first K - 1 micro-batches -- the
gradients add up locally -- and happens once, on the last.

torchrun starts the N copies of `minitx train` and tells each one who it is through environment
variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); `World.from_env` reads them.
The backend is gloo on CPUs and nccl on CUDA GPUs (rank r uses `cuda:LOCAL_RANK`). Only rank 0
prints, logs metrics and writes checkpoints; every rank's random state goes into the checkpoint.
If one rank dies, the others' next collective fails (gloo: "Connection closed by peer"); every
collective here, and the DDP all-reduce in backward (`peers_or_lost` around the loop), turns such a
backend error into `PeerLost`, which `minitx train` ends with one line and EXIT_PEER_LOST; torchrun
stops the rest. A collective that waits longer than MINITX_DIST_TIMEOUT seconds (default 120) fails
the same way instead of hanging forever. docs/reliability.md lists every way a job can end.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from minitx.errors import UserError

#: Seconds a collective (all-reduce, barrier) may wait for the other ranks before it fails.
DEFAULT_TIMEOUT_SECONDS = 120

#: The exit code of a rank that lost its peers: a consequence of another rank's failure, not a cause.
EXIT_PEER_LOST = 4

#: How a rank that lost its peers says so (one line on stderr); the launcher recognises and keeps it back.
PEER_LOST_WORDS = "lost contact with the other ranks"


class PeerLost(Exception):
    """Another rank is gone (crashed, killed, unreachable, timed out): this rank's collective failed."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


#: Words of the backend errors that mean "a peer is gone" (gloo, NCCL, the TCP store), in lower case.
_LOST_WORDS = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout", "gloo", "nccl",
               "socket", "peer")


def is_backend_error(error: BaseException) -> bool:
    """Does `error` come from the collective backend (a lost peer), rather than from a bug?

    >>> is_backend_error(RuntimeError("[pair.cc:534] Connection closed by peer [127.0.0.1]:5012"))
    True
    >>> is_backend_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    False
    """
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(word in text for word in _LOST_WORDS)


@contextmanager
def peers_or_lost(world: World) -> Iterator[None]:
    """Inside: a backend error of a collective (or of DDP's all-reduce in backward) becomes PeerLost."""
    try:
        yield
    except RuntimeError as e:
        if not world.distributed or not is_backend_error(e):
            raise
        raise PeerLost(f"{PEER_LOST_WORDS} ({backend_words(e)})") from None


def backend_words(error: BaseException) -> str:
    """The gist of a backend error: its first sentence, without the C++ source location.

    >>> backend_words(RuntimeError("[../gloo/pair.cc:553] Connection closed by peer [127.0.0.1]:31385. This is..."))
    'Connection closed by peer [127.0.0.1]:31385'
    """
    import re

    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". ")[0].rstrip(".")[:160]


@dataclass(frozen=True)
class World:
    """Who this process is among the processes training together."""

    rank: int = 0  # 0 .. size - 1 over all machines
    local_rank: int = 0  # 0 .. (processes on this machine) - 1: picks the GPU
    size: int = 1  # the world size: how many processes train together

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in RANK / LOCAL_RANK / WORLD_SIZE (one process when unset)."""
        try:
            size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (set by torchrun)") from None
        return cls(rank=rank, local_rank=local_rank, size=size)


def rank_device(device: str, world: World) -> str:
    """The device of this rank: on CUDA each rank gets its own GPU, `cuda:LOCAL_RANK`."""
    if world.distributed and device.startswith("cuda"):
        return f"cuda:{world.local_rank}"
    return device


def backend_for(device: str) -> str:
    """nccl for CUDA GPUs, gloo for everything else (CPUs; mps has no collective backend of its own)."""
    return "nccl" if device.startswith("cuda") else "gloo"


def check_can_launch(nproc: int, device: str) -> None:
    """Refuse a launch that cannot work, before anything starts (UserError, one line)."""
    import torch.distributed as dist

    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}")
    if not dist.is_available():
        raise UserError("this build of PyTorch has no torch.distributed; --nproc needs one that does")
    backend = backend_for(device)
    if backend == "nccl":
        if not dist.is_nccl_available():
            raise UserError("--device cuda with --nproc needs NCCL, which this PyTorch build lacks; use --device cpu")
        if nproc > torch.cuda.device_count():
            raise UserError(f"--nproc {nproc} is more than the {torch.cuda.device_count()} CUDA GPUs here")
    else:
        if not dist.is_gloo_available():
            raise UserError("--nproc on a CPU needs the gloo backend, which this PyTorch build lacks")
        cores = os.cpu_count() or 1
        if nproc > cores:
            raise UserError(f"--nproc {nproc} is more than the {cores} CPU cores here; use at most {cores}")


def check_port_free(host: str, port: int) -> None:
    """A UserError when something already listens on host:port (torchrun would fail with a traceback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise UserError(f"port {port} on {host} is already in use; pass another --port") from None


def init(world: World, device: str) -> None:
    """Join the process group (a no-op for one process)."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    seconds = int(os.environ.get("MINITX_DIST_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
    dist.init_process_group(backend_for(device), timeout=timedelta(seconds=seconds))


def shutdown(world: World) -> None:
    """Leave the process group (a no-op for one process)."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        with peers_or_lost(world):
            dist.barrier()


def mean_over_ranks(value: float, world: World, device: str) -> float:
    """The mean of one number over all ranks (the number itself for one process)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    with peers_or_lost(world):
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / world.size


def any_rank(flag: bool, world: World, device: str) -> bool:
    """True on every rank if `flag` is true on any rank (the flag itself for one process)."""
    if not world.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    with peers_or_lost(world):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_from_main(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every rank (pass anything, e.g. None, on the others)."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    with peers_or_lost(world):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_all(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] for one process)."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    with peers_or_lost(world):
        dist.all_gather_object(out, obj)
    return out


#: Test-only fault injection: "RANK:STEP" makes that rank exit abruptly right after that step.
FAIL_ENV = "MINITX_TEST_FAIL_RANK_AT_STEP"


#: Test-only: "STEP:FILE[:K]" makes every rank, right after that step, create FILE.rankN and wait for a
#: signal, K times (default 1; FILE.rankN.K marks each one handled), so that a test can send SIGINT or
#: SIGTERM at a moment it knows, mid-run, without guessing at timing.
HOLD_ENV = "MINITX_TEST_HOLD_AT_STEP"


def maybe_fail_for_test(world: World, step: int) -> None:
    """Die like a crashed machine (no cleanup, exit 1) when FAIL_ENV names this rank and step;
    hold until a signal arrives when HOLD_ENV names this step."""
    spec = os.environ.get(FAIL_ENV)
    if spec and spec == f"{world.rank}:{step}":
        os._exit(1)
    hold = os.environ.get(HOLD_ENV, "").split(":")
    if hold[0] == str(step) and len(hold) >= 2:
        import signal
        from pathlib import Path

        marker = f"{hold[1]}.rank{world.rank}"
        Path(marker).touch()
        for k in range(1, int(hold[2]) + 1 if len(hold) > 2 else 2):
            signal.pause()  # returns once a signal handler ran (the loop's: it asks to stop)
            Path(f"{marker}.{k}").touch()


def wrap(model: torch.nn.Module, world: World, device: str) -> torch.nn.Module:
    """The model DDP trains: gradients are averaged over ranks during backward (the model itself for one)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)
