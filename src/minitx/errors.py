"""User mistakes, and how they reach the terminal.

A mistake the user can fix (a missing file, an empty corpus, a bad flag value) raises `UserError`
with one sentence that names what is wrong and how to fix it. The CLI catches it, prints that one
line on stderr and exits with code 2 -- no traceback. Bugs are not `UserError`s and keep their
tracebacks, so they get reported. A run whose loss becomes NaN or infinite raises `TrainingDiverged`:
one line too, but exit code 3, because nothing the user typed was wrong -- the numbers blew up.
"""

from __future__ import annotations

from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


class UserError(Exception):
    """Something the user can fix; the message is shown as-is on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always a single line


class TrainingDiverged(Exception):
    """The loss became NaN or infinite: training stopped, the last good checkpoint kept (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return `path` if it is an existing regular file, else raise a UserError that says so."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} not found: {p} (check the path)")
    if not p.is_file():
        raise UserError(f"{what} is not a regular file: {p}")
    return p
