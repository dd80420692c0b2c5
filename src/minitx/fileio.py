"""Atomic writes: a file is either the old version or the complete new one, never half written.

Every file minitx writes goes through here: the bytes land in a temporary file in the same
directory, are flushed to disk, and then `os.replace` renames it over the target in one step.
A set of files that must agree (a checkpoint) is written the same way one level up: into a
temporary directory, synced, then renamed (see rundir/checkpoints.py; `atomic_directory` does it
for a whole new folder, e.g. `minitx export`).

One rule for every file a command writes for the user (`--out`, `--png`, `--html`, `--json`, a
report): `refuse_existing(path, force, flag)` before any work -- an existing path is refused with one
line that names the flag and `--force` -- and then an atomic write, so that what `--force` replaces
is either still the old file or already the complete new one.

`crash_point(name)` marks the moments between two writes. It does nothing unless the test-only
environment variable MINITX_TEST_CRASH_AT names that moment ("weights:2": the second time the
point "weights" is reached; "*:7": the seventh point of any name), and then the process kills itself
with SIGKILL -- no `finally`, no cleanup, exactly like a power cut or `kill -9` at that instant. The
crash tests use it to prove that every such moment is recoverable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from minitx.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crash_point("temp-written")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def refuse_existing(path: str | Path, force: bool, flag: str = "--out") -> Path:
    """The rule before writing a file the user named: free, or replaced only with --force; never a directory.

    Call it before the work that produces the file, so a refusal costs nothing.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a directory; give a file path to {flag}")
    if p.exists() and not force:
        raise UserError(f"{p} already exists; pass --force to overwrite it or choose another {flag}")
    return p


def check_writable(path: str | Path, flag: str = "--out") -> None:
    """Raise a UserError now if files cannot be created in `path` (or, if it does not exist yet, where it would be).

    Called before work starts, so that a read-only directory costs one line, not a training run
    that cannot save. The test is a real one: a temporary file is created and removed.
    """
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise UserError(f"{flag} {path}: {here} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=here, prefix=".minitx-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(
            f"{flag} {path}: cannot write in {here} ({e.strerror or e}); make it writable or choose another {flag}"
        ) from None


def write_synced(path: str | Path, data: bytes) -> None:
    """Write a new file and flush it to disk (for files inside a directory that is renamed as a whole)."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: str | Path) -> None:
    """Make the names in a directory (a rename, a new file) durable, not only the files' bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


CRASH_ENV = "MINITX_TEST_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test-only fault injection: SIGKILL this process here if MINITX_TEST_CRASH_AT asks for it."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point not in (name, "*"):
        return
    _crash_counts[point] = _crash_counts.get(point, 0) + 1
    if _crash_counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def atomic_directory(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Write a set of files that must agree as one unit: `with atomic_directory(out) as tmp: write into tmp`.

    The files go into a fresh hidden directory beside `path`; only when the block ends without an
    error is it renamed to `path`. An error or Ctrl-C inside the block removes it and leaves `path`
    as it was. A `path` that exists and is not empty is refused before any work unless `force`;
    with `force` the old directory is moved aside and deleted only after the new one is in place.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; give a directory path to --out")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UserError(f"{path} already exists; pass --force to replace it or choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the directory the usual permissions
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        fsync_dir(path.parent)  # the rename itself survives a power cut
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`, or a UserError naming the file and ending with `what` (the consequence or fix).

    `what` completes "<path> is not valid JSON (<why>); ...", e.g. "the run directory is damaged" or
    "prepare the data again with minitx prepare --force". A missing file, a file that is not UTF-8
    and JSON that is not an object ({...}) are refused the same way.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; {what}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); {what}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} holds no JSON object; {what}")
    return value
