"""The one colour ramp every view of minitx draws numbers with: white (low) to a deep blue (high).

The terminal heatmap, the PNG pictures (matplotlib) and the HTML page all read these two ends and
mix them linearly, so a weight of 0.6 is the same blue in all three -- a reader who learned the
scale in one view can read the others.

    share s in [0, 1]  ->  colour = LOW + s · (HIGH - LOW), channel by channel

Example:
    >>> ramp_rgb(0.0), ramp_rgb(1.0), ramp_rgb(0.5)
    ((255, 255, 255), (8, 48, 140), (132, 152, 198))
    >>> rich_colour(0.25, low=0.0, high=0.5)
    'rgb(132,152,198)'
"""

from __future__ import annotations

#: The colour of the lowest value (white) and of the highest (a deep blue), as (red, green, blue).
LOW_RGB = (255, 255, 255)
HIGH_RGB = (8, 48, 140)
#: Text drawn on a cell darker than this share is written in white, so it stays readable.
DARK_FROM = 0.6


def share_of(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """Where `value` sits between low and high, clipped to [0, 1] (0 when the scale is empty)."""
    if high <= low:
        return 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def ramp_rgb(share: float) -> tuple[int, int, int]:
    """The ramp's colour at `share` in [0, 1] (clipped), as integer (red, green, blue)."""
    share = min(1.0, max(0.0, share))
    return tuple(round(a + share * (b - a)) for a, b in zip(LOW_RGB, HIGH_RGB, strict=True))


def rich_colour(value: float, low: float = 0.0, high: float = 1.0) -> str:
    """The colour of `value` on a scale from low to high, in rich's "rgb(r,g,b)" syntax."""
    red, green, blue = ramp_rgb(share_of(value, low, high))
    return f"rgb({red},{green},{blue})"


def matplotlib_colormap():  # a matplotlib Colormap, imported only when a picture is drawn
    """The ramp as a matplotlib colormap (linear between the two ends; NaN cells are left blank)."""
    from matplotlib.colors import LinearSegmentedColormap

    colormap = LinearSegmentedColormap.from_list(
        "minitx", [tuple(c / 255 for c in LOW_RGB), tuple(c / 255 for c in HIGH_RGB)]
    )
    return colormap.with_extremes(bad=(1.0, 1.0, 1.0, 0.0))  # masked (NaN) cells: transparent


def ramp_for_page() -> dict[str, object]:
    """The ramp as the HTML page's script reads it: both ends and the share from which text turns white."""
    return {"low": list(LOW_RGB), "high": list(HIGH_RGB), "darkFrom": DARK_FROM}
