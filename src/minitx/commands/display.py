"""What every command shares when it talks to the user: a console and number formatting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def make_console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr)."""
    from rich.console import Console

    return Console(stderr=stderr)


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: "-" for a missing value, floats with `digits` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def percent(value: float | None) -> str:
    """A share as a table cell: 0.123 -> "12.3%"; "-" when unknown (an MFU before any step)."""
    return "-" if value is None else f"{100 * value:.1f}%"
