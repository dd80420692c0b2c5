"""Head roles measured over many windows of text, not one prompt: one prompt is an anecdote.

`minitx inspect-attention RUN --over N` cuts N windows of block_size tokens out of the run's
validation split (evenly spaced, not overlapping), scores every head on each window with the same
`head_scores` as for a prompt, and reports for every role the mean and the spread (sample standard
deviation) across windows:

    mean_r = (1/N) Σ_w score_r(w)        spread_r = √( Σ_w (score_r(w) - mean_r)² / (N - 1) )

A head is named only by a role that *holds*: one that clears its threshold (`ROLE_THRESHOLDS`) in
at least HOLDS_IN (80%) of the windows where it could be measured. Among the roles that hold, the
usual order of `name_role` picks the name from the means; a head whose roles hold nowhere is "mixed",
however well it scored on one prompt.

Example (two hand-made windows of one previous-token head, 3 tokens each):
    >>> import torch
    >>> exact = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> blurred = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0.6, 0.4]])
    >>> spread = spread_of([[exact], [blurred]], n_layers=1, n_heads=1, ids=None)[0]
    >>> spread.role, round(spread.mean["previous token"], 2), round(spread.spread["previous token"], 2)
    ('previous token', 0.78, 0.32)
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from minitx.errors import UserError
from minitx.inspect.capture import attention_weights
from minitx.inspect.roles import ROLE_THRESHOLDS, head_scores, name_role

if TYPE_CHECKING:
    from minitx.model import GPT

#: A role holds for a head when it clears its threshold in at least this share of the windows.
HOLDS_IN = 0.8
#: Windows run through the model together.
BATCH = 8


@dataclass(frozen=True)
class RoleSpread:
    """One head's role scores over many windows.

    Attributes:
        layer, head: which head.
        role: the name it earns over the windows (a role that holds), or "mixed".
        score: the mean score of that role (for "mixed": the best mean).
        mean, spread: per role, the mean and sample standard deviation over the windows it was measured on.
        holds: per role, the share of those windows in which it cleared its threshold.
        windows: per role, on how many windows it was measured ("same token" needs repeats).
    """

    layer: int
    head: int
    role: str
    score: float
    mean: dict[str, float]
    spread: dict[str, float]
    holds: dict[str, float]
    windows: dict[str, int]


def evenly_spaced_windows(ids: torch.Tensor, n_windows: int, length: int) -> torch.Tensor:
    """`n_windows` windows of `length` tokens from 1-D `ids`, spread evenly and not overlapping: [N, length].

    A UserError says how many fit when the text is too short.

        >>> evenly_spaced_windows(torch.arange(10), 2, 3)
        tensor([[0, 1, 2],
                [5, 6, 7]])
    """
    if n_windows < 1:
        raise UserError(f"--over must be at least 1, got {n_windows}")
    fit = len(ids) // length
    if fit < n_windows:
        raise UserError(f"the validation text holds {fit} windows of {length} tokens; ask for at most {fit} (--over)")
    stride = len(ids) // n_windows  # >= length
    starts = torch.arange(n_windows) * stride
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


def spread_of(
    patterns: Sequence[Sequence[torch.Tensor]], n_layers: int, n_heads: int, ids: Sequence[Sequence[int]] | None
) -> list[RoleSpread]:
    """Aggregate per-window weights into a RoleSpread per head, layer by layer.

    `patterns[w][layer * n_heads + head]` is that head's [T, T] weights on window w; `ids[w]` the
    window's token ids (None: "same token" is not measured).
    """
    per_head: list[list[dict[str, float]]] = [[] for _ in range(n_layers * n_heads)]
    for w, heads in enumerate(patterns):
        for k, weights in enumerate(heads):
            per_head[k].append(head_scores(weights, None if ids is None else ids[w]))
    return [_spread(k // n_heads, k % n_heads, scores) for k, scores in enumerate(per_head)]


def _spread(layer: int, head: int, per_window: list[dict[str, float]]) -> RoleSpread:
    """Means, spreads and holding shares of one head's per-window scores, and the name they earn."""
    mean, spread, holds, windows = {}, {}, {}, {}
    for role in ROLE_THRESHOLDS:
        values = [scores[role] for scores in per_window if role in scores]
        if not values:
            continue
        mean[role] = statistics.fmean(values)
        spread[role] = statistics.stdev(values) if len(values) > 1 else 0.0
        holds[role] = sum(v >= ROLE_THRESHOLDS[role] for v in values) / len(values)
        windows[role] = len(values)
    held = {role: value for role, value in mean.items() if holds[role] >= HOLDS_IN}
    role, score = name_role(held)
    if role == "mixed":
        score = max(mean.values(), default=0.0)
    return RoleSpread(layer, head, role, score, mean, spread, holds, windows)


def roles_over_windows(model: GPT, windows: torch.Tensor) -> list[RoleSpread]:
    """Score every head of `model` on each window of `windows` [N, T] and aggregate (see the module docstring)."""
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    patterns: list[list[torch.Tensor]] = []
    for start in range(0, len(windows), BATCH):
        weights = attention_weights(model, windows[start : start + BATCH])  # [B, L, H, T, T]
        patterns.extend(list(w.flatten(0, 1)) for w in weights)  # each window: L·H patterns [T, T]
    return spread_of(patterns, n_layers, n_heads, windows.tolist())
