"""Loading a trained run for use: the one way every command that reads a run does it.

`load_for_inference(run_dir, device, threads, quantize)` checks `--quantize` before any file is read,
picks the device (`--device auto`: cuda, then mps, then cpu), sets the CPU threads on a CPU, loads the
weights strictly (every name, every shape) and applies the quantization. generate, eval,
inspect-attention, inspect-positions and translate all call it, so they behave the same; a run of an
architecture the command cannot use is refused in one line (`require_arch`), before its weights are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minitx.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from minitx.rundir import Run


def load_for_inference(
    run_dir: str | Path, device: str = "auto", threads: int = 0, quantize: str | None = None, *,
    arch: str = "gpt", command: str = "this command",
) -> tuple[nn.Module, Run]:
    """The run's model in eval mode on the chosen device (quantized if asked), and the run itself.

    The model is the registry's class for the run's `arch` (a GPT, or an EncoderDecoder for translate);
    `quantize` works on either (`quantize_int8` walks any model's linear maps).

    A run of another architecture than `arch` is refused in one line (`require_arch`) before its weights are read.
    """
    from minitx.device import apply_threads, resolve_device
    from minitx.model.quantize import apply_quantization, check_quantize
    from minitx.rundir import load_model, load_run

    check_quantize(quantize)
    require_arch(load_run(run_dir), arch, command)
    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    model, run = load_model(run_dir, device=device)
    apply_quantization(model, quantize)
    return model, run


#: What to do with a run of each architecture instead, for the one-line refusal of a command that cannot use it.
USE_INSTEAD = {
    "gpt": "minitx generate RUN (a decoder-only run continues text; it does not translate)",
    "encoder-decoder": 'minitx translate RUN "The red ball is big."',
}


def require_arch(run: Run, arch: str, command: str) -> None:
    """UserError unless the run's `arch` is `arch`: `minitx generate` on an encoder-decoder run, and the like."""
    found = run.model_config.arch
    if found != arch:
        kind = {"gpt": "a decoder-only (gpt)", "encoder-decoder": "an encoder-decoder"}
        raise UserError(f"{run.path} is {kind.get(found, found)} run and {command} works on {kind.get(arch, arch)} "
                        f"run only; use {USE_INSTEAD.get(found, 'minitx info RUN')}")
