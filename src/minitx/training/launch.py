"""Starting N ranks on this machine under torchrun, and saying in one line how the job ended.

`minitx train --nproc N ARGS` runs `torchrun --standalone --nproc-per-node N -m minitx train ARGS`
(ARGS without --nproc/--port) and relays the ranks' stderr, keeping back what is not for the user:

    torchrun's log lines, its traceback and "Root Cause" table    read: which ranks failed, with what code
    "[rankN]: ..." lines (torch prefixes a rank's traceback)      kept back; the last one is noted
    a rank's "... lost contact with the other ranks ..." line     kept back: a consequence, not the cause
    faulthandler's dump of a rank that aborted in native code     kept back
    the same "minitx: error: ..." line from several ranks         shown once

and returns at most one line of its own: the rank that failed first and the checkpoint kept.

Signals: torchrun runs in a session of its own, so a Ctrl-C in the terminal reaches only this
process, which sends torchrun one SIGTERM (so does a SIGTERM sent to this process); torchrun passes it
to every rank, which finishes its step, saves and stops; the job then ends with exit code 130. More
Ctrl-Cs while the ranks save are ignored (torchrun kills ranks that take longer than 30 s).
docs/reliability.md lists every way a job can end.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from minitx import rundir
from minitx.training import distributed

EXIT_INTERRUPTED = 130


@dataclass
class LaunchReport:
    """What the relay learnt from the ranks' and torchrun's stderr."""

    ours: bool = False  # a rank printed its own "minitx: error: ..." line (other than a lost peer)
    peer_lost: set[int] = field(default_factory=set)  # ranks that said they lost the others
    failures: list[tuple[int, str]] = field(default_factory=list)  # torchrun's table: (rank, exit code)
    root_cause: int | None = None  # the rank torchrun calls the first observed failure
    last_words: dict[int, str] = field(default_factory=dict)  # each rank's last "[rankN]:" line

    def first_failure(self) -> tuple[int, str] | None:
        """The rank that failed first, and its exit code: not one that only lost its peers.

        torchrun's "first observed failure" compares whole seconds, so a rank that lost its peers in
        the same second as the one that crashed may be called the root cause; it is passed over here.
        """
        def consequence(rank: int, code: str) -> bool:
            return (rank in self.peer_lost or code == str(distributed.EXIT_PEER_LOST)
                    or code in ("-15", "-6"))  # SIGTERM from torchrun; gloo aborting a survivor

        causes = [f for f in self.failures if not consequence(*f)]
        for rank, code in causes:
            if rank == self.root_cause:
                return rank, code
        if causes:
            return causes[0]
        for rank, code in self.failures:
            if rank == self.root_cause:
                return rank, code
        return self.failures[0] if self.failures else None


@dataclass
class LaunchResult:
    code: int  # the exit code for `minitx train --nproc N`
    message: str | None = None  # one line for stderr (after "minitx: error: "), or None


def launch(nproc: int, port: int | None, device: str, argv: list[str], out: Path,
           write: Callable[[str], object] = sys.stderr.write) -> LaunchResult:
    """Run `minitx train ARGV` as `nproc` ranks under torchrun; relay their stderr through `write`.

    With --port the rendezvous is c10d on 127.0.0.1:PORT; without it torchrun's --standalone picks a
    free port itself (no port is chosen here and given back, so none can be taken in between).
    """
    if port is not None:  # first: it is true or false whatever the machine's cores
        distributed.check_port_free("127.0.0.1", port)
    distributed.check_can_launch(nproc, device)
    child = subprocess.Popen(torchrun_command(nproc, port, argv), stderr=subprocess.PIPE, text=True,
                             errors="replace", start_new_session=True)
    with _signals_sent_on(child) as stopping:
        report = relay_stderr(child.stderr, write)
        code = child.wait()
    if stopping:
        return LaunchResult(EXIT_INTERRUPTED)
    if code == 0:
        return LaunchResult(0)
    first = report.first_failure()
    if report.ours or first is None:
        return LaunchResult(code)
    rank, rank_code = first
    said = f" ({report.last_words[rank]})" if rank in report.last_words else ""
    return LaunchResult(code, f"rank {rank} stopped with exit code {rank_code}{said}; torchrun stopped the other "
                              f"ranks -- {kept_checkpoint(out)}")


def kept_checkpoint(out: Path) -> str:
    """Words for the checkpoint a stopped job left: where it is and how to continue."""
    if not rundir.is_run_dir(out):
        return "no run was written yet; start it again"
    checkpoint = rundir.latest_checkpoint(out)
    if checkpoint is None:
        return "no checkpoint was saved yet; --resume starts it again from step 0"
    return f"the checkpoint kept is {checkpoint}; continue with --resume"


def torchrun_command(nproc: int, port: int | None, argv: list[str]) -> list[str]:
    """The torchrun command line for `minitx ARGV` on `nproc` ranks of this machine."""
    where = ["--standalone"] if port is None else ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    return [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(nproc),
            "-m", "minitx", *without_launch_flags(argv)]


@contextmanager
def _signals_sent_on(child: subprocess.Popen[str]) -> Iterator[list[int]]:
    """While torchrun runs: the first SIGINT or SIGTERM here becomes one SIGTERM to torchrun.

    Yields the list of signals received (empty: none), which is true once the job was asked to stop.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_TORCH_LOG = re.compile(r"^[WIE]\d{4} \d\d:\d\d:\d\d")  # torch.distributed's own log lines
_RANK_PREFIX = re.compile(r"^\[rank(\d+)\]:\s?(.*)$")  # torch's excepthook prefixes a rank's traceback so
_NATIVE_CRASH = re.compile(r"^(Fatal Python error|Current thread 0x|Thread 0x|  File \"|Extension modules:|"
                           r"terminate called|  what\(\):)")  # faulthandler / C++ abort of a rank
_BOX = "╭╮╰╯│─"  # rich's traceback frame


def relay_stderr(stream: IO[str], write: Callable[[str], object] = sys.stderr.write) -> LaunchReport:
    """Pass the ranks' stderr through `write`, keeping back what the module docstring lists."""
    report, in_torchrun_report, in_root_cause = LaunchReport(), False, False
    shown: set[str] = set()
    rank: int | None = None
    hiding = False  # the last line was kept back: so are the blank lines that follow it
    for line in stream:
        if not line.strip():
            if not hiding and not in_torchrun_report:
                write(line)
            continue
        hiding = True
        if line.startswith("minitx: error:"):
            if distributed.PEER_LOST_WORDS in line:
                found = re.match(r"minitx: error: rank (\d+)", line)
                if found:
                    report.peer_lost.add(int(found.group(1)))
                continue
            report.ours = True
            if line in shown:
                continue
            shown.add(line)
            write(line)
            hiding = False
            continue
        prefixed = _RANK_PREFIX.match(line.rstrip("\n"))
        if prefixed:
            words = prefixed.group(2).strip()
            if words and not words.startswith(tuple(_BOX)) and not words.startswith(("Traceback", "File ")):
                report.last_words[int(prefixed.group(1))] = words[:200]
            continue
        if _TORCH_LOG.match(line) or _NATIVE_CRASH.match(line):
            continue
        if line.startswith("Traceback (most recent call last):") or line.startswith("torch.distributed.elastic"):
            in_torchrun_report = True
        if not in_torchrun_report:
            write(line)
            hiding = False
            continue
        in_root_cause = in_root_cause or line.startswith("Root Cause")
        name, _, value = line.strip().partition(":")
        name, value = name.strip(), value.strip()
        if name == "rank" and value[:1].isdigit():
            rank = int(value.split()[0])
            if in_root_cause and report.root_cause is None:
                report.root_cause = rank
        elif name == "exitcode" and rank is not None:
            report.failures.append((rank, value.split()[0]))
            rank = None
    return report


def without_launch_flags(argv: list[str]) -> list[str]:
    """argv without `--nproc N`, `--nproc=N`, `--port P`, `--port=P`.

    >>> without_launch_flags(["train", "--nproc", "2", "--steps=5", "--port=29555", "x.txt"])
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
