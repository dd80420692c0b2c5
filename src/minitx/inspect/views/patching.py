"""Activation patching, laid out: each grid of recovered fractions as a terminal table and as a PNG.

A cell is the fraction of the clean–corrupt logit difference that patching that one place brings
back, "0.93±0.05" (the mean and half the 95% bootstrap interval), on the shared ramp from 0 (white)
to 1 (deep blue); values can leave [0, 1] (a place that overshoots, or pushes the other way).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from minitx.inspect.colours import DARK_FROM, rich_colour, share_of

if TYPE_CHECKING:
    from rich.console import RenderableType

    from minitx.inspect.patching import PatchGrid, PatchReport


def cell_text(mean: float, low: float, high: float) -> str:
    """'0.93±0.05', or '' for a cell no pair has.

        >>> cell_text(0.931, 0.88, 0.98), cell_text(float("nan"), 0.0, 0.0)
        ('0.93±0.05', '')
    """
    if math.isnan(mean):
        return ""
    half = (high - low) / 2 if not (math.isnan(low) or math.isnan(high)) else 0.0
    return f"{mean:.2f}±{half:.2f}"


def grid_table(grid: PatchGrid) -> Table:
    """One grid as a rich Table, cells coloured by the recovered fraction."""
    title = f"recovered by patching: {grid.title}"
    table = Table(title=title, title_justify="left", min_width=len(title))  # wide enough not to wrap the title
    table.add_column("", justify="right")
    for column in grid.columns:
        table.add_column(column, justify="right", max_width=12)
    for r, row in enumerate(grid.rows):
        cells = []
        for c in range(len(grid.columns)):
            mean = float(grid.mean[r, c])
            share = 0.0 if math.isnan(mean) else share_of(mean)
            style = f"{'white' if share > DARK_FROM else 'black'} on {rich_colour(share)}"
            cells.append(Text(cell_text(mean, float(grid.low[r, c]), float(grid.high[r, c])), style=style))
        table.add_row(row, *cells)
    return table


def patch_view(report: PatchReport, good: str, bad: str) -> RenderableType:
    """How to read it, the clean and corrupt logit differences, and every grid."""
    head = Text(
        f"Δ = logit({good}) − logit({bad}) at the last position: clean {report.clean.mean():+.3f}, corrupt "
        f"{report.corrupt.mean():+.3f} (mean over {report.n_pairs} pairs). A cell: (Δ_patched − Δ_corrupt) / "
        "(Δ_clean − Δ_corrupt) summed over pairs, ±half its 95% bootstrap interval; 1 = that place alone carries "
        "the difference, 0 = nothing.")
    return Group(head, *(grid_table(g) for g in report.grids))


def strongest(grid: PatchGrid, k: int = 3) -> list[tuple[str, str, float]]:
    """The `k` cells with the largest recovered fraction: [(row, column, fraction), ...]."""
    import numpy as np

    order = np.argsort(-np.nan_to_num(grid.mean, nan=-np.inf), axis=None)[:k]
    return [(grid.rows[i // len(grid.columns)], grid.columns[i % len(grid.columns)],
             float(grid.mean.flat[i])) for i in order]


def save_patch_png(report: PatchReport, path: str | Path) -> Path:
    """Every grid side by side as a heatmap on the shared ramp, values written in."""
    import numpy as np

    from minitx.inspect.colours import matplotlib_colormap
    from minitx.inspect.views.heatmap import pyplot, save_figure

    plt = pyplot()
    widths = [max(1, len(g.columns)) for g in report.grids]
    height = max(len(g.rows) for g in report.grids)
    fig, axes = plt.subplots(1, len(report.grids), figsize=(2 + 1.1 * sum(widths), 1.5 + 0.5 * height),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    image = None
    for ax, grid in zip(axes[0], report.grids, strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid.mean), cmap=matplotlib_colormap(), vmin=0.0, vmax=1.0,
                          aspect="auto")
        for (r, c), value in np.ndenumerate(grid.mean):
            if not np.isnan(value):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share_of(value) > DARK_FROM else "black")
        ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=45, fontsize=7)
        ax.set_yticks(range(len(grid.rows)), grid.rows, fontsize=7)
        ax.set_title(grid.title, fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="fraction of Δ recovered")
    return save_figure(fig, path)
