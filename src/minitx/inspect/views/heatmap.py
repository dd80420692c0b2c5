"""A matrix of numbers as a picture: in the terminal (coloured cells) or as a PNG file.

Both renderers take the same inputs -- a 2-D array, row labels, column labels -- so a view can be
printed and saved without knowing how. Both colour a cell on the one ramp of
`minitx.inspect.colours`, from white (low) to a deep blue (high); terminal cells are two characters
on that background colour -- on a terminal without colour, the shades " ░▒▓█" -- and a cell that
is NaN (e.g. the future, which attention never sees) stays blank. The colour scale is fixed by
(low, high), so two heatmaps with the same scale can be compared by eye.

Example (the cells of a 2 × 2 heatmap; without colour each shows its shade, the NaN cell is blank):
    >>> table = terminal_heatmap([[1.0, float("nan")], [0.25, 0.75]], ["a", "b"], title="one head")
    >>> [str(cell) for cell in table.columns[1].cells], [str(cell) for cell in table.columns[2].cells]
    (['██', '░░'], ['  ', '▓▓'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.table import Table
from rich.text import Text

from minitx.errors import UserError
from minitx.inspect.colours import matplotlib_colormap, rich_colour, share_of

#: How many characters of a row label the terminal view keeps (tokens can be long).
LABEL_WIDTH = 12


SHADES = " ░▒▓█"


def _shade(value: float, low: float, high: float) -> str:
    """The character for `value` where colour is unavailable: " " (low) .. "█" (high)."""
    share = share_of(value, low, high)
    return SHADES[min(len(SHADES) - 1, int(share * len(SHADES)))]


def cells_that_fit(console_width: int) -> int:
    """How many 2-character cells a heatmap row can hold beside its label in a console this wide (at least 8)."""
    return max(8, (console_width - LABEL_WIDTH - 6) // 2)


def shorten(label: str, width: int = LABEL_WIDTH) -> str:
    """A label that fits: whitespace made visible (␣ ↵ ⇥), cut with … when longer than `width`."""
    shown = label.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def terminal_heatmap(
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    low: float = 0.0,
    high: float = 1.0,
) -> Table:
    """A rich Table: one row per matrix row, one 2-character coloured cell per column.

    Column labels are not printed above the cells (they would not fit); the caption lists them
    by index instead when there are few, and rows carry their label and index. NaN cells are blank.
    """
    n_rows = len(matrix)
    if n_rows != len(row_labels):
        raise ValueError(f"{n_rows} rows but {len(row_labels)} row labels")
    n_cols = len(matrix[0]) if n_rows else 0
    table = Table(title=title, show_header=True, box=None, pad_edge=False, padding=(0, 0), title_justify="left")
    table.add_column("", justify="right", no_wrap=True)
    for j in range(n_cols):
        table.add_column(str(j % 10), justify="center", no_wrap=True, width=2)
    for i, row in enumerate(matrix):
        cells = [Text(f"{shorten(row_labels[i])} {i:>3} ")]
        for value in row:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append(Text("  "))
            else:  # colour terminals show the colour; plain ones the shade character under it
                colour = rich_colour(float(value), low, high)
                cells.append(Text(_shade(float(value), low, high) * 2, style=f"{colour} on {colour}"))
        table.add_row(*cells)
    labels = col_labels if col_labels is not None else row_labels
    if n_cols and n_cols <= 40:
        # plain Text, not markup: a token such as "[red]" or "[/b]" must show as itself
        table.caption = Text("columns: " + "  ".join(f"{j}={shorten(t, 8)}" for j, t in enumerate(labels)))
        table.caption_justify = "left"
    return table


def _plain(label: str) -> str:
    """A tick label matplotlib shows as typed: `$` would otherwise start a maths formula."""
    return shorten(label, 8).replace("$", r"\$")


def save_png_heatmaps(
    path: str | Path,
    matrices: Sequence[Sequence[Sequence[float]]],
    titles: Sequence[str],
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    *,
    low: float = 0.0,
    high: float = 1.0,
    columns: int = 4,
    colour_label: str = "",
) -> Path:
    """Save one or more heatmaps side by side as a PNG (written atomically); return the path.

    Needs matplotlib (`pip install 'minitx[plot]'`); without it this is a UserError saying so.
    """
    import numpy as np

    plt = pyplot()

    col_labels = list(col_labels if col_labels is not None else row_labels)
    n = len(matrices)
    n_cols = min(columns, n)
    n_rows = math.ceil(n / n_cols)
    size = 0.28 * max(len(row_labels), len(col_labels)) + 1.5
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        data = np.array(matrices[k], dtype=float)
        image = ax.imshow(np.ma.masked_invalid(data), cmap=matplotlib_colormap(), vmin=low, vmax=high,
                          interpolation="nearest")
        ax.set_title(titles[k], fontsize=9)
        ax.set_xticks(range(len(col_labels)), [_plain(t) for t in col_labels], rotation=90, fontsize=6)
        ax.set_yticks(range(len(row_labels)), [_plain(t) for t in row_labels], fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label=colour_label)
    return save_figure(fig, path)


def pyplot():  # matplotlib.pyplot, imported only when a picture is asked for
    """matplotlib.pyplot drawing to files only; a UserError naming the `plot` extra when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("PNG output needs matplotlib: pip install 'minitx[plot]' (or use the terminal view)") from None
    return plt


def save_figure(fig, path: str | Path) -> Path:  # fig: a matplotlib Figure
    """Write `fig` as a PNG atomically (nothing half-written is left at `path`), close it, return the path."""
    import io

    from minitx.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --png path") from None
    return Path(path)


def shown_window(n_tokens: int, limit: int) -> tuple[int, str]:
    """Where the shown tokens start when at most `limit` fit, and a note for titles.

        >>> shown_window(20, 40), shown_window(120, 40)
        ((0, ''), (80, ' (last 40 of 120 tokens)'))
    """
    start = max(0, n_tokens - limit)
    return start, f" (last {n_tokens - start} of {n_tokens} tokens)" if start else ""


def causal_rows(matrix: torch.Tensor) -> list[list[float]]:
    """A [T, T] weight matrix as lists, with NaN in the future (the upper triangle) so it is drawn blank.

        >>> causal_rows(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
        [[1.0, nan], [0.5, 0.5]]
    """
    future = torch.ones_like(matrix, dtype=torch.bool).triu(1)
    return matrix.masked_fill(future, float("nan")).tolist()
