"""Naming what an attention head does, from its weights α alone (each role explained: docs/inspect.md).

A head's [T, T] pattern (queries down, keys across) often has a shape with a name: previous token
(α[t, t-1]), self (α[t, t]), first token (α[t, 0], usually a <|doc|> "sink"), same token (earlier
copies of itself), focused (most of a row on one token, found by content), local (the 3 tokens
before t), broad (rows near uniform), else mixed. A score is a mean over rows t ≥ 1 (row 0 has one
entry, always 1). `name_role` tries the positional roles first (score ≥ 0.5), then focused (≥ 0.7),
then local (≥ 0.7) and broad (normalised entropy ≥ 0.85); the higher score wins within a group.
Induction is measured on repeated random tokens (`minitx.inspect.induction`), and these roles over
many windows (`minitx.inspect.over_data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from minitx.inspect.capture import AttentionCapture

#: The roles in the order they are tried: group by group, the most specific first (ties: the earlier role).
ROLE_GROUPS = (("previous token", "self", "first token", "same token"), ("focused",), ("local", "broad"))
#: The score a role needs to be given to a head (see the module docstring for the reasons).
ROLE_THRESHOLDS = {
    "previous token": 0.5, "self": 0.5, "first token": 0.5, "same token": 0.5,
    "focused": 0.7, "local": 0.7, "broad": 0.85,
}
#: How many tokens before t count as "local".
LOCAL_WINDOW = 3
#: "same token" is only scored when at least this many queries have an earlier copy of themselves.
MIN_REPEATED_QUERIES = 2
#: When a head gets which name, in one line.
ROLE_RULES = (
    "named when: "
    + ", ".join(f"{role} ≥ {at}" for role, at in ROLE_THRESHOLDS.items())
    + " (most specific first); else mixed"
)

def head_scores(weights: torch.Tensor, token_ids: Sequence[int] | None = None) -> dict[str, float]:
    """Scores in [0, 1] of one head's [T, T] weights for each role it can be measured on.

    Rows t ≥ 1 are averaged (row 0 is always [1]). "broad" needs rows with at least 3 visible
    tokens (t ≥ 2), "same token" needs `token_ids` and MIN_REPEATED_QUERIES queries that have an
    earlier copy of themselves; a role that cannot be measured is left out.

    Example (an exact previous-token head on 4 tokens):
        >>> import torch
        >>> scores = head_scores(torch.tensor([[1., 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]))
        >>> {role: round(score, 2) for role, score in scores.items()}
        {'previous token': 1.0, 'self': 0.0, 'first token': 0.33, 'focused': 1.0, 'local': 1.0, 'broad': 0.0}
    """
    weights = weights.double()  # exact means for hand-made patterns; cheap at these sizes
    n = weights.shape[-1]
    scores: dict[str, float] = {}
    if n >= 2:
        queries = torch.arange(1, n)
        scores["previous token"] = weights[queries, queries - 1].mean().item()
        scores["self"] = weights[queries, queries].mean().item()
        scores["first token"] = weights[1:, 0].mean().item()
        scores["focused"] = weights[1:].max(dim=-1).values.mean().item()
        ones = torch.ones(n, n, dtype=torch.bool)
        window = ones.tril(-1) & ~ones.tril(-LOCAL_WINDOW - 1)  # [T, T]: t-3 <= t' <= t-1
        scores["local"] = (weights * window)[1:].sum(dim=-1).mean().item()
    if token_ids is not None:
        ids = torch.as_tensor(list(token_ids))
        earlier_copy = (ids[:, None] == ids[None, :]).tril(-1)  # [T, T]: key t' < t holds the same id as t
        has_copy = earlier_copy.any(dim=-1)  # [T]
        if int(has_copy.sum()) >= MIN_REPEATED_QUERIES:
            scores["same token"] = (weights * earlier_copy)[has_copy].sum(dim=-1).mean().item()
    if n >= 3:
        rows = weights[2:]  # [T-2, T]: queries that can see 3 or more tokens
        entropy = -torch.where(rows > 0, rows * rows.log(), torch.zeros_like(rows)).sum(dim=-1)
        visible = torch.arange(3, n + 1, dtype=torch.float64)  # row t sees t+1 tokens
        scores["broad"] = (entropy / visible.log()).mean().item()  # 1 = uniform over what it can see
    return scores


def name_role(scores: dict[str, float]) -> tuple[str, float]:
    """The role a head's scores earn, and its score; ("mixed", best score) when none clears its threshold.

    The groups of ROLE_GROUPS are tried in order; within a group the highest score wins (ties: the
    earlier role).

        >>> name_role({"previous token": 1.0, "local": 1.0, "broad": 0.0})
        ('previous token', 1.0)
        >>> name_role({"previous token": 0.3, "local": 0.5, "broad": 0.6})
        ('mixed', 0.6)
    """
    for group in ROLE_GROUPS:
        cleared = [role for role in group if scores.get(role, -1.0) >= ROLE_THRESHOLDS[role]]
        if cleared:
            best = max(cleared, key=lambda role: (scores[role], -group.index(role)))
            return best, scores[best]
    return "mixed", max(scores.values(), default=0.0)


@dataclass(frozen=True)
class HeadRole:
    """The role of one head: `role` is a name from ROLE_THRESHOLDS or "mixed"; `scores` has every measured role."""

    layer: int
    head: int
    role: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)


def head_roles(capture: AttentionCapture) -> list[HeadRole]:
    """Name every head of `capture`, layer by layer: [HeadRole(0, 0, ...), HeadRole(0, 1, ...), ...]."""
    roles = []
    for layer in range(capture.n_layers):
        for head in range(capture.n_heads):
            scores = head_scores(capture.weights[layer, head], capture.token_ids)
            role, score = name_role(scores)
            roles.append(HeadRole(layer, head, role, score, scores))
    return roles


def most_telling_head(roles: Sequence[HeadRole]) -> HeadRole:
    """The head worth showing first: the strongest named role, "broad" aside.

    A broad head is a flat triangle, the least telling picture, so it only counts when nothing else
    is named; then the most concentrated head (lowest "broad" score) is shown, as its pattern has
    the most structure to see.
    """
    named = [r for r in roles if r.role not in ("mixed", "broad")]
    if named:
        return max(named, key=lambda r: r.score)
    return min(roles, key=lambda r: r.scores.get("broad", 1.0))


def role_label(role: str, score: float) -> str:
    """How a role is shown: "previous token 0.83", or just "mixed" (its score names no role)."""
    return role if role == "mixed" else f"{role} {score:.2f}"
