"""Which number type a training run computes in: `--dtype auto` decided by measurement, not by a list.

bfloat16 autocast runs the matmuls in bf16 (8 exponent bits, like fp32, so no loss scaling) while the
weights, the optimizer state, LayerNorm and the loss stay fp32. It pays where the hardware multiplies
bf16 much faster than fp32: GPUs, and CPUs with AMX tiles. Where it does not (an AVX-512-BF16 CPU
without AMX: the casts ate the gain), fp32 is both simpler and as fast (figures: docs/decisions.md).
So `auto` on a CPU compares the two cached matmul peaks of `minitx.training.mfu`.
"""

from __future__ import annotations

from minitx.device import resolve_dtype
from minitx.training import mfu

#: `--dtype auto` on a CPU picks bfloat16 when its measured bf16 matmul peak is at least this many times fp32's.
BF16_PAYS = 2.0


def train_dtype(name: str, device: str, *, resumed: bool = False) -> str:
    """The dtype a run trains in: `name` if given; for `auto`, bfloat16 where it pays (GPU support, or a CPU
    whose bf16 peak is ≥ BF16_PAYS × its fp32 peak), else float32.

    A run resumed with a saved `auto` was saved before `auto` could mean bfloat16 on a CPU: it keeps the
    old meaning, so it continues with the arithmetic it started with.
    """
    resolved = resolve_dtype(name, device)
    if name != "auto" or resumed or not device.startswith("cpu"):
        return resolved
    fp32, bf16 = mfu.matmul_peak(device, "float32"), mfu.matmul_peak(device, "bfloat16")
    return "bfloat16" if bf16 is not None and fp32 is not None and bf16.flops >= BF16_PAYS * fp32.flops else "float32"
