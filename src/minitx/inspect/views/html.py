"""One HTML file to explore every attention head, offline: open it from disk, no network needed.

The page is the Jinja2 template `templates/attention.html.j2` (shipped with the package), which
holds the HTML, the CSS and a small plain-JavaScript program; this module only gathers the data
and renders it. The page shows:

    * a layers × heads grid of the heads' roles, and layer / head pickers: click a head to choose it;
    * the chosen layer's heads as small heatmaps, side by side;
    * the text, token by token: point at (or click) a token and every earlier token is shaded by
      how much attention it gets from that one -- the sentence read through one head's eyes;
    * the chosen head's heatmap (queries down, keys across; point at a cell for its weight);
    * the chosen head's scores for every role, next to the thresholds that name it;
    * any extra layers × heads grids the command measured (roles over data, induction, ablation).

Escaping is Jinja2's: autoescape for the title and grid cells, and `tojson` for the data block,
which writes "<", ">", "&" and "'" as \\u003c-style escapes so no token can end the script element;
the script puts tokens on the page as text (`textContent`), never as HTML. Weights are rounded to
3 decimals (0 and 1 written as integers), which keeps a 4 × 4 × 128² capture near 1 MB.

Example:
    >>> import torch, tempfile, pathlib
    >>> from minitx.inspect.capture import AttentionCapture
    >>> from minitx.inspect.roles import head_roles
    >>> capture = AttentionCapture(["<|doc|>", "</script>"], [0, 1], torch.tensor([[[[1.0, 0], [0.5, 0.5]]]]), "rope")
    >>> page = render_attention_page(capture, head_roles(capture), title="a <b>test</b>")
    >>> "<title>a &lt;b&gt;test&lt;/b&gt;</title>" in page, "\\\\u003c/script\\\\u003e" in page
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from minitx.errors import UserError
from minitx.fileio import atomic_write_text
from minitx.inspect.colours import ramp_for_page
from minitx.inspect.roles import ROLE_THRESHOLDS, HeadRole, most_telling_head

if TYPE_CHECKING:
    import torch

    from minitx.inspect.capture import AttentionCapture

#: Decimals kept for each weight in the page.
DECIMALS = 3
TEMPLATE = "attention.html.j2"


@dataclass
class Grid:
    """An extra layers × heads table for the page: a title, one row of cell texts per layer, notes below."""

    title: str
    cells: list[list[str]]
    notes: list[str] = field(default_factory=list)


def rounded_weights(weights: torch.Tensor, decimals: int = DECIMALS) -> list:
    """[L, H, T, T] weights as nested lists rounded to `decimals`; whole numbers become ints.

        >>> import torch
        >>> rounded_weights(torch.tensor([[[[1.0, 0.0], [0.12345, 0.87655]]]]))
        [[[[1, 0], [0.123, 0.877]]]]
    """
    import torch

    scale = 10**decimals
    counts = torch.round(weights.double() * scale).long().tolist()  # integer thousandths: exact
    return [
        [[[c // scale if c % scale == 0 else c / scale for c in row] for row in head] for head in layer]
        for layer in counts
    ]


def page_data(capture: AttentionCapture, roles: Sequence[HeadRole], title: str, selected: tuple[int, int]) -> dict:
    """What the page's script reads: tokens, ids, weights [L][H][T][T], roles, thresholds, the colour ramp."""
    by_place = {(r.layer, r.head): r for r in roles}
    return {
        "title": title,
        "pos": capture.pos,
        "tokens": capture.tokens,
        "tokenIds": capture.token_ids,
        "weights": rounded_weights(capture.weights),  # [L][H][T][T]
        "roles": [
            [
                {"role": r.role, "score": round(r.score, 3), "scores": {k: round(v, 3) for k, v in r.scores.items()}}
                for r in (by_place[layer, head] for head in range(capture.n_heads))
            ]
            for layer in range(capture.n_layers)
        ],
        "thresholds": ROLE_THRESHOLDS,
        "selected": {"layer": selected[0], "head": selected[1]},
        "ramp": ramp_for_page(),
    }


def render_attention_page(
    capture: AttentionCapture,
    roles: Sequence[HeadRole],
    *,
    title: str,
    selected: tuple[int, int] | None = None,
    grids: Sequence[Grid] = (),
) -> str:
    """The explorer page for `capture` as a string. `selected` is the (layer, head) shown first
    (default: the most telling head, see `most_telling_head`); `grids` are extra tables to show."""
    import jinja2

    if selected is None:
        best = most_telling_head(roles)
        selected = (best.layer, best.head)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("minitx.inspect.views", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name missing from the data is an error, not an empty string
        keep_trailing_newline=True,
    )
    data = page_data(capture, roles, title, selected)
    return environment.get_template(TEMPLATE).render(title=title, data=data, grids=list(grids))


def save_attention_html(
    capture: AttentionCapture,
    roles: Sequence[HeadRole],
    path: str | Path,
    *,
    title: str,
    selected: tuple[int, int] | None = None,
    grids: Sequence[Grid] = (),
) -> Path:
    """Write the explorer page (see `render_attention_page`) to `path` atomically and return the path."""
    page = render_attention_page(capture, roles, title=title, selected=selected, grids=grids)
    path = Path(path)
    try:
        atomic_write_text(path, page)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --html path") from None
    return path
