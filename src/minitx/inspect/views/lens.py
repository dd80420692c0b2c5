"""The logit lens and direct logit attribution, laid out: terminal grids that fit 80 columns, and a PNG.

Lens grid: a row per position ("dog→runs": the token read, and the target followed there), a column
per stream point; a cell is that point's top token and the target's probability, on the shared ramp
(darker = the target is more likely), bold when the top token is the target. Attribution: the parts
that push GOOD over BAD most, and every head's share as a layers × heads grid with each MLP beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from minitx.inspect.colours import DARK_FROM, rich_colour, share_of
from minitx.inspect.views.heatmap import shorten

if TYPE_CHECKING:
    from rich.console import RenderableType

    from minitx.inspect.attribution import AttributionReport
    from minitx.inspect.lens import LensReport
    from minitx.text.tokenizer import Tokenizer

#: Characters of a lens cell: the top token (TOKEN_WIDTH) and the target's probability ("93%").
TOKEN_WIDTH = 6
CELL_WIDTH = TOKEN_WIDTH + 4
ROW_LABEL_WIDTH = 15
#: Rows (positions) the terminal grid shows at most: the last ones.
MAX_ROWS = 24
HOW_TO_READ_LENS = (
    "Logit lens: each block's residual stream read through the final layer norm and the output layer. "
    "A cell is that point's top token and the probability of the target (the next token, or --target); "
    "darker = likelier, bold = the top token is the target."
)


def shown_points(n_points: int, width: int) -> list[int]:
    """Which points fit in `width` columns: all when they fit, else the first, the last and evenly spaced ones.

        >>> shown_points(5, 80), shown_points(13, 80)
        ([0, 1, 2, 3, 4], [0, 3, 6, 9, 12])
    """
    fits = max(2, (width - ROW_LABEL_WIDTH - 2) // (CELL_WIDTH + 2))
    if n_points <= fits:
        return list(range(n_points))
    return sorted({round(k * (n_points - 1) / (fits - 1)) for k in range(fits)})


def _percent(p: float) -> str:
    return "   " if math.isnan(p) else "99%" if p >= 0.995 else f"{p:3.0%}"


def lens_table(report: LensReport, tokenizer: Tokenizer, width: int = 80) -> Table:
    """The lens as a positions × points grid that fits `width` columns (see the module docstring)."""
    points = shown_points(len(report.points), width)
    start = max(0, len(report.tokens) - MAX_ROWS)
    note = f" (last {len(report.tokens) - start} of {len(report.tokens)} tokens)" if start else ""
    table = Table(title=f"logit lens{note}", title_justify="left", box=None, padding=(0, 1), show_edge=False)
    table.add_column("token→target", max_width=ROW_LABEL_WIDTH, no_wrap=True)
    for point in points:
        table.add_column(report.points[point].replace("block ", "blk "), width=CELL_WIDTH, no_wrap=True)
    for t in range(start, len(report.tokens)):
        target = report.targets[t]
        wanted = shorten(tokenizer.id_to_token_text(target), 6) if target is not None else "?"
        cells: list[Text | str] = [Text(shorten(report.tokens[t], 7) + "→" + wanted)]
        for point in points:
            top = int(report.top_ids[point, t, 0])
            p = float(report.target_prob[point, t])
            share = 0.0 if math.isnan(p) else share_of(p)
            style = f"{'white' if share > DARK_FROM else 'black'} on {rich_colour(share)}"
            if top == target:
                style = "bold " + style
            word = shorten(tokenizer.id_to_token_text(top), TOKEN_WIDTH)
            cells.append(Text(f"{word:<{TOKEN_WIDTH}}{_percent(p):>4}", style=style))
        table.add_row(*cells)
    return table


def lens_summary(report: LensReport, tokenizer: Tokenizer) -> Text:
    """One line: at the last position, each point's top token and the target's rank."""
    t = len(report.tokens) - 1
    target = report.targets[t]
    parts = []
    for point, name in enumerate(report.points):
        top = tokenizer.id_to_token_text(int(report.top_ids[point, t, 0]))
        rank = f" (target rank {int(report.target_rank[point, t])})" if target is not None else ""
        parts.append(f"{name}: {top!r} {float(report.top_probs[point, t, 0]):.2f}{rank}")
    return Text("last position: " + "; ".join(parts))


def attribution_view(report: AttributionReport, tokenizer: Tokenizer, k: int = 8) -> RenderableType:
    """The total, the `k` parts that matter most, and the layers × heads grid (+ MLP, + cross-attention)."""
    good, bad = tokenizer.id_to_token_text(report.good), tokenizer.id_to_token_text(report.bad)
    total = sum(p.value for p in report.parts)
    head = Text(f"direct logit attribution of logit({good!r}) − logit({bad!r}) = {report.total:+.3f} at the last "
                f"position; ln_f's scale frozen at σ = {report.scale:.3f} (the standard linearisation); the parts "
                f"sum to {total:+.3f}")
    top = Table(title="top contributors", title_justify="left", box=None, padding=(0, 1))
    for name in ("part", "share", "of total"):
        top.add_column(name, justify="right" if name != "part" else "left")
    for part in report.top(k):
        ratio = f"{part.value / report.total:+.0%}" if report.total else ""
        top.add_row(part.name, Text(f"{part.value:+.3f}", style="green" if part.value > 0 else "red"), ratio)
    blocks = [head, top]
    attentions = dict.fromkeys(p.attention for p in report.parts if p.kind == "head")
    mlps = {p.layer: p.value for p in report.parts if p.kind == "mlp"}
    for attention in attentions:
        grid = report.heads(attention)
        label = "heads" if attention == "attn" else "cross-attention heads"
        title = f"{label}: direct share of the logit difference"
        table = Table(title=title, title_justify="left", min_width=len(title))  # wide enough not to wrap the title
        table.add_column("layer", justify="right")
        for h in range(grid.shape[1]):
            table.add_column(f"head {h}", justify="right")
        if attention == "attn":
            table.add_column("mlp", justify="right")
        for layer in range(grid.shape[0]):
            row = [Text(f"{float(v):+.3f}", style="green" if v > 0 else "red") for v in grid[layer]]
            if attention == "attn":
                row.append(Text(f"{mlps[layer]:+.3f}", style="green" if mlps[layer] > 0 else "red"))
            table.add_row(str(layer), *row)
        blocks.append(table)
    return Group(*blocks)


def save_lens_png(report: LensReport, tokenizer: Tokenizer, path: str | Path) -> Path:
    """The target's probability at every point (rows) and position (columns), top tokens written in."""
    import numpy as np

    from minitx.inspect.colours import matplotlib_colormap
    from minitx.inspect.views.heatmap import pyplot, save_figure

    plt = pyplot()
    probs = report.target_prob.numpy()  # [P, T]
    n_points, n_tokens = probs.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n_tokens, 1.0 + 0.45 * n_points))
    image = ax.imshow(np.ma.masked_invalid(probs), cmap=matplotlib_colormap(), vmin=0.0, vmax=1.0, aspect="auto")
    for point in range(n_points):
        for t in range(n_tokens):
            p = probs[point, t]
            colour = "white" if not np.isnan(p) and p > DARK_FROM else "black"
            top = tokenizer.id_to_token_text(int(report.top_ids[point, t, 0])).replace("\n", "\\n")
            ax.text(t, point, top, ha="center", va="center", fontsize=6, color=colour)
    labels = [f"{tok}→{tokenizer.id_to_token_text(tg) if tg is not None else '?'}".replace("\n", "\\n")
              for tok, tg in zip(report.tokens, report.targets, strict=True)]
    ax.set_xticks(range(n_tokens), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(n_points), report.points, fontsize=7)
    ax.set_title("logit lens: top token; colour = p(target)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="p(target)")
    return save_figure(fig, path)
