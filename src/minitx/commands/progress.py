"""The training progress view: a live bar in a terminal, plain lines in a log file or CI.

The trainer reports through a `TrainProgress` (training/loop.py); this module draws what it reports.
A rich bar redrawn in place makes no sense in a file (it would be printed once, cut to 80 columns),
so when the console is not a terminal each report becomes one complete line instead.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from minitx.commands.display import make_console, percent
from minitx.training.loop import TrainProgress

if TYPE_CHECKING:
    from rich.console import Console

#: A plain-line view prints about this many step lines per run (besides one per evaluation).
PLAIN_STEP_LINES = 10


class TrainDisplay(TrainProgress):
    """Step, loss, val loss (with the expected band), lr, tokens/s, MFU, elapsed time and ETA.

    `plain=None` chooses by the console: a live bar in a terminal, plain lines elsewhere.
    """

    def __init__(self, console: Console | None = None, plain: bool | None = None) -> None:
        self.console = console if console is not None else make_console()
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.progress: Any = None
        self.band: tuple[float, float] | None = None
        self._last_refresh = 0.0

    def started(self, total: int, start: int, band: tuple[float, float] | None) -> None:
        self.total, self.start, self.band = total, start, band
        self.every = max(1, (total - start) // PLAIN_STEP_LINES)
        self.t0 = time.perf_counter()
        if self.plain:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(bar_width=24),
            TextColumn("step {task.completed:>5.0f}/{task.total:.0f}"),
            TextColumn("loss [cyan]{task.fields[loss]}[/]"),
            TextColumn("val [magenta]{task.fields[val]}[/]{task.fields[band]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[rate]} tok/s"),
            TextColumn("MFU {task.fields[mfu]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        band_text = f" [dim](expect {band[0]:.2f}–{band[1]:.2f})[/]" if band else ""
        self.task = self.progress.add_task(
            "train", total=total, completed=start, loss="-", val="-", band=band_text, lr="-", rate="-", mfu="-"
        )
        self.progress.start()

    def stepped(self, step: int, loss: float, lr: float, tokens_per_second: float, mfu: float | None) -> None:
        if self.plain:
            if (step - self.start) % self.every == 0 or step == self.total:
                elapsed = time.perf_counter() - self.t0
                left = elapsed / max(1, step - self.start) * (self.total - step)
                self.console.print(
                    f"step {step:>6}/{self.total}  loss {loss:.4f}  lr {lr:.2e}  {tokens_per_second:,.0f} tok/s  "
                    f"MFU {percent(mfu)}  elapsed {_clock(elapsed)}  ETA {_clock(left)}",
                    highlight=False, soft_wrap=True,
                )
            return
        now = time.perf_counter()
        if now - self._last_refresh < 0.1:  # rendering costs; 10 updates a second is plenty
            return
        self._last_refresh = now
        self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                             rate=f"{tokens_per_second:,.0f}", mfu=percent(mfu))

    def evaluated(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=record["step"], val=f"{record['val_loss']:.4f}")
        train = record["train_loss"]
        train_text = f"{train:.4f}" if train is not None else "-"
        band = f"  (expect {self.band[0]:.2f}–{self.band[1]:.2f})" if self.band and self.plain else ""
        self.console.print(
            f"step {record['step']:>6}  train {train_text}  val {record['val_loss']:.4f}{band}  "
            f"({record['val_bpb']:.3f} bits/byte)  {record['tokens_per_second']:,.0f} tok/s  "
            f"MFU {percent(record.get('mfu'))}",
            highlight=False, soft_wrap=True,
        )

    def finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _clock(seconds: float) -> str:
    """0:03:07 for 187.2 seconds."""
    return str(timedelta(seconds=round(seconds)))
