"""Loading a trained run for use: the one way every command that reads a run does it.

`load_for_inference(run_dir, device, threads, quantize, command=...)` checks `--quantize` before any
file is read, refuses a run whose architecture the command does not serve (one line, generated from
the architecture's `commands`: `model.registry.require_command`), picks the device (`--device auto`:
cuda, then mps, then cpu), sets the CPU threads on a CPU, loads the weights strictly (every name,
every shape) and applies the quantization. generate, eval, inspect-*, translate all call it, so they
behave the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from minitx.model.architecture import Architecture
    from minitx.rundir import Run


def load_for_inference(
    run_dir: str | Path, device: str = "auto", threads: int = 0, quantize: str | None = None, *,
    command: str, arch: str | None = None,
) -> tuple[nn.Module, Run]:
    """The run's model in eval mode on the chosen device (quantized if asked), and the run itself.

    The model is the registry's class for the run's `arch`; `quantize` works on any (`quantize_int8` walks
    any model's linear maps). A run of an architecture that `command` does not serve is refused in one line
    before its weights are read. (`arch`, which callers used to name the architecture they expected, is
    accepted and unused: the command says which ones it serves.)
    """
    from minitx.device import apply_threads, resolve_device
    from minitx.model.quantize import apply_quantization, check_quantize
    from minitx.rundir import load_model, load_run

    check_quantize(quantize)
    require_command(load_run(run_dir), command)
    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    model, run = load_model(run_dir, device=device)
    apply_quantization(model, quantize)
    return model, run


def require_command(run: Run, command: str) -> Architecture:
    """The run's architecture if `command` ("minitx generate") serves it; else a UserError in one line:
    `minitx generate` on an encoder-decoder run names what to run instead."""
    from minitx.model.registry import require_command as require

    return require(run.model_config.arch, command, run.path)


def run_architecture(run_dir: str | Path) -> Architecture:
    """The architecture of the run in `run_dir`, read from its config before any weights."""
    from minitx.model.registry import architecture
    from minitx.rundir import load_run

    return architecture(load_run(run_dir).model_config.arch)
