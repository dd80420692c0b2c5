"""Loading a trained run for use: the one way every command that reads a run does it.

`open_run(run_dir, device, threads, quantize, command=...)` checks `--quantize` before any file is
read, refuses a run whose architecture the command does not serve (one line, generated from the
architecture's `commands`: `model.registry.require_command`), and then loads it through the API's
loader, `minitx.api.load` (the device: `--device auto` takes cuda, then mps, then cpu; the CPU
threads; the weights strictly, every name and shape; the quantization). It returns the API's
`LoadedRun`, whose verbs the commands call. generate, eval, inspect-*, translate all load this way,
so they behave the same, and as a notebook's `minitx.load(RUN)` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:

    from minitx.api import LoadedRun
    from minitx.model.architecture import Architecture
    from minitx.rundir import Run


def open_run(run_dir: str | Path, device: str = "auto", threads: int = 0, quantize: str | None = None, *,
             command: str) -> LoadedRun:
    """The run loaded for `command` ("minitx generate"): its model in eval mode on the chosen device (quantized if
    asked), with the API's verbs. A run of an architecture that `command` does not serve is refused in one line
    before its weights are read."""
    from minitx.api import load
    from minitx.model.quantize import check_quantize
    from minitx.rundir import load_run

    check_quantize(quantize)
    require_command(load_run(run_dir), command)
    return load(run_dir, device, threads, quantize=quantize)


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
