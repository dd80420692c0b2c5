"""Loading a trained run for use: the one way every command that reads a run does it.

`load_for_inference(run_dir, device, threads, quantize)` checks `--quantize` before any file is read,
picks the device (`--device auto`: cuda, then mps, then cpu), sets the CPU threads on a CPU, loads the
weights strictly (every name, every shape) and applies the quantization. generate, eval,
inspect-attention and inspect-positions all call it, so they behave the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.rundir import Run


def load_for_inference(
    run_dir: str | Path, device: str = "auto", threads: int = 0, quantize: str | None = None
) -> tuple[GPT, Run]:
    """The run's model in eval mode on the chosen device (quantized if asked), and the run itself."""
    from minitx.device import apply_threads, resolve_device
    from minitx.model.quantize import apply_quantization, check_quantize
    from minitx.rundir import load_model

    check_quantize(quantize)
    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    model, run = load_model(run_dir, device=device)
    apply_quantization(model, quantize)
    return model, run
