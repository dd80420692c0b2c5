"""`minitx train`: build a run from flags, train it with a live progress view, print the summary."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.table import Table

from minitx.commands.display import fmt, make_console
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
    from minitx.device import resolve_device
    from minitx.training import distributed
    from minitx.training.setup import run_training

    world = distributed.World.from_env()
    chosen = flags.get("device") or "auto"
    device = resolve_device(getattr(chosen, "value", chosen))  # an Enum member or its text
    if nproc > 1 and not world.distributed:
        return launch(nproc, port, device)
    if resume and world.is_main:
        note_leftovers(out, make_console(stderr=True))
    if world.distributed:  # a rank that crashes in native code says where (Python stacks of every thread)
        import faulthandler

        faulthandler.enable()
    distributed.init(world, distributed.rank_device(device, world))
    notes = make_console()  # on stdout, with the progress and the summary: stderr is for the one error line

    def notify(line: str) -> None:
        if world.is_main:
            notes.print(safe(line), soft_wrap=True)

    try:
        trainer, result = run_training(files, out, flags=flags, resume=resume, force=force,
                                       show_progress=not quiet, world=world,
                                       notify=notify,
                                       prepare_progress=lambda: prepare_progress(notes, quiet or not world.is_main))
        # Leave together: a rank that tears down its connections while another still uses them made
        # gloo abort at exit ("terminate called without an active exception") on a loaded machine.
        distributed.barrier(world)
    finally:
        distributed.shutdown(world)
    if world.is_main:
        print_train_summary(trainer, result, make_console())
    code = 130 if result.interrupted else 0
    if world.distributed:
        # The run is saved and the group left. Skip the interpreter's teardown: native threads of the
        # distributed backend, torn down there, occasionally aborted a finished rank (SIGABRT) on a loaded
        # machine, which torchrun reports as a failed job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def launch(nproc: int, port: int | None, device: str) -> int:
    """`minitx train --nproc N ...` = `torchrun --standalone --nproc-per-node N -m minitx train ...`.

    The same arguments minus --nproc/--port; torchrun's exit code is returned. With --port the
    rendezvous uses 127.0.0.1:PORT instead of a free port torchrun picks.
    """
    import signal
    import subprocess

    from minitx.training import distributed

    distributed.check_can_launch(nproc, device)
    if port is not None:
        distributed.check_port_free("127.0.0.1", port)
    where = ["--standalone"] if port is None else ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(nproc),
           "-m", "minitx", *_without_launch_flags(sys.argv[1:])]
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace")
    # torchrun starts the ranks in sessions of their own: a Ctrl-C here reaches torchrun, which sends
    # them SIGTERM, which they treat like Ctrl-C (finish the step, save, stop). This process waits.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        report = relay_stderr(child.stderr)
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0 and not report.ours and report.failed_rank is not None:
        print(f"minitx: error: rank {report.failed_rank} stopped with exit code {report.failed_code}; torchrun "
              "stopped the other ranks -- the last checkpoint is kept, continue with --resume", file=sys.stderr)
    return code


@dataclass
class LaunchReport:
    ours: bool = False  # a rank printed its own "minitx: error: ..." line
    failed_rank: int | None = None  # torchrun's "root cause": the first rank that failed
    failed_code: str | None = None


_TORCH_LOG = re.compile(r"^[WIE]\d{4} \d\d:\d\d:\d\d")  # torch.distributed's own log lines


def relay_stderr(stream: IO[str]) -> LaunchReport:
    """Pass the ranks' stderr through; keep torchrun's own logs and traceback back, noting who failed.

    torchrun ends a failed job with a Python traceback and a "Root Cause" table; minitx shows one line
    instead (above), naming the rank that failed first.
    """
    report, in_torchrun_report, root_cause = LaunchReport(), False, False
    for line in stream:
        if line.startswith("minitx: error:"):
            report.ours = True
        if _TORCH_LOG.match(line):
            continue
        if line.startswith("Traceback (most recent call last):") or line.startswith("torch.distributed.elastic"):
            in_torchrun_report = True
        if not in_torchrun_report:
            sys.stderr.write(line)
            continue
        root_cause = root_cause or line.startswith("Root Cause")
        field, _, value = line.strip().partition(":")
        if root_cause and field.strip() == "rank" and report.failed_rank is None:
            report.failed_rank = int(value.split()[0])
        elif root_cause and field.strip() == "exitcode" and report.failed_code is None:
            report.failed_code = value.split()[0]
    return report


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


def note_leftovers(out: Path, console: Console) -> None:
    """--resume: remove what an interrupted save left behind (half-written checkpoints), with a one-line note."""
    from minitx import rundir
    from minitx.fileio import check_writable

    if not rundir.is_run_dir(out):
        return  # run_training says what is wrong
    check_writable(out)
    removed = rundir.remove_leftovers(out)
    if removed:
        console.print(f"note: removed what an interrupted save left behind in {safe(out)}: "
                      f"{safe(', '.join(removed))}", highlight=False, soft_wrap=True)


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
    compiled = ", torch.compile" if getattr(trainer, "compiled", False) else ""
    table.add_row("device", f"{trainer.device}, {trainer.dtype}, {trainer.threads} threads ({trainer.threads_why})"
                            f"{compiled}")
    console.print(table)
    if result.interrupted:
        console.print(f"continue with: minitx train --out {safe(trainer.run_dir)} --resume")
    elif mc.arch == "encoder-decoder":
        console.print(f'next: minitx translate {safe(trainer.run_dir)} "The red ball is big."')
    else:
        console.print(f"next: minitx generate {safe(trainer.run_dir)}    minitx eval {safe(trainer.run_dir)}")


def model_shape(mc: Any) -> str:
    """"4 layers × 4 heads × 128 wide, block 128, pos learned"; an encoder-decoder names both stacks."""
    if mc.arch != "encoder-decoder":
        return f"{mc.n_layers} layers × {mc.n_heads} heads × {mc.dim} wide, block {mc.block_size}, pos {mc.pos}"
    encoder_pos = mc.encoder_pos or mc.pos
    return (f"encoder {mc.encoder_layers or mc.n_layers} + decoder {mc.n_layers} layers × {mc.n_heads} heads × "
            f"{mc.dim} wide, block {mc.block_size}, pos {mc.pos}" + (f" (encoder {encoder_pos})"
                                                                     if encoder_pos != mc.pos else ""))
