"""The views of `minitx inspect-positions`: a terminal report, PNG pictures, and several runs side by side.

The numbers come from `minitx.inspect.positions`; here they are laid out. For one run: the
encoding's describe() line, its heatmap and distance table (alibi: a table per head) and a few
facts in words; `--png` writes the heatmap(s) and a line plot by distance -- for a learned table
beside random vectors of the same shape, the baseline that shows training made the table smooth.

For several runs (`minitx inspect-positions RUN_A RUN_B ...`, e.g. a learned run beside a rope
run) the same views are put side by side: one table of each run's view by distance, and one PNG
with a heatmap per run and their distance profiles on one plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from minitx.inspect.positions import (
    MAX_SHOWN_POSITIONS,
    PositionReport,
    by_distance,
    evenly_spaced,
    table_distances,
)
from minitx.inspect.views.heatmap import cells_that_fit, pyplot, save_figure, save_png_heatmaps, terminal_heatmap

# ---------------------------------------------------------------------------------------------
# the terminal view


def shown_matrix(matrix: torch.Tensor, limit: int = MAX_SHOWN_POSITIONS) -> tuple[list[list[float]], list[str], str]:
    """The matrix cut down to at most `limit` evenly spaced positions: (rows, position labels, title note)."""
    shown = evenly_spaced(matrix.shape[0], limit)
    index = torch.tensor(shown)
    note = "" if len(shown) == matrix.shape[0] else f", every ~{(matrix.shape[0] - 1) / (len(shown) - 1):.1f} positions"
    return matrix[index][:, index].tolist(), [str(p) for p in shown], note


def _facts(report: PositionReport) -> list[str]:
    """Kind-specific sentences: the turning speeds, the learned table against chance, how fast the view decays."""
    facts = []
    if report.frequencies:
        fastest, slowest = max(report.frequencies), min(report.frequencies)
        facts.append(f"{len(report.frequencies)} dimension pairs turn at their own speed, from {fastest:.3g} to "
                     f"{slowest:.3g} rad per token: one turn every {2 * math.pi / fastest:.1f} to "
                     f"{2 * math.pi / slowest:,.0f} tokens.")
    if report.embedding_scale is not None:
        facts.append(f"Token embeddings are multiplied by √d = {report.embedding_scale:.2f} before the table is "
                     "added. The similarity depends only on the distance: every diagonal is constant.")
    stats = report.learned
    if stats is not None:
        facts.append(f"Neighbouring positions: cosine {stats.neighbour_cosine:.3f}; positions {stats.far_distance}+ "
                     f"apart: {stats.far_cosine:.3f}. Random vectors of the same shape: "
                     f"{stats.random_neighbour_cosine:.3f} and {stats.random_far_cosine:.3f} "
                     f"(chance spread ±{stats.chance_spread:.3f}).")
        facts.append("Neighbours are far more alike than chance: training has made the table smooth, a notion of order."
                     if stats.looks_trained else "Neighbours are no more alike than random vectors: "
                     "this table looks untrained.")
    facts.extend(report.notes)
    if report.show_decay:
        profile = report.distance_profile
        below = next((d for d, value in enumerate(profile) if value < 0.5), None)
        lowest = min(range(len(profile)), key=profile.__getitem__)
        falls = f"first falls below 0.5 at distance {below}" if below is not None else "stays above 0.5"
        facts.append(f"The {report.meaning} {falls}; its lowest is {profile[lowest]:.3f} "
                     f"at distance {lowest}.")
    return facts


def _distance_table(report: PositionReport) -> Table:
    """The view at distances 0, 1, 2, 4, ...; a learned table beside random vectors of its shape."""
    table = Table()  # each value is the mean over all pairs (i, j) at that distance
    table.add_column("distance i - j", justify="right")
    table.add_column(report.column, justify="right")
    if report.learned is not None:
        table.add_column("random vectors", justify="right")
    for d in table_distances(report.n_positions):
        baseline = [f"{report.learned.random_profile[d]:.3f}"] if report.learned is not None else []
        table.add_row(str(d), f"{report.distance_profile[d]:.3f}", *baseline)
    return table


def _alibi_table(report: PositionReport) -> Table:
    """One row per head: slope, the distance at which a key's weight halves, the bias at a few distances."""
    distances = table_distances(report.n_positions)[1:]
    table = Table(title="ALiBi bias -m·d added to each head's scores", title_justify="left")
    for name in ["head", "slope m", "halves every", *(f"d={d}" for d in distances)]:
        table.add_column(name, justify="right")
    for head, slope in enumerate(report.slopes):
        halving = f"{math.log(2) / slope:.1f} tok" if slope > 0 else "never"
        table.add_row(str(head), f"{slope:.4g}", halving, *(f"{-slope * d:.3g}" for d in distances))
    return table


def position_report_view(report: PositionReport, width: int = 80) -> Group:
    """The report as one renderable: the describe() line, then the heatmap, distance table and facts for the kind.

    `width` is the console's: the heatmap is cut to the positions that fit.
    """
    parts: list[RenderableType] = []
    parts.append(Text(report.description, style="bold"))
    if report.view == "nothing":
        parts.extend(Text(note) for note in report.notes)
    elif report.view == "head_bias":
        parts.append(_alibi_table(report))
        parts.extend(Text(note) for note in report.notes)
    else:
        rows, labels, note = shown_matrix(report.matrix, min(MAX_SHOWN_POSITIONS, cells_that_fit(width)))
        title = f"{report.meaning}, positions 0..{report.n_positions - 1}{note} (white -1, blue 1)"
        parts.append(terminal_heatmap(rows, labels, labels, title=title, low=-1.0, high=1.0))
        parts.append(_distance_table(report))
        for fact in _facts(report):
            parts.append(Text(fact))
    return Group(*parts)


def comparison_table(reports: Sequence[PositionReport], names: Sequence[str]) -> Group:
    """Several runs side by side: each run's encoding, then one table of their views by distance.

    learned / sinusoidal: mean cosine of positions d apart; rope: RoPE's mean factor on q·k at
    distance d; alibi: the weight e^(-m·d) a key d back keeps, averaged over heads; none: "-".
    """
    parts: list[RenderableType] = [Text(f"{name}: {report.description}") for name, report in zip(names, reports,
                                                                                                   strict=True)]
    table = Table(title="each run's view by distance i - j", title_justify="left")
    table.add_column("distance", justify="right")
    for name, report in zip(names, reports, strict=True):
        table.add_column(Text(f"{name}\n{report.kind}"), justify="right")
    n = min(report.n_positions for report in reports)
    for d in table_distances(n):
        table.add_row(str(d), *(_at_distance(report, d) for report in reports))
    parts.append(table)
    return Group(*parts)


def _profile(report: PositionReport) -> list[float] | None:
    """The one line by distance a run contributes to a comparison (None: the model has no positions)."""
    if report.view == "head_bias":
        kept = torch.tensor([by_distance(bias.exp()) for bias in report.head_biases])  # [H, N]: e^(-m_h·d)
        return kept.mean(dim=0).tolist()
    return report.distance_profile


def _at_distance(report: PositionReport, d: int) -> str:
    profile = _profile(report)
    return "-" if profile is None else f"{profile[d]:.3f}"


def save_comparison_png(reports: Sequence[PositionReport], names: Sequence[str], path: str | Path) -> Path:
    """One PNG: a heatmap per run (as `save_positions_png` draws it; alibi: e^(-m·d) averaged over heads), and
    every run's profile by distance on one plot; return the path."""
    import numpy as np

    from minitx.inspect.colours import matplotlib_colormap

    plt = pyplot()
    n_runs = len(reports)
    fig, axes = plt.subplots(1, n_runs + 1, figsize=(4.2 * (n_runs + 1), 4.2), squeeze=False)
    for ax, name, report in zip(axes[0][:n_runs], names, reports, strict=True):
        future = torch.ones(report.n_positions, report.n_positions, dtype=torch.bool).triu(diagonal=1)
        if report.view == "head_bias":
            matrix, low, what = report.head_biases.exp().mean(dim=0).masked_fill(future, float("nan")), 0.0, "e^(-m·d)"
        elif report.view == "nothing":
            matrix, low, what = torch.ones(future.shape).masked_fill(future, float("nan")), 0.0, "causal mask only"
        else:
            matrix, low, what = report.matrix, -1.0, report.meaning
        rows, labels, _ = shown_matrix(matrix)
        ax.imshow(np.ma.masked_invalid(np.array(rows, dtype=float)), cmap=matplotlib_colormap(), vmin=low, vmax=1.0,
                  interpolation="nearest")
        ticks = range(0, len(labels), max(1, len(labels) // 8))
        ax.set_xticks(list(ticks), [labels[i] for i in ticks], fontsize=7)
        ax.set_yticks(list(ticks), [labels[i] for i in ticks], fontsize=7)
        ax.set_title(f"{name}: {report.kind}\n{what}", fontsize=9)
    plot = axes[0][-1]
    for name, report in zip(names, reports, strict=True):
        profile = _profile(report)
        if profile is not None:
            plot.plot(profile, label=f"{name} ({report.kind})")
    plot.axhline(0.0, color="grey", linewidth=0.5)
    plot.set(xlabel="distance i - j (tokens)", title="by distance")
    plot.legend(fontsize=7)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# pictures of one run


def save_positions_png(report: PositionReport, path: str | Path) -> Path:
    """Save the report's heatmap(s) as a PNG; return the path. Needs matplotlib (else a UserError says so).

    learned/sinusoidal/rope: the matrix (evenly spaced positions, -1 white .. 1 blue);
    alibi: one heatmap per head of e^(-m·(i - j)), the weight a key keeps at that distance;
    none: the causal mask, the only order the model has (row i sees i + 1 tokens).
    """
    future = torch.ones(report.n_positions, report.n_positions, dtype=torch.bool).triu(diagonal=1)  # j > i
    if report.view == "head_bias":
        matrices, titles = [], []
        for head, (bias, slope) in enumerate(zip(report.head_biases, report.slopes, strict=True)):
            rows, labels, _ = shown_matrix(bias.exp().masked_fill(future, float("nan")))  # e^(-m·d); the future blank
            matrices.append(rows)
            titles.append(f"head {head}: m = {slope:.3g}")
        options = dict(low=0.0, high=1.0, columns=min(4, len(matrices)), colour_label="weight kept, e^(-m·(i - j))")
    elif report.view == "nothing":
        rows, labels, _ = shown_matrix(torch.ones(future.shape).masked_fill(future, float("nan")))
        matrices, titles = [rows], [f"{report.kind}: only the causal mask (row i sees i + 1 tokens)"]
        options = dict(low=0.0, high=1.0, columns=1, colour_label="visible")
    else:
        rows, labels, note = shown_matrix(report.matrix)
        matrices, titles = [rows], [f"{report.kind}: {report.meaning}{note}"]
        options = dict(low=-1.0, high=1.0, columns=1, colour_label=report.meaning)
    return save_png_heatmaps(path, matrices, titles, labels, labels, **options)


def save_distance_png(report: PositionReport, path: str | Path) -> Path:
    """A line plot of the view by distance (alibi: a line per head; learned: beside random vectors); return the path."""
    if not report.has_signal:
        raise ValueError("a model without positional encoding has no distance profile to plot")
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    if report.view == "head_bias":
        for head, (bias, slope) in enumerate(zip(report.head_biases, report.slopes, strict=True)):
            ax.plot(by_distance(bias), label=f"head {head} (m = {slope:.3g})")
        ax.set_ylabel("bias added to the score")
    else:
        ax.plot(report.distance_profile, label=report.kind)
        if report.learned is not None:
            ax.plot(report.learned.random_profile, linestyle="--", label="random vectors, same shape")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_ylabel(report.meaning, fontsize=8)
    ax.set(xlabel="distance i - j (tokens)", title=f"{report.kind} positions by distance")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
