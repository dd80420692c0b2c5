"""What a model's positional encoding gives it: the numbers behind `minitx inspect-positions`.

To one attention layer the past is a set: c_t = Σ_{t' ≤ t} α[t, t'] v_{t'} does not change when the
tokens before t are shuffled; only the causal mask and a positional encoding tell them apart. Each
encoding says itself what to draw (`view` on its class, model/positions.py): a similarity of
position pairs [N, N] (learned, sinusoidal: cosine of the table's rows; rope: mean_k cos((i - j)·θ_k),
the factor it puts on q·k), a score bias per head (alibi: -m_h·(i - j)), or nothing (none). What each
picture means: docs/inspect.md. The views (terminal, PNG, several runs side by side) are in
`minitx.inspect.views.positions`.

Example:
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import build_model
    >>> model = build_model(ModelConfig(vocab_size=10, block_size=64, n_layers=1, n_heads=2, dim=32, pos="sinusoidal"))
    >>> report = inspect_positions(model, 64)
    >>> report.matrix.shape, [round(s, 2) for s in report.distance_profile[:3]]
    (torch.Size([64, 64]), [1.0, 0.96, 0.86])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from minitx.errors import UserError
from minitx.model.positions import cosine_similarity_matrix

if TYPE_CHECKING:
    from minitx.model import GPT

#: Heatmaps show at most this many positions per side (evenly spaced), so they fit a terminal.
MAX_SHOWN_POSITIONS = 40
#: `minitx inspect-positions` looks at min(block_size, this) positions unless --positions says otherwise.
DEFAULT_POSITIONS = 128
#: "Far apart" for the learned-table summary: positions at least this many tokens apart.
FAR_DISTANCE = 16



@dataclass
class LearnedTableStats:
    """Is a learned position table smooth, or no better than random vectors of the same shape?

    `chance_spread` = 1/√(dim·(N - 1)) is how far the mean neighbour cosine of random vectors
    typically strays from 0; a table whose neighbours beat the random baseline by more than four
    of those (about three spreads of a difference of two such means) is not random.
    """

    neighbour_cosine: float  # mean cosine of positions 1 apart
    far_cosine: float  # mean cosine of positions at least far_distance apart
    far_distance: int
    random_neighbour_cosine: float  # the same two figures for random vectors [N, dim]
    random_far_cosine: float
    random_profile: list[float]  # by_distance of the random vectors' similarity
    chance_spread: float

    @property
    def looks_trained(self) -> bool:
        return self.neighbour_cosine - self.random_neighbour_cosine > 4 * self.chance_spread


@dataclass
class PositionReport:
    """Everything `inspect_positions` found out about one model's positions (N = n_positions)."""

    kind: str  # config.json's `pos`
    description: str  # the encoding's own describe() line
    view: str  # what the encoding's class says to draw: "similarity" | "head_bias" | "nothing"
    meaning: str  # a "similarity" view: what the matrix holds ...
    column: str  # ... and the heading of its mean by distance
    notes: tuple[str, ...]  # the sentences the encoding's class adds about itself
    show_decay: bool  # say where the mean by distance falls below 0.5
    n_positions: int
    matrix: torch.Tensor | None  # [N, N] similarity (learned, sinusoidal) or RoPE factor; None otherwise
    distance_profile: list[float] | None  # by_distance(matrix): distance 0 .. N-1
    head_biases: torch.Tensor | None = None  # alibi: [H, N, N], -m_h·(i - j)
    slopes: list[float] | None = None  # alibi: m_h per head
    frequencies: list[float] | None = None  # sinusoidal, rope: radians per token of each dimension pair
    embedding_scale: float | None = None  # sinusoidal: token embeddings are multiplied by this (√d)
    learned: LearnedTableStats | None = None

    @property
    def has_signal(self) -> bool:
        return self.view != "nothing"


# ---------------------------------------------------------------------------------------------
# the numbers


def check_n_positions(model: GPT, n_positions: int) -> None:
    """UserError unless 1 <= n_positions <= block_size."""
    block_size = model.config.block_size
    if not 1 <= n_positions <= block_size:
        raise UserError(f"asked for {n_positions} positions but the model has block_size {block_size}; "
                        f"ask for 1 to {block_size} positions (--positions)")


def position_similarity(model: GPT, n_positions: int) -> torch.Tensor | None:
    """[N, N]: how alike positions i and j look to the model, or None where that is not one matrix.

    Each encoding says itself (`similarity_matrix`): a table's kinds give the cosine similarity of
    rows i and j of `encoding_matrix(N)`; rope gives mean_k cos((i - j)·θ_k), the factor it puts on
    q·k when query and key hold the same vector with equal energy in every pair; alibi (per head, see
    `alibi_bias`) and none give None.
    """
    check_n_positions(model, n_positions)
    return model.positions.similarity_matrix(n_positions)


def alibi_bias(model: GPT, n_positions: int) -> torch.Tensor:
    """[H, N, N]: the bias a "head_bias" encoding (ALiBi) adds to head h's score of query i for key j, -m_h·(i - j).

    Taken from the model's own `score_bias`; j > i (the future) is masked in attention anyway.
    Example with slope 0.5: row i = 2 is [-1.0, -0.5, 0.0, ...].
    """
    check_n_positions(model, n_positions)
    if model.positions.view != "head_bias":
        raise ValueError(f"alibi_bias needs a model with a score bias per head, not {model.positions.kind!r}")
    return model.positions.score_bias(n_positions, n_positions, 0).detach().to("cpu", torch.float64)


def by_distance(matrix: torch.Tensor) -> list[float]:
    """The mean of matrix[i, j] over all pairs at distance i - j = d, for d = 0 .. N-1.

    Example: [[1, 0], [0.5, 1]] -> [1.0, 0.5] (the main diagonal, then the one below it).
    """
    return [matrix.diagonal(offset=-d).mean().item() for d in range(matrix.shape[0])]


def pair_frequencies(model: GPT) -> list[float] | None:
    """Sinusoidal and rope: the angle (radians per token) each pair of dimensions turns by, fastest first.

    Read off position 1 of the model's tables (sin ω, cos ω) -- ω ≤ 1 rad, so atan2 gives it back.
    """
    return model.positions.pair_frequencies()


def learned_table_stats(similarity: torch.Tensor, dim: int) -> LearnedTableStats | None:
    """Neighbour and far-apart similarity of a learned table next to random vectors [N, dim] (None if N < 2)."""
    n = similarity.shape[0]
    if n < 2:
        return None
    far_distance = min(FAR_DISTANCE, n // 2)
    generator = torch.Generator().manual_seed(0)  # a fixed baseline, and the global RNG left alone
    random_similarity = cosine_similarity_matrix(torch.randn(n, dim, generator=generator, dtype=torch.float64))
    far_pairs = torch.ones(n, n, dtype=torch.bool).tril(diagonal=-far_distance)  # i - j >= far_distance
    random_profile = by_distance(random_similarity)
    return LearnedTableStats(
        neighbour_cosine=similarity.diagonal(offset=-1).mean().item(),
        far_cosine=similarity[far_pairs].mean().item(),
        far_distance=far_distance,
        random_neighbour_cosine=random_profile[1],
        random_far_cosine=random_similarity[far_pairs].mean().item(),
        random_profile=random_profile,
        chance_spread=1.0 / math.sqrt(dim * (n - 1)),
    )


@torch.no_grad()
def inspect_positions(model: GPT, n_positions: int) -> PositionReport:
    """Gather what the model's positional encoding shows over positions 0 .. n_positions-1."""
    positions = model.positions
    matrix = position_similarity(model, n_positions)  # checks n_positions
    report = PositionReport(positions.kind, positions.describe(), positions.view, positions.view_meaning,
                            positions.view_column, positions.view_notes, positions.view_decay, n_positions, matrix,
                            distance_profile=None if matrix is None else by_distance(matrix),
                            frequencies=pair_frequencies(model), embedding_scale=positions.embedding_scale)
    if positions.view == "head_bias":
        report.head_biases = alibi_bias(model, n_positions)
        report.slopes = positions.slopes.tolist()
    if positions.trained and matrix is not None:
        report.learned = learned_table_stats(matrix, model.config.dim)
    return report


def table_distances(n_positions: int) -> list[int]:
    """Distances worth a table row: 0, 1, 2, 4, 8, ... below N, then N - 1. Example: 20 -> [0, 1, 2, 4, 8, 16, 19]."""
    powers = [2**k for k in range(n_positions.bit_length()) if 2**k < n_positions]
    return sorted({0, *powers, n_positions - 1})


def evenly_spaced(n: int, limit: int = MAX_SHOWN_POSITIONS) -> list[int]:
    """At most `limit` positions out of 0 .. n-1, evenly spread, both ends kept. Example: (9, 3) -> [0, 4, 8]."""
    if n <= limit:
        return list(range(n))
    return [round(k * (n - 1) / (limit - 1)) for k in range(limit)]
