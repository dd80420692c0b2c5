"""Training curves: the metrics.jsonl of one or several runs, overlaid in one PNG.

Four panels share the step axis: loss (validation solid, training dashed), learning rate,
tokens per second, and MFU; one colour per run, labelled with the run's name. matplotlib is an
optional extra (`pip install minitx[plot]`).
"""

from __future__ import annotations

import io
from typing import Any

from minitx.errors import UserError

#: (metrics key, panel title) of the panels after the loss panel; a panel no run has data for is left out
PANELS = (("lr", "learning rate"), ("tokens_per_second", "tokens / s"), ("mfu", "MFU"))


def curves_png(runs: list[tuple[str, list[dict[str, Any]]]]) -> bytes:
    """A PNG of the curves of `runs`: (label, metric records) each, in the order given."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("--png needs matplotlib: pip install 'minitx[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in PANELS if any(_series(records, key)[0] for _, records in runs)]
    fig, axes = plt.subplots(1 + len(panels), 1, figsize=(8, 3.2 + 2.0 * len(panels)), sharex=True,
                             gridspec_kw={"height_ratios": [2.2] + [1] * len(panels)}, squeeze=False)
    axes = axes[:, 0]
    colours = plt.get_cmap("tab10")
    for i, (label, records) in enumerate(runs):
        colour = colours(i % 10)
        steps, val = _series(records, "val_loss")
        axes[0].plot(steps, val, color=colour, marker="o", markersize=3, label=f"{label} val")
        steps, train = _series(records, "train_loss")
        axes[0].plot(steps, train, color=colour, linestyle="--", alpha=0.8, label=f"{label} train")
        for ax, (key, _) in zip(axes[1:], panels, strict=True):
            ax.plot(*_series(records, key), color=colour, marker=".", label=label)
    axes[0].set_ylabel("loss (nats / token)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for ax, (key, title) in zip(axes[1:], panels, strict=True):
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if key == "mfu":
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """The steps and values of `key` in the records that have a number for it."""
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [s for s, _ in points], [v for _, v in points]
