"""`minitx train`: build a run from flags, train it with a live progress view, print the summary."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from minitx.commands.display import fmt, make_console, percent
from minitx.commands.prepare import prepare_progress
from minitx.console import safe

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.training.loop import Trainer, TrainResult


def train(
    files: list[Path], *, out: Path, flags: dict[str, Any], resume: bool, force: bool, quiet: bool,
    nproc: int = 1, port: int | None = None,
) -> int:
    """Train (or resume) a run; return the exit code (130 when Ctrl-C stopped it after saving).

    `flags` holds every ModelConfig and TrainConfig flag by field name, None where not given.
    `nproc` > 1 relaunches this same command under torchrun with that many processes; under torchrun
    (WORLD_SIZE set) this process joins the group and trains its share of every batch.
    """
    from minitx.commands.progress import TrainDisplay
    from minitx.device import resolve_device
    from minitx.training import distributed
    from minitx.training.setup import RunComplete, run_training

    world = distributed.World.from_env()
    chosen = flags.get("device") or "auto"
    device = resolve_device(getattr(chosen, "value", chosen))  # an Enum member or its text
    if nproc > 1 and not world.distributed:
        from minitx.training.launch import launch

        launched = launch(nproc, port, device, sys.argv[1:], out)
        if launched.message:
            print(f"minitx: error: {launched.message}", file=sys.stderr)
        return launched.code
    if world.distributed:  # a rank that crashes in native code says where (Python stacks of every thread)
        import faulthandler

        faulthandler.enable()
        # SIGTERM (torchrun stopping the ranks, or a user) before the loop: nothing to save yet, stop quietly.
        # The loop then treats it as Ctrl-C (save, stop), and ignores it after (see training/loop.py).
        signal.signal(signal.SIGTERM, _stop_before_training)
    notes = make_console()  # on stdout, with the progress and the summary: stderr is for the one error line

    def notify(line: str) -> None:
        if world.is_main:
            notes.print(safe(line), soft_wrap=True)

    try:
        distributed.init(world, distributed.rank_device(device, world))
        trainer, result = run_training(files, out, flags=flags, resume=resume, force=force,
                                       show_progress=not quiet, world=world,
                                       notify=notify, progress=None if quiet else TrainDisplay(notes),
                                       prepare_progress=lambda: prepare_progress(notes, quiet or not world.is_main))
        # Leave together: a rank that tears down its connections while another still uses them made
        # gloo abort at exit ("terminate called without an active exception") on a loaded machine.
        distributed.barrier(world)
    except distributed.PeerLost as e:  # another rank is gone: one line, and leave without tearing anything down
        from minitx.training.launch import kept_checkpoint

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _leave(f"minitx: error: rank {world.rank} {e}; {kept_checkpoint(out)}", distributed.EXIT_PEER_LOST)
    except _Terminated:
        _leave("", 128 + signal.SIGTERM)
    except RunComplete as e:  # --resume of a finished run: nothing to do, and nothing wrong (a requeue loop ends)
        if world.is_main:
            make_console().print(safe(e), highlight=False, soft_wrap=True)
        return 0
    except BaseException:
        if world.distributed:  # leaving with an error line of its own: a SIGTERM now must not add a traceback
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    finally:
        distributed.shutdown(world)
    if world.is_main:
        print_train_summary(trainer, result, make_console())
    code = 130 if result.interrupted else 0
    if world.distributed:
        # The run is saved and the group left. Skip the interpreter's teardown: native threads of the
        # distributed backend, torn down there, occasionally aborted a finished rank (SIGABRT) on a loaded
        # machine, which torchrun reports as a failed job.
        _leave("", code)
    return code


class _Terminated(BaseException):
    """SIGTERM reached a rank before its training loop started (a BaseException: nothing may catch it)."""


def _stop_before_training(signum: int, frame: object) -> None:
    raise _Terminated


def _leave(line: str, code: int) -> None:
    """End this rank now, with `line` on stderr: no interpreter teardown, no traceback, no atexit."""
    if line:
        print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def print_train_summary(trainer: Trainer, result: TrainResult, console: Console) -> None:
    """The end-of-training table, and what to do next."""
    mc = trainer.model_config
    title = "training stopped early (Ctrl-C) — checkpoint saved" if result.interrupted else "training done"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("run directory", safe(trainer.run_dir))
    table.add_row("model", model_shape(mc))
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("steps", f"{result.step:,} / {result.steps:,}")
    table.add_row("train loss", fmt(result.train_loss))
    table.add_row("val loss", fmt(result.val_loss))
    table.add_row("val bits per byte", fmt(result.val_bpb, 3))
    table.add_row("time", f"{result.seconds:.1f} s")
    table.add_row("tokens / s", f"{result.tokens_per_second:,.0f}")
    peak = getattr(trainer, "peak", None)
    if result.mfu is not None and peak is not None:
        table.add_row("MFU", f"{percent(result.mfu)} of a measured {peak.flops / 1e9:,.0f} GFLOP/s")
    if trainer.cfg.optimizer != "adamw":
        table.add_row("optimizer", f"muon (lr {trainer.cfg.muon_lr:g}) + adamw (lr {trainer.cfg.lr:g})")
    compiled = ", torch.compile" if getattr(trainer, "compiled", False) else ""
    table.add_row("device", f"{trainer.device}, {trainer.dtype}, {trainer.threads} threads ({trainer.threads_why})"
                            f"{compiled}")
    console.print(table)
    if result.interrupted:
        console.print(f"continue with: minitx train --out {safe(trainer.run_dir)} --resume")
    else:
        from minitx.model.registry import architecture

        console.print(f"next: {architecture(mc.arch).next_steps.format(run=safe(trainer.run_dir))}")


def model_shape(mc: Any) -> str:
    """"4 layers × 4 heads × 128 wide, block 128, pos learned"; an encoder-decoder names both stacks."""
    from minitx.model.registry import architecture

    return architecture(mc.arch).shape(mc)
