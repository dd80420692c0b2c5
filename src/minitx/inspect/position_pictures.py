"""Pictures of a positional encoding for `minitx inspect-positions --png` (the numbers: positions.py).

Two files: the heatmap(s) of the report's matrix, and a line plot of the same view by distance --
for a learned table beside random vectors of the same shape, the baseline that shows training
made the table smooth.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minitx.inspect.heatmap import pyplot, save_figure, save_png_heatmaps
from minitx.inspect.positions import MATRIX_MEANING, PositionReport, by_distance, shown_matrix


def save_positions_png(report: PositionReport, path: str | Path) -> Path:
    """Save the report's heatmap(s) as a PNG; return the path. Needs matplotlib (else a UserError says so).

    learned/sinusoidal/rope: the matrix (evenly spaced positions, -1 white .. 1 blue);
    alibi: one heatmap per head of e^(-m·(i - j)), the weight a key keeps at that distance;
    none: the causal mask, the only order the model has (row i sees i + 1 tokens).
    """
    future = torch.ones(report.n_positions, report.n_positions, dtype=torch.bool).triu(diagonal=1)  # j > i
    if report.kind == "alibi":
        matrices, titles = [], []
        for head, (bias, slope) in enumerate(zip(report.head_biases, report.slopes, strict=True)):
            rows, labels, _ = shown_matrix(bias.exp().masked_fill(future, float("nan")))  # e^(-m·d); the future blank
            matrices.append(rows)
            titles.append(f"head {head}: m = {slope:.3g}")
        options = dict(low=0.0, high=1.0, columns=min(4, len(matrices)), colour_label="weight kept, e^(-m·(i - j))")
    elif report.kind == "none":
        rows, labels, _ = shown_matrix(torch.ones(future.shape).masked_fill(future, float("nan")))
        matrices, titles = [rows], ["none: only the causal mask (row i sees i + 1 tokens)"]
        options = dict(low=0.0, high=1.0, columns=1, colour_label="visible")
    else:
        rows, labels, note = shown_matrix(report.matrix)
        matrices, titles = [rows], [f"{report.kind}: {MATRIX_MEANING[report.kind]}{note}"]
        options = dict(low=-1.0, high=1.0, columns=1, colour_label=MATRIX_MEANING[report.kind])
    return save_png_heatmaps(path, matrices, titles, labels, labels, **options)


def save_distance_png(report: PositionReport, path: str | Path) -> Path:
    """A line plot of the view by distance (alibi: a line per head; learned: beside random vectors); return the path."""
    if not report.has_signal:
        raise ValueError("a model without positional encoding has no distance profile to plot")
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    if report.kind == "alibi":
        for head, (bias, slope) in enumerate(zip(report.head_biases, report.slopes, strict=True)):
            ax.plot(by_distance(bias), label=f"head {head} (m = {slope:.3g})")
        ax.set_ylabel("bias added to the score")
    else:
        ax.plot(report.distance_profile, label=report.kind)
        if report.learned is not None:
            ax.plot(report.learned.random_profile, linestyle="--", label="random vectors, same shape")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_ylabel(MATRIX_MEANING[report.kind], fontsize=8)
    ax.set(xlabel="distance i - j (tokens)", title=f"{report.kind} positions by distance")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
