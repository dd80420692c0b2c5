"""Which number type a training run computes in: `--dtype auto` decided by the kind of device.

bfloat16 autocast runs the matmuls in bf16 (8 exponent bits, like fp32, so no loss scaling) while the
weights, the optimizer state, LayerNorm and the loss stay fp32. It pays where the hardware multiplies
bf16 much faster than fp32: GPUs, and CPUs with AMX tiles. Where it does not (an AVX-512-BF16 CPU
without AMX: the casts ate the gain), fp32 is both simpler and as fast (figures: docs/decisions.md).
The rule is `minitx.device.auto_dtype`: a property of the hardware, so the answer does not move
with the thread count, the load of the moment, or the rank of a distributed job.
"""

from __future__ import annotations

from minitx.device import AutoDtype, auto_dtype, resolve_dtype


def train_dtype(name: str, device: str, *, resumed: bool = False) -> str:
    """The dtype a run trains in: `name` if given; for `auto`, `auto_dtype(device)`.

    A run resumed with a saved `auto` was saved before `auto` could mean bfloat16 on a CPU: it keeps the
    old meaning, so it continues with the arithmetic it started with.
    """
    resolved = resolve_dtype(name, device)
    if name == "auto" and resumed and device.startswith("cpu"):
        return "float32"
    return resolved


def explain_auto(device: str) -> AutoDtype:
    """What `--dtype auto` picks on `device` and why, in one line (`minitx info --device` prints it)."""
    return auto_dtype(device)
