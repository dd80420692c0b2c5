"""How results draw themselves in a notebook: plain HTML and inline SVG, no script, nothing fetched.

A notebook (Jupyter, VS Code, an nbconvert page) shows an object's `_repr_html_()`. Every picture here
is made of elements a browser draws without JavaScript or a network -- a `<table>` whose cells carry
their background colour, an `<svg>` of rectangles -- so the picture survives being saved, rendered to
HTML and opened offline. Colours come from the one ramp every other view uses
(`minitx.inspect.colours`: white for 0, deep blue for 1), so a weight of 0.6 is the same blue here,
in the terminal, in the PNG and on the attention page.

    heat_table(table)          a shaded table: the lens, each patching grid (`minitx.inspect.views.html`)
    head_grid(weights, ...)    one small SVG heatmap per head, layer by layer: α[t, t'] as the cell's blue
    bars(parts)                signed horizontal bars: direct logit attribution

Each element carries a class (`minitx-heat`, `minitx-head`, `minitx-bar`) so a test can count them.

Example (one layer, one head over two tokens: the second token reads the first with weight 0.25;
    weights below 0.01 are left white, not drawn):
    >>> import torch
    >>> svg = head_grid(torch.tensor([[[[1.0, 0.0], [0.25, 0.75]]]]), ["a", "b"], {(0, 0): "self 0.75"})
    >>> svg.count('class="minitx-head"'), svg.count("<rect")
    (1, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from minitx.inspect.colours import DARK_FROM, HIGH_RGB, ramp_rgb, share_of

if TYPE_CHECKING:
    import torch

    from minitx.inspect.views.html import HeatTable

#: Pixels per token in a head's heatmap, and the largest side a head's picture gets.
CELL_PX = 6
HEAD_PX = 180
#: Weights below this are left white: they would be drawn white anyway, and leaving them out keeps the SVG small.
SMALLEST_DRAWN = 0.01
#: The colour of a negative bar (a part that pushes BAD over GOOD); positive bars use the ramp's dark end.
NEGATIVE_RGB = (178, 34, 34)
FONT = "font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:11px"


def _rgb(colour: Sequence[int]) -> str:
    return "rgb({},{},{})".format(*colour)


def title(text: str) -> str:
    """A small heading above a picture."""
    return f'<div style="font-weight:bold;margin:6px 0 2px 0">{escape(text)}</div>'


def note(text: str) -> str:
    """A grey line of explanation under a picture."""
    return f'<div style="color:#555;{FONT};margin:2px 0 6px 0">{escape(text)}</div>'


def heat_table(table: HeatTable) -> str:
    """A `HeatTable` (the same one the attention page draws) as a `<table class="minitx-heat">`, colours inline."""
    cell = "padding:1px 4px;border:1px solid #eee;text-align:center;white-space:pre"
    head = "".join(f'<th style="{cell};font-weight:normal;color:#555">{escape(c)}</th>' for c in table.columns)
    rows = []
    for label, cells in table.rows:
        tds = "".join(f'<td style="{cell};background:{c.background};color:{c.colour}" title="{escape(c.hint)}">'
                      f"{escape(c.text)}</td>" for c in cells)
        rows.append(f'<tr><th style="{cell};text-align:right">{escape(label)}</th>{tds}</tr>')
    notes = "".join(note(n) for n in table.notes)
    return (title(table.title) + f'<table class="minitx-heat" style="border-collapse:collapse;{FONT}">'
            f"<tr><th></th>{head}</tr>{''.join(rows)}</table>{notes}")


def head_svg(pattern: torch.Tensor | Sequence[Sequence[float]], caption: str) -> str:
    """One head's α [Tq, Tk] as an SVG heatmap (queries down, keys across), `caption` under it."""
    rows = pattern.tolist() if hasattr(pattern, "tolist") else [list(r) for r in pattern]
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    cell = max(1.0, min(CELL_PX, HEAD_PX / max(n_rows, n_cols, 1)))
    width, height = n_cols * cell, n_rows * cell
    rects = []
    for q, row in enumerate(rows):
        for k, weight in enumerate(row):
            if weight >= SMALLEST_DRAWN:
                rects.append(f'<rect x="{k * cell:g}" y="{q * cell:g}" width="{cell:g}" height="{cell:g}" '
                             f'fill="{_rgb(ramp_rgb(weight))}"><title>{q}→{k}: {weight:.3f}</title></rect>')
    return (f'<figure style="display:inline-block;margin:4px;text-align:center">'
            f'<svg class="minitx-head" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
            f'viewBox="0 0 {width:g} {height:g}" style="border:1px solid #ccc;background:white">{"".join(rects)}'
            f'</svg><figcaption style="{FONT}">{escape(caption)}</figcaption></figure>')


def head_grid(weights: torch.Tensor | Sequence, tokens: Sequence[str], captions: dict[tuple[int, int], str],
              name: str = "L") -> str:
    """Every head's α, one row of pictures per layer: weights [L][H][Tq][Tk]; captions[(layer, head)] names a head.

    `name` prefixes each caption's head ("L0 H1"; "enc L0 H1" for an encoder's).
    """
    lines = []
    for layer, heads in enumerate(weights):
        figures = "".join(head_svg(pattern, f"{name}{layer} H{head} {captions.get((layer, head), '')}".strip())
                          for head, pattern in enumerate(heads))
        lines.append(f"<div>{figures}</div>")
    return "".join(lines)


def token_line(tokens: Sequence[str]) -> str:
    """The tokens read, numbered, on one line: the rows and columns of every heatmap, in order."""
    shown = " ".join(f"{t}:{token!r}" for t, token in enumerate(tokens))
    return note(f"tokens (queries down, keys across): {shown}")


def bars(parts: Sequence[tuple[str, float]], unit: str = "") -> str:
    """Signed horizontal bars, one row per (name, value): blue to the right for positive, red to the left."""
    largest = max((abs(v) for _, v in parts if not math.isnan(v)), default=0.0) or 1.0
    half = 120  # pixels for the largest |value| on each side
    rows = []
    for name, value in parts:
        length = 0 if math.isnan(value) else round(half * abs(value) / largest)
        colour = _rgb(HIGH_RGB if value >= 0 else NEGATIVE_RGB)
        left = f'<div style="margin-left:auto;width:{length}px;height:10px;background:{colour}"></div>' \
            if value < 0 else ""
        right = f'<div style="width:{length}px;height:10px;background:{colour}"></div>' if value >= 0 else ""
        rows.append(f'<tr class="minitx-bar"><td style="text-align:right;padding-right:6px">{escape(name)}</td>'
                    f'<td style="width:{half}px;border-right:1px solid #888">{left}</td>'
                    f'<td style="width:{half}px">{right}</td>'
                    f'<td style="text-align:right;padding-left:6px">{value:+.3f}{escape(unit)}</td></tr>')
    return f'<table style="border-collapse:collapse;{FONT}">{"".join(rows)}</table>'


def shaded(value: float, text: str) -> str:
    """A `<span>` shaded by `value` in [0, 1] on the ramp (white text on the dark end)."""
    share = 0.0 if math.isnan(value) else share_of(value)
    colour = "white" if share > DARK_FROM else "black"
    return f'<span style="background:{_rgb(ramp_rgb(share))};color:{colour};padding:0 2px">{escape(text)}</span>'


def key_values(rows: Sequence[tuple[str, str]], header: tuple[str, str] | None = None) -> str:
    """A two-column table of names and values (evaluation figures, sentences and their translations)."""
    top = "" if header is None else "<tr>" + "".join(f'<th style="text-align:left">{escape(h)}</th>'
                                                     for h in header) + "</tr>"
    body = "".join(f'<tr><th style="text-align:left;padding-right:12px;font-weight:normal">{escape(k)}</th>'
                   f'<td style="text-align:{"left" if header else "right"}">{escape(v)}</td></tr>' for k, v in rows)
    return f'<table class="minitx-values" style="{FONT}">{top}{body}</table>'
