"""Where the arithmetic runs: device, number type and CPU threads.

`--device auto` picks CUDA, then Apple's MPS, then the CPU -- nothing in minitx assumes CUDA.
`--dtype auto` picks by the kind of device (`auto_dtype`), the same answer on every rank and at every
thread count: bfloat16 on a CUDA GPU with bf16 and on a CPU with AMX tiles, float32 elsewhere.

On a CPU, the thread count matters more than people expect: two threads that must share a core with
another busy process spend their time waiting for each other (a 2-thread run beside another busy
process was measured 9x slower than 1 thread). So by default minitx counts the cores that are idle
right now and uses that many, honouring OMP_NUM_THREADS or --threads when given.
"""

from __future__ import annotations

import os
import time
from enum import Enum
from typing import NamedTuple

from minitx.errors import UserError


class Device(str, Enum):
    """Where to compute (`--device`); `auto` picks cuda, then mps, then cpu."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class DType(str, Enum):
    """The number type of training (`--dtype`); what `auto` picks: `minitx.training.precision`."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


DEVICES = tuple(d.value for d in Device)
DTYPES = tuple(d.value for d in DType)


def resolve_device(name: str = "auto") -> str:
    """Return a concrete torch device string for `name` (auto → cuda, mps or cpu)."""
    import torch

    base = name.split(":")[0]
    if base not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    return name


def resolve_dtype(name: str, device: str) -> str:
    """Return 'float32' or 'bfloat16' for the requested --dtype on `device` (`auto`: `auto_dtype`)."""
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    if name != "auto":
        return name
    return auto_dtype(device).dtype


class AutoDtype(NamedTuple):
    """What `--dtype auto` picks on a device, and why (one line, for `minitx info --device`)."""

    dtype: str
    reason: str


def auto_dtype(device: str) -> AutoDtype:
    """`--dtype auto` on `device`, decided by the kind of hardware, never by a timing.

    bfloat16 autocast pays most where the hardware multiplies bf16 much faster than fp32:
      * a CUDA GPU that supports bf16 -> bfloat16;
      * a CPU with AMX tiles (`amx_bf16`: Intel Sapphire Rapids and later) -> bfloat16;
      * any other CPU -> float32, including AVX-512-BF16 without AMX (AMD Zen 4/5, Cooper Lake). There
        bf16 autocast does speed a step up (nanoGPT's CPU shape on a 2-core EPYC, torch 2.13: 1.31x
        at 2 threads, 1.52x at 1 thread), but fp32 keeps what only it gives: the same weights from 2
        ranks x batch 4 as from 1 process x batch 8, and bit-for-bit reruns; `--dtype bfloat16` is
        one flag away (docs/decisions.md);
      * Apple's MPS -> float32.
    A rule of the device kind gives the same answer at every thread count, under any load, and on
    every rank of a distributed job (which the old rule -- measured peaks, bf16 at 2x -- did not:
    one process at 2 threads chose fp32 where 2 ranks at 1 thread chose bf16).
    """
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return AutoDtype("bfloat16", "a CUDA GPU with bfloat16: bf16 autocast (fp32 weights and optimizer state)")
        return AutoDtype("float32", "a CUDA GPU without bfloat16 support: float32")
    if kind == "cpu":
        if cpu_has_amx():
            return AutoDtype("bfloat16", "a CPU with AMX tiles (amx_bf16): bf16 matmuls run on the tiles, "
                                         "bf16 autocast")
        return AutoDtype("float32", "a CPU without AMX tiles: float32, so that every run repeats bit for bit "
                                    "and DDP equals one process (--dtype bfloat16 trades that for speed)")
    return AutoDtype("float32", f"{kind}: float32")


def cpu_has_amx() -> bool:
    """Does this CPU have AMX tiles for bf16 (`amx_bf16`, as torch's own CPU feature check reports it)?"""
    import torch

    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:  # an older torch: its private check, if any
        check = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(check()) if check is not None else False
    return bool(get_capabilities().get("amx_bf16", False))


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields)


def idle_cores(sample_seconds: float = 0.2, samples: int = 3) -> int | None:
    """How many CPU cores are idle now: the most seen over up to `samples` windows of `sample_seconds`.

    One window can catch a process that is just finishing (a test, a compiler); the run it sets the
    threads for lasts minutes, so a busy core must look busy in every window (it stops early once
    all cores are idle). None where /proc/stat is unavailable.
    """
    cores = os.cpu_count() or 1
    best = None
    before = _cpu_times()
    for _ in range(samples):
        if before is None:
            return None
        time.sleep(sample_seconds)
        after = _cpu_times()
        if after is None or after[1] == before[1]:
            return best
        idle_share = (after[0] - before[0]) / (after[1] - before[1])
        free = max(1, min(cores, round(idle_share * cores)))
        best = free if best is None else max(best, free)
        if best == cores:
            break
        before = after
    return best


def choose_threads(requested: int = 0) -> tuple[int, str]:
    """Decide the CPU thread count: --threads, else OMP_NUM_THREADS, else the idle cores."""
    if requested and requested > 0:
        return requested, "--threads"
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    free = idle_cores()
    if free is None:
        return os.cpu_count() or 1, "all cores"
    return free, "idle cores"


def apply_threads(requested: int = 0) -> tuple[int, str]:
    """Set torch's intra-op thread count (see choose_threads) and return (threads, why)."""
    import torch

    threads, why = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads, why
