"""The lab's pictures: validation curves per kind, and each headline metric with its spread.

    curves.png    validation loss against step; one colour per kind, a thin line per seed and a
                  thick line for the mean over seeds
    metrics.png   one panel per metric of the table: a dot per seed, a bar at the mean, and the
                  spread (± one standard deviation) as an error bar

matplotlib is an optional extra (`pip install minitx[plot]`): without it no PNG is written and the
report says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minitx.experiments.report import METRICS


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_pictures(report: dict[str, Any], out: Path) -> list[str]:
    """Write curves.png and metrics.png into `out`; return their file names (empty without matplotlib)."""
    if not plot_available():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minitx.fileio import atomic_write_bytes

    kinds = report["kinds"]
    colours = {kind: plt.get_cmap("tab10")(i) for i, kind in enumerate(kinds)}
    written = []

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for kind in kinds:
        curves = [run["curve"] for run in report["runs"] if run["kind"] == kind and run["curve"]]
        for curve in curves:
            axes.plot([p["step"] for p in curve], [p["val_loss"] for p in curve], color=colours[kind], alpha=0.3,
                      linewidth=0.8)
        if curves:
            length = min(len(c) for c in curves)
            steps = [curves[0][i]["step"] for i in range(length)]
            mean = [sum(c[i]["val_loss"] for c in curves) / len(curves) for i in range(length)]
            axes.plot(steps, mean, color=colours[kind], linewidth=2, label=kind)
    axes.set_xlabel("step")
    axes.set_ylabel("validation loss (nats/token)")
    axes.set_title("validation loss by positional encoding (thin: seeds, thick: mean)")
    axes.legend()
    written.append(_save(figure, out / "curves.png", atomic_write_bytes))

    shown = [(key, heading) for key, heading, *_ in METRICS]
    figure, grid = plt.subplots(2, (len(shown) + 1) // 2, figsize=(4 * ((len(shown) + 1) // 2), 7))
    for axes, (key, heading) in zip(grid.flat, shown, strict=False):
        for x, kind in enumerate(kinds):
            metric = report["rows"][kind][key]
            if metric["mean"] is None:
                axes.text((x + 0.5) / len(kinds), 0.02, "n/a", ha="center", va="bottom", fontsize=8,
                          transform=axes.transAxes)
                continue
            axes.bar(x, metric["mean"], color=colours[kind], alpha=0.5, yerr=metric["spread"], capsize=4)
            axes.scatter([x] * len([v for v in metric["values"] if v is not None]),
                         [v for v in metric["values"] if v is not None], color="black", s=10, zorder=3)
        axes.set_xticks(range(len(kinds)), kinds, rotation=30, fontsize=8)
        axes.set_title(heading, fontsize=9)
        values = [v for kind in kinds for v in report["rows"][kind][key]["values"] if v is not None]
        if values and min(values) > 0:  # zoom in: differences of a few percent are the story
            low, high = min(values), max(values)
            span = max(high - low, 0.05 * high)
            axes.set_ylim(max(0.0, low - 1.5 * span), high + 0.5 * span)
    for axes in list(grid.flat)[len(shown):]:
        axes.axis("off")
    figure.suptitle("metrics per positional encoding (bar: mean, error bar: ± sd over seeds, dots: seeds)")
    figure.tight_layout()
    written.append(_save(figure, out / "metrics.png", atomic_write_bytes))
    return written


def _save(figure: Any, path: Path, write: Any) -> str:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write(path, buffer.getvalue())
    return path.name
