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
    * any extra layers × heads grids the command measured (roles over data, induction, ablation);
    * `inspect-lens --html`: a "logit lens" tab beside the attention view (a `HeatTable`, points × positions);
    * `inspect-patch --html`: the patching grids as heatmaps (`HeatTable`s) below the grids.

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
    from minitx.inspect.lens import LensReport
    from minitx.inspect.patching import PatchReport
    from minitx.text.tokenizer import Tokenizer

#: Decimals kept for each weight in the page.
DECIMALS = 3
TEMPLATE = "attention.html.j2"


@dataclass
class Grid:
    """An extra layers × heads table for the page: a title, one row of cell texts per layer, notes below."""

    title: str
    cells: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class HeatCell:
    """One coloured cell of a `HeatTable`: its text, CSS colours, and a tooltip."""

    text: str
    background: str
    colour: str
    hint: str = ""


@dataclass
class HeatTable:
    """A table whose cells are shaded on the shared ramp, drawn by the page as HTML (no script needed)."""

    id: str
    title: str
    columns: list[str]
    rows: list[tuple[str, list[HeatCell]]]
    notes: list[str] = field(default_factory=list)


def heat_cell(text: str, value: float, hint: str = "") -> HeatCell:
    """A cell shaded by `value` in [0, 1] (NaN: white), its text white on the dark end of the ramp."""
    import math

    from minitx.inspect.colours import DARK_FROM, ramp_rgb, share_of

    share = 0.0 if math.isnan(value) else share_of(value)
    red, green, blue = ramp_rgb(share)
    return HeatCell(text, f"rgb({red},{green},{blue})", "white" if share > DARK_FROM else "black", hint)


def lens_section(report: LensReport, tokenizer: Tokenizer) -> HeatTable:
    """The lens as the page's tab: a row per stream point, a column per token; top token, shaded by p(target)."""
    import math

    columns = [f"{t}:{token}" for t, token in enumerate(report.tokens)]
    rows = []
    for point, name in enumerate(report.points):
        cells = []
        for t, target in enumerate(report.targets):
            top = tokenizer.id_to_token_text(int(report.top_ids[point, t, 0]))
            p = float(report.target_prob[point, t])
            hint = "no target" if target is None else (
                f"p({tokenizer.id_to_token_text(target)!r}) = {p:.3f}, rank {int(report.target_rank[point, t])}")
            cells.append(heat_cell(top if math.isnan(p) else f"{top} {p:.2f}", p, hint))
        rows.append((name, cells))
    return HeatTable("lens", "logit lens: the top token at each point; shaded by the probability of the target",
                     columns, rows, ["Each row reads the residual stream after that point through ln_f and the "
                                     "output layer; the last row is the model's own prediction."])


def patch_sections(report: PatchReport) -> list[HeatTable]:
    """Every patching grid as a heatmap table: recovered fraction, ±half the 95% interval in the tooltip."""
    import math

    tables = []
    for k, grid in enumerate(report.grids):
        rows = []
        for r, label in enumerate(grid.rows):
            cells = []
            for c in range(len(grid.columns)):
                mean, low, high = (float(a[r, c]) for a in (grid.mean, grid.low, grid.high))
                text = "" if math.isnan(mean) else f"{mean:.2f}"
                cells.append(heat_cell(text, mean, f"95% interval {low:.2f} to {high:.2f}, {int(grid.counts[r, c])} "
                                                   "pairs"))
            rows.append((label, cells))
        tables.append(HeatTable(f"patch-{k}", f"recovered by patching: {grid.title}", grid.columns, rows))
    tables[-1].notes.append(f"(Δ_patched − Δ_corrupt) / (Δ_clean − Δ_corrupt) over {report.n_pairs} pairs; "
                            "1 = that place alone carries the difference, 0 = nothing.")
    return tables


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
    lens: HeatTable | None = None,
    patching: Sequence[HeatTable] = (),
) -> str:
    """The explorer page for `capture` as a string. `selected` is the (layer, head) shown first
    (default: the most telling head, see `most_telling_head`); `grids` are extra tables to show;
    `lens` adds the logit-lens tab, `patching` the patching heatmaps."""
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
    return environment.get_template(TEMPLATE).render(title=title, data=data, grids=list(grids), lens=lens,
                                                     patching=list(patching))


def save_attention_html(
    capture: AttentionCapture,
    roles: Sequence[HeadRole],
    path: str | Path,
    *,
    title: str,
    selected: tuple[int, int] | None = None,
    grids: Sequence[Grid] = (),
    lens: HeatTable | None = None,
    patching: Sequence[HeatTable] = (),
) -> Path:
    """Write the explorer page (see `render_attention_page`) to `path` atomically and return the path."""
    page = render_attention_page(capture, roles, title=title, selected=selected, grids=grids, lens=lens,
                                 patching=patching)
    path = Path(path)
    try:
        atomic_write_text(path, page)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --html path") from None
    return path
