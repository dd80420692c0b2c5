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


def train(
    files: list[Path], *, out: Path, preset: str | None, tokenizer: str | None, vocab_size: int | None,
    model_overrides: dict[str, Any], train_overrides: dict[str, Any], resume: bool, force: bool, quiet: bool,
    nproc: int = 1, port: int | None = None,
) -> int:
    """Train (or resume) a run; return the exit code (130 when Ctrl-C stopped it after saving).

    `nproc` > 1 relaunches this same command under torchrun with that many processes; under torchrun
    (WORLD_SIZE set) this process joins the group and trains its share of every batch.
    """
    from minitx.config import make_train_config
    from minitx.device import resolve_device
    from minitx.training import distributed
    from minitx.training.setup import run_training

    world = distributed.World.from_env()
    device = resolve_device(train_overrides.get("device") or "auto")
    if nproc > 1 and not world.distributed:
        return launch(nproc, port, device)
    cfg = make_train_config(preset, train_overrides)
    for f in files:
        require_file(f, "corpus file")
    distributed.init(world, distributed.rank_device(device, world))
    try:
        trainer, result = run_training(files, out, model_overrides=model_overrides, train_config=cfg,
                                       tokenizer_spec=tokenizer, vocab_size=vocab_size,
                                       train_flags={"preset": preset, **train_overrides}, resume=resume,
                                       force=force, show_progress=not quiet, world=world)
    finally:
        distributed.shutdown(world)
    if world.is_main:
        print_train_summary(trainer, result, make_console())
    return 130 if result.interrupted else 0


def launch(nproc: int, port: int | None, device: str) -> int:
    """`minitx train --nproc N ...` = `torchrun --standalone --nproc-per-node N -m minitx train ...`.

    The same arguments minus --nproc/--port; torchrun's exit code is returned. With --port the
    rendezvous uses 127.0.0.1:PORT instead of a free port torchrun picks.
    """
    import signal
    import subprocess
    import sys

    from minitx.training import distributed

    distributed.check_can_launch(nproc, device)
    if port is not None:
        distributed.check_port_free("127.0.0.1", port)
    where = ["--standalone"] if port is None else ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(nproc),
           "-m", "minitx", *_without_launch_flags(sys.argv[1:])]
    child = subprocess.Popen(cmd)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the ranks; they save and stop
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _without_launch_flags(argv: list[str]) -> list[str]:
    """argv without `--nproc N`, `--nproc=N`, `--port P`, `--port=P`.

    >>> _without_launch_flags(["train", "--nproc", "2", "--steps=5", "--port=29555", "x.txt"])
    ['train', '--steps=5', 'x.txt']
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--nproc", "--port"):
            skip = True
        elif not arg.startswith(("--nproc=", "--port=")):
            out.append(arg)
    return out


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
