"""Attention in the terminal: one head's heatmap, what a token reads, and the tables of every head.

Every table is a layers × heads grid (or one row per head) so a reader finds a head at the same
place in each: its role on the prompt (`roles_table`), its roles over many windows
(`spread_table`), its induction scores (`induction_table`) and how much the loss rises without it
(`ablation_table`). Token text reaches rich only as `Text`, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from minitx.inspect.capture import AttentionCapture, check_head, top_attended
from minitx.inspect.colours import DARK_FROM, rich_colour, share_of
from minitx.inspect.induction import INDUCTION_THRESHOLD
from minitx.inspect.over_data import HOLDS_IN
from minitx.inspect.roles import HeadRole, head_scores, name_role, role_label
from minitx.inspect.views.heatmap import causal_rows, shown_window, terminal_heatmap

if TYPE_CHECKING:
    from rich.console import RenderableType

    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.over_data import RoleSpread

#: Heatmaps show at most the last this many tokens (a terminal row is 2 characters per token).
MAX_SHOWN_TOKENS = 40
#: The line `minitx inspect-attention` starts with.
HOW_TO_READ = (
    "Heatmap: a row is a token; a cell is how much of an earlier token's value it takes (darker = more); "
    "rows sum to 1; blank = the future."
)
#: Colours of the roles in the terminal grids.
ROLE_STYLES = {"previous token": "bold magenta", "self": "cyan", "first token": "yellow", "same token": "bold green",
               "focused": "bold red", "local": "magenta", "broad": "blue", "mixed": "dim", "induction": "bold green"}


def attention_heatmap(
    capture: AttentionCapture, layer: int, head: int, limit: int = MAX_SHOWN_TOKENS
) -> RenderableType:
    """One head's weights as a terminal heatmap: queries down, keys across, the future blank.

    Long inputs show the last `limit` queries over the last `limit` keys (the title says so); the
    mass those queries give to earlier keys is then off the picture.
    """
    check_head(capture, layer, head)
    role, score = name_role(head_scores(capture.weights[layer, head], capture.token_ids))
    start, note = shown_window(capture.n_tokens, limit)
    labels = capture.tokens[start:]
    title = f"layer {layer} head {head}: {role_label(role, score)}{note}"
    return terminal_heatmap(causal_rows(capture.weights[layer, head, start:, start:]), labels, labels, title=title)


def _quoted(position: int, token: str) -> str:
    return f'{position}:"' + token.replace("\n", "↵").replace("\t", "⇥") + '"'


def readout_line(capture: AttentionCapture, layer: int, head: int, query: int, k: int = 3) -> str:
    """What one token reads, positions first: '3:" sat" ← 2:" cat" 0.71, 0:"<|doc|>" 0.20, 3:" sat" 0.06'."""
    read = top_attended(capture, layer, head, query, k)  # checks the query position
    query %= capture.n_tokens
    shown = ", ".join(f"{_quoted(position, text)} {weight:.2f}" for position, text, weight in read)
    return f"{_quoted(query, capture.tokens[query])} ← {shown}"


def _grid(title: str, n_heads: int) -> Table:
    table = Table(title=title, title_justify="left", min_width=len(title))  # wide enough not to wrap the title
    table.add_column("layer", justify="right")
    for head in range(n_heads):
        table.add_column(f"head {head}")
    return table


def roles_table(roles: Sequence[HeadRole], n_layers: int, n_heads: int, note: str = "") -> Table:
    """A layers × heads grid; each cell is "role score", e.g. "previous token 0.83" (or "mixed").

    `note` is added to the title, e.g. "what each head does (19 tokens, learned positions)".
    """
    table = _grid("what each head does" + (f" ({note})" if note else ""), n_heads)
    by_place = {(r.layer, r.head): r for r in roles}
    for layer in range(n_layers):
        cells: list[Text] = [Text(str(layer))]
        for head in range(n_heads):
            role = by_place[layer, head]
            cells.append(Text(role_label(role.role, role.score), style=ROLE_STYLES.get(role.role, "")))
        table.add_row(*cells)
    return table


def spread_label(spread: RoleSpread) -> str:
    """A cell of the over-data grid: "previous token 0.83±0.05", or "(local 0.55)" for a head named nothing:
    its best mean, in brackets."""
    if spread.role != "mixed":
        return f"{spread.role} {spread.mean[spread.role]:.2f}±{spread.spread[spread.role]:.2f}"
    best = max(spread.mean, key=spread.mean.__getitem__, default=None)
    return "mixed" if best is None else f"({best} {spread.mean[best]:.2f})"


def spread_table(spreads: Sequence[RoleSpread], n_layers: int, n_heads: int, n_windows: int) -> Group:
    """The roles grid over `n_windows` windows: mean ± spread of the role each head earns, and the rule."""
    table = _grid(f"what each head does over {n_windows} validation windows (mean±spread)", n_heads)
    by_place = {(s.layer, s.head): s for s in spreads}
    for layer in range(n_layers):
        cells = [Text(str(layer))]
        for head in range(n_heads):
            spread = by_place[layer, head]
            cells.append(Text(spread_label(spread), style=ROLE_STYLES.get(spread.role, "")))
        table.add_row(*cells)
    rule = (f"a role names a head only when it clears its threshold in ≥ {HOLDS_IN:.0%} of the windows; "
            "(in brackets): the best mean of a head named nothing")
    return Group(table, Text(rule, style="dim"))


def induction_table(report: InductionReport) -> Group:
    """One row per head: induction, duplicate-token and previous-token scores; then the loss on each copy."""
    title = (f"induction on {report.sequences} random sequences of {report.length} tokens, "
             f"repeated {report.repeats}× (scores on the repeats)")
    table = Table(title=title, title_justify="left", min_width=len(title))
    for name in ("layer", "head", "induction", "duplicate token", "previous token", "named"):
        table.add_column(name, justify="left" if name == "named" else "right")
    for h in report.heads:
        named = Text("induction", style=ROLE_STYLES["induction"]) if h.is_induction else Text("")
        table.add_row(str(h.layer), str(h.head), f"{h.induction:.2f}", f"{h.duplicate_token:.2f}",
                      f"{h.previous_token:.2f}", named)
    losses = ", ".join(f"copy {c + 1}: {loss:.2f}" for c, loss in enumerate(report.copy_losses))
    found = ", ".join(f"layer {h.layer} head {h.head}" for h in report.induction_heads) or "none"
    lines = [
        Text(f"loss (nats/token) on {losses}; a uniform guess scores ln {report.vocab} "
             f"= {report.chance_loss:.2f}"),
        Text(f"induction heads (induction score ≥ {INDUCTION_THRESHOLD}): {found}"),
    ]
    return Group(table, *lines)


def ablation_table(report: AblationReport, n_layers: int, n_heads: int) -> Group:
    """A layers × heads grid of the loss rise with each head mean-ablated (zeroed in brackets), shaded by size."""
    table = _grid("validation loss rise without each head: mean-ablated/zeroed", n_heads)
    by_place = {(h.layer, h.head): h for h in report.heads}
    top = max([h.mean_rise for h in report.heads] + [1e-9])
    for layer in range(n_layers):
        cells = [Text(str(layer))]
        for head in range(n_heads):
            h = by_place[layer, head]
            share = share_of(h.mean_rise, 0.0, top)
            style = f"{'white' if share > DARK_FROM else 'black'} on {rich_colour(h.mean_rise, 0.0, top)}"
            cells.append(Text(f"{h.mean_rise:+.3f}/{h.zero_rise:+.3f}", style=style))
        table.add_row(*cells)
    needed = ", ".join(f"layer {h.layer} head {h.head} {h.mean_rise:+.3f}" for h in report.most_needed(3))
    return Group(table, Text(f"base loss {report.base_loss:.4f} on {report.tokens:,} validation tokens; "
                             f"most needed (mean-ablated): {needed}"))
