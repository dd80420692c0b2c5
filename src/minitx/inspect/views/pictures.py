"""Attention as PNG files: every head's heatmap in one picture, and the ablation grid (matplotlib, the `plot` extra).

Both are drawn on the shared colour ramp (`minitx.inspect.colours`) and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minitx.inspect.capture import AttentionCapture, check_head
from minitx.inspect.roles import head_roles, role_label
from minitx.inspect.views.heatmap import causal_rows, pyplot, save_figure, save_png_heatmaps, shown_window
from minitx.inspect.views.terminal import MAX_SHOWN_TOKENS

if TYPE_CHECKING:
    from minitx.inspect.ablation import AblationReport


def save_attention_png(capture: AttentionCapture, path: str | Path, layer: int | None = None) -> Path:
    """Save all heads of `layer` (or every layer × head when None) as one PNG; return its path.

    Each panel is titled with its layer, head and role; long inputs keep the last MAX_SHOWN_TOKENS
    tokens, as in the terminal. Needs matplotlib (a UserError says so when it is missing).
    """
    check_head(capture, layer, None)
    layers = range(capture.n_layers) if layer is None else [layer]
    roles = {(r.layer, r.head): r for r in head_roles(capture)}
    start, note = shown_window(capture.n_tokens, MAX_SHOWN_TOKENS)
    matrices, titles = [], []
    for lay in layers:
        for head in range(capture.n_heads):
            role = roles[lay, head]
            matrices.append(causal_rows(capture.weights[lay, head, start:, start:]))
            titles.append(f"L{lay} H{head} {role_label(role.role, role.score)}")
    labels = capture.tokens[start:]
    return save_png_heatmaps(path, matrices, titles, labels, labels, columns=capture.n_heads,
                             colour_label="attention weight α" + note)


def save_ablation_png(report: AblationReport, n_layers: int, n_heads: int, path: str | Path) -> Path:
    """The loss rise of every head, mean-ablated and zeroed, as two layers × heads grids with the values written in."""
    import numpy as np

    from minitx.inspect.colours import DARK_FROM, matplotlib_colormap, share_of

    plt = pyplot()
    grids = {"mean-ablated": np.zeros((n_layers, n_heads)), "zeroed": np.zeros((n_layers, n_heads))}
    for h in report.heads:
        grids["mean-ablated"][h.layer, h.head] = h.mean_rise
        grids["zeroed"][h.layer, h.head] = h.zero_rise
    top = max(1e-9, *(float(g.max()) for g in grids.values()))
    fig, axes = plt.subplots(1, 2, figsize=(2 + 1.3 * n_heads * 2, 1.2 + 0.7 * n_layers), squeeze=False)
    image = None
    for ax, (name, grid) in zip(axes[0], grids.items(), strict=True):
        image = ax.imshow(grid, cmap=matplotlib_colormap(), vmin=0.0, vmax=top)
        for (layer, head), value in np.ndenumerate(grid):
            colour = "white" if share_of(value, 0.0, top) > DARK_FROM else "black"
            ax.text(head, layer, f"{value:+.3f}", ha="center", va="center", fontsize=8, color=colour)
        ax.set(title=f"loss rise, head {name}", xlabel="head", ylabel="layer",
               xticks=range(n_heads), yticks=range(n_layers))
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=f"validation loss − {report.base_loss:.3f}")
    return save_figure(fig, path)
