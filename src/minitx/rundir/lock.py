"""One owner per run directory: an advisory lock that the kernel releases when its process ends.

Two `minitx train --out R` started together both found R free, both trained, and the survivor left
one run's config.json beside the other's weights. So every process that writes a run directory --
`train`, `--resume`, `--force`, the lab's runs (all through `training.setup.run_training`) -- first
holds `R/.lock`, before it checks or writes anything else:

    R/.lock     an empty-ish file holding the owner's PID (for the message); the lock is `flock(LOCK_EX)`

`flock` belongs to the open file: the kernel drops it when the process exits in any way (a crash,
`kill -9`, a power cut), so there is never a stale lock to clean up by hand. A second writer does not
wait: it gets one line naming the owner's PID (exit 2) and touches nothing. Readers (`generate`,
`eval`, `inspect-*`, `info`) take no lock: they read the newest complete checkpoint, which a save
never changes (it writes the next one aside and renames it into place, see checkpoints.py).

The owner removes the lock file when it is done, so a finished run directory holds none; one left by
a killed process is harmless (the next owner takes it over), `--force` keeps it, and a directory that
holds nothing but it counts as empty. Where `fcntl` does not exist (Windows) `msvcrt.locking`
locks the file's first byte instead, with the same meaning.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from minitx.errors import UserError

LOCK = ".lock"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

except ImportError:  # Windows: lock the first byte of the file
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


def holder(run_dir: Path) -> str:
    """Who holds the lock, as its file says: "process 1234", or "another process" when unknown."""
    try:
        pid = (Path(run_dir) / LOCK).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold RUN_DIR's lock for the block (creating RUN_DIR if need be); a UserError if another process holds it.

    The directory is created first (the lock file lives in it); nothing else is written before the
    lock is held. After taking the lock the file is checked to still be the one at RUN_DIR/.lock: a
    process that removed the directory meanwhile (a failed setup cleaning up) leaves a lock on a
    deleted file, so the lock is taken again on the new one.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    while True:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise UserError(
                f"{run_dir} is in use: minitx {holder(run_dir)} is writing it (it holds {path}); "
                "wait for it to finish or stop it, or choose another --out"
            )
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        try:  # a finished run leaves no lock file; one that another process reopened meanwhile is checked above
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                os.unlink(path)
        except OSError:  # already gone with its directory (a failed setup removed it)
            pass
        os.close(fd)  # releases the lock (the kernel does the same if the process dies)
