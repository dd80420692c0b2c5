"""`minitx train`: build a run from flags, train it with a live progress view, print the summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from minitx.commands.display import fmt, make_console
from minitx.errors import require_file

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.training.loop import Trainer, TrainResult


def train(files: list[Path], *, out: Path, flags: dict[str, Any], resume: bool, force: bool, quiet: bool) -> int:
    """Train (or resume) a run; return the exit code (130 when Ctrl-C stopped it after saving).

    `flags` holds every ModelConfig and TrainConfig flag by field name, None where not given.
    """
    from minitx.training.setup import run_training

    for f in files:
        require_file(f, "corpus file")
    trainer, result = run_training(files, out, flags=flags, resume=resume, force=force, show_progress=not quiet)
    print_train_summary(trainer, result, make_console())
    return 130 if result.interrupted else 0


def print_train_summary(trainer: Trainer, result: TrainResult, console: Console) -> None:
    """The end-of-training table, and what to do next."""
    mc = trainer.model_config
    title = "training stopped early (Ctrl-C) — checkpoint saved" if result.interrupted else "training done"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("run directory", str(trainer.run_dir))
    table.add_row("model", f"{mc.n_layers} layers × {mc.n_heads} heads × {mc.dim} wide, block {mc.block_size}, "
                           f"pos {mc.pos}")
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("steps", f"{result.step:,} / {result.steps:,}")
    table.add_row("train loss", fmt(result.train_loss))
    table.add_row("val loss", fmt(result.val_loss))
    table.add_row("val bits per byte", fmt(result.val_bpb, 3))
    table.add_row("time", f"{result.seconds:.1f} s")
    table.add_row("tokens / s", f"{result.tokens_per_second:,.0f}")
    compiled = ", torch.compile" if getattr(trainer, "compiled", False) else ""
    table.add_row("device", f"{trainer.device}, {trainer.dtype}, {trainer.threads} threads ({trainer.threads_why})"
                            f"{compiled}")
    console.print(table)
    if result.interrupted:
        console.print(f"continue with: minitx train --out {trainer.run_dir} --resume")
    else:
        console.print(f"next: minitx generate {trainer.run_dir}    minitx eval {trainer.run_dir}")
