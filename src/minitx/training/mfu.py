"""Model FLOPs utilisation: the share of this machine's measured matmul rate that training achieves.

    MFU = tokens/s × FLOPs per token / peak FLOP/s

FLOPs per token of a training step (forward + backward = 3 × forward, each multiply-add 2 FLOPs):

    6 · (L·(4 + 2r)·d² + d·V)   the weight matmuls: q, k, v, output (4d²), the MLP (2r·d²), the output layer
  + 12 · L · T · d              attention: q·k scores and the weighted sum of values over T positions

(as PaLM's appendix B counts them; the causal mask's skipped half is counted too). The peak is not a
datasheet number: it is the best rate of a large square matmul in the run's dtype, measured once per
machine (device name, dtype, threads) and cached in the user cache directory. So MFU means the same
on a laptop CPU and a GPU, and 100% is what this torch reaches on its best-shaped matmul here.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from minitx.config import ModelConfig
from minitx.fileio import atomic_write_json
from minitx.tokens.cache import cache_root

PEAK_FILE = "device_peak.json"


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token of a model of shape `cfg` (see the formula above).

    >>> flops_per_token(ModelConfig(vocab_size=65, n_layers=4, n_heads=4, dim=128, block_size=64))
    5161728.0
    """
    matmul_weights = cfg.n_layers * (4 + 2 * cfg.mlp_ratio) * cfg.dim**2 + cfg.dim * cfg.vocab_size
    return float(6 * matmul_weights + 12 * cfg.n_layers * cfg.block_size * cfg.dim)


@dataclass
class Peak:
    """One measured matmul peak."""

    flops: float  # FLOP/s
    device_name: str
    dtype: str
    threads: int
    size: int  # the matmul was size × size by size × size
    measured_at: str  # UTC, ISO 8601
    seconds: float  # how long the measurement took


def device_name(device: str) -> str:
    """A human name for the processor behind `device`: the CPU model, or the GPU's name."""
    kind = device.split(":")[0]
    if kind == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    if kind == "mps":
        return f"Apple MPS ({platform.machine()})"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def peak_key(device: str, dtype: str) -> str:
    return f"{device_name(device)} | {dtype} | {torch.get_num_threads()} threads"


def cached_peaks() -> dict[str, dict]:
    """Every peak measured on this machine, by key (empty when none, or the file is damaged)."""
    path = cache_root() / PEAK_FILE
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def matmul_peak(device: str, dtype: str, measure: bool = True) -> Peak | None:
    """The cached peak of `device` in `dtype` at the current thread count; measured (a few seconds) if new.

    With `measure=False`, None when nothing is cached.
    """
    key = peak_key(device, dtype)
    found = cached_peaks().get(key)
    if found is not None:
        try:
            return Peak(**found)
        except TypeError:
            pass  # written by another version: measure again
    if not measure:
        return None
    peak = measure_matmul_peak(device, dtype)
    peaks = cached_peaks()
    peaks[key] = asdict(peak)
    try:
        atomic_write_json(cache_root() / PEAK_FILE, peaks)
    except OSError:
        pass  # a read-only cache: measure again next time
    return peak


def measure_matmul_peak(device: str, dtype: str, budget_seconds: float = 1.5) -> Peak:
    """The best FLOP/s of repeated size × size matmuls within about `budget_seconds`.

    Uses constant tensors, not random ones, so the global random state (the run's data order and
    dropout) is untouched.
    """
    kind = device.split(":")[0]
    size = 1024 if kind == "cpu" else 8192
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    a = torch.full((size, size), 0.5, device=device, dtype=torch_dtype)
    b = torch.full((size, size), 0.25, device=device, dtype=torch_dtype)

    def sync() -> None:
        if kind == "cuda":
            torch.cuda.synchronize(torch.device(device))
        elif kind == "mps":
            torch.mps.synchronize()

    started = time.perf_counter()
    with torch.no_grad():
        torch.mm(a, b)  # warm up: thread pools, kernels, clocks
        sync()
        best, reps, trials = 0.0, 1, 0
        while trials < 3 or time.perf_counter() - started < budget_seconds:
            trials += 1
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            sync()
            elapsed = time.perf_counter() - t0
            best = max(best, 2 * size**3 * reps / elapsed)
            if elapsed < 0.05:
                reps *= 2  # time batches long enough for the clock
    return Peak(flops=best, device_name=device_name(device), dtype=dtype, threads=torch.get_num_threads(),
                size=size, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                seconds=round(time.perf_counter() - started, 2))


def mfu(tokens_per_second: float, flops_per_token: float, peak_flops: float, devices: int = 1) -> float:
    """Model FLOPs utilisation, a fraction: 6,000 tokens/s × 5.4 MFLOP per token on a 100 GFLOP/s peak ≈ 0.32.

    >>> round(mfu(6000, 5.4e6, 100e9), 2)
    0.32
    """
    return tokens_per_second * flops_per_token / (peak_flops * devices)
