"""Error bars: how far a measured number could move if the same measurement were repeated.

Three tools, each matched to what is being measured:

- **Wilson interval** for an accuracy k/n (a share of pairs the model gets right). Unlike the
  textbook p ± 1.96·√(p(1-p)/n), it never leaves [0, 1] and stays honest at 0/n or n/n:
  wilson(90, 100) ≈ (0.826, 0.945).
- **Bootstrap** for a ratio of sums over units (documents, windows): resample the units with
  replacement, recompute the statistic, take the 2.5% and 97.5% quantiles. It makes no assumption
  about the shape of the distribution, which for per-document loss gaps is skewed.
- **Spread over seeds**: the mean and sample standard deviation of one metric over training seeds.
  This is the noise a learner cares about most -- retrain with another seed and the number moves
  by about this much -- and `differs` compares two such means against it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959964  # the 97.5% quantile of the standard normal


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson score interval for a proportion; (0, 1) when n == 0 (nothing measured)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(
    columns: Sequence[Sequence[float]],
    statistic: Callable[..., float],
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `statistic(*columns)` over units (rows).

    `columns` are equally long sequences, one value per unit (e.g. nats and bytes per document);
    each resample draws units with replacement and keeps a unit's values together. Example: the
    interval of a bits-per-byte gap is bootstrap([gap_nats, n_bytes], lambda g, b: g.sum() / b.sum() / ln 2).
    """
    arrays = [np.asarray(column, dtype=np.float64) for column in columns]
    n = len(arrays[0])
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_resamples, n))
    values = np.array([statistic(*(a[p] for a in arrays)) for p in picks])
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def mean_and_spread(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the values that were measured; spread 0.0 for a single value."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None, None
    if len(present) == 1:
        return present[0], 0.0
    return statistics.fmean(present), statistics.stdev(present)


def differs(mean_a: float, spread_a: float, mean_b: float, spread_b: float) -> bool:
    """Whether two means over seeds differ by more than their spreads together (a plain, cautious rule).

    The gap must exceed spread_a + spread_b: one seed's bad luck in each direction cannot close it.
    With a single seed the spreads are 0 and any difference counts, so reports say how many seeds
    there were.
    """
    return abs(mean_a - mean_b) > spread_a + spread_b
