"""Induction heads: found where they cannot be faked, on random tokens repeated (Olsson et al., 2022).

Having seen "... A B ...", an induction head at a later A attends to B, the token after the earlier
A, so the model can predict B: a previous-token head writes "the token before me was A" into each
position, and the induction head looks for it. Story text fools the score, so it is measured on L
random tokens written R times (R = 2), after <|doc|>. For a query p in copy c ≥ 1 the earlier copies
of its token sit at p - kL (k = 1 .. c):

    induction        Σ_k α[p, p - kL + 1]   attention to the token after an earlier copy of me
    duplicate token  Σ_k α[p, p - kL]       attention to the earlier copies of me
    previous token   α[p, p - 1]

A head is "induction" at a score ≥ INDUCTION_THRESHOLD; a model that uses such heads has a far lower
loss on the second copy than on the first (ln V). More: docs/inspect.md.

Example (the scores of one hand-made head that reads the token after its earlier copy, L = 3):
    >>> import torch
    >>> alpha = torch.zeros(6, 6)   # two copies of 3 tokens, no <|doc|>: positions 0 1 2 | 3 4 5
    >>> alpha[:3, 0] = 1.0          # the first copy has nothing to look back for
    >>> alpha[3, 1] = alpha[4, 2] = alpha[5, 3] = 1.0   # position 3 repeats 0, so it reads 1; ...
    >>> scores = repeat_scores(alpha[None, None, None], length=3, repeats=2, offset=0)
    >>> {name: round(values[0, 0].item(), 2) for name, values in scores.items()}
    {'induction': 1.0, 'duplicate token': 0.0, 'previous token': 0.0}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from minitx.errors import UserError
from minitx.inspect.capture import attention_weights

if TYPE_CHECKING:
    from minitx.model import GPT

#: A head whose induction score reaches this is named "induction" (uniform attention over 2L keys
#: scores about 1/(2L) per copy; a head that reads the right key half the time or more clears it).
INDUCTION_THRESHOLD = 0.4
#: Copies of the random sequence (--repeats): two, as in the literature.
DEFAULT_REPEATS = 2
#: Random sequences the scores and losses are averaged over.
SEQUENCES = 16
#: The longest random sequence used by default (--length): shorter when the block does not hold R copies.
MAX_DEFAULT_LENGTH = 32
SCORE_NAMES = ("induction", "duplicate token", "previous token")


@dataclass(frozen=True)
class InductionHead:
    """One head's scores on the repeated random tokens (see the module docstring)."""

    layer: int
    head: int
    induction: float
    duplicate_token: float
    previous_token: float

    @property
    def is_induction(self) -> bool:
        return self.induction >= INDUCTION_THRESHOLD


@dataclass(frozen=True)
class InductionReport:
    """What `measure_induction` found: every head's scores and the model's loss on each copy."""

    length: int
    repeats: int
    sequences: int
    heads: list[InductionHead]
    copy_losses: list[float]  # mean loss (nats) on tokens 2..L of each copy, first copy first
    vocab: int  # how many different tokens the random ones were drawn from

    @property
    def chance_loss(self) -> float:
        """ln(vocab): the loss of a uniform guess among the tokens drawn from."""
        return math.log(self.vocab)

    @property
    def induction_heads(self) -> list[InductionHead]:
        return [h for h in self.heads if h.is_induction]


def default_length(block_size: int, repeats: int, offset: int) -> int:
    """The longest length up to MAX_DEFAULT_LENGTH whose `repeats` copies (after `offset` tokens) fit the block."""
    return min(MAX_DEFAULT_LENGTH, (block_size - offset) // repeats)


def check_shape(length: int, repeats: int, offset: int, block_size: int) -> None:
    """UserError unless length ≥ 2, repeats ≥ 2 and offset + length·repeats ≤ block_size."""
    if length < 2:
        raise UserError(f"--length must be at least 2, got {length}")
    if repeats < 2:
        raise UserError(f"--repeats must be at least 2 (a sequence and its repeat), got {repeats}")
    if offset + length * repeats > block_size:
        raise UserError(f"{repeats} copies of {length} tokens{' after <|doc|>' if offset else ''} need "
                        f"{offset + length * repeats} positions but the block holds {block_size}; "
                        f"use --length {(block_size - offset) // repeats} or fewer --repeats")


def repeated_random_tokens(
    vocab_ids: Sequence[int], length: int, repeats: int, sequences: int, *, seed: int = 0, first_id: int | None = None
) -> torch.Tensor:
    """[sequences, offset + length·repeats]: `first_id` (if any), then L random ids from `vocab_ids`, R times.

    Within a sequence the L ids are all different when the vocabulary allows it, so each token's
    earlier copy is unique. The draws come from a generator seeded with `seed` (the global RNG is
    left alone).

        >>> repeated_random_tokens(range(10, 20), 3, 2, 1, seed=0, first_id=0)
        tensor([[ 0, 14, 11, 17, 14, 11, 17]])
    """
    vocab = torch.as_tensor(list(vocab_ids), dtype=torch.long)
    if len(vocab) < 2:
        raise UserError("random sequences need a vocabulary of at least 2 ordinary tokens")
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(sequences):
        if len(vocab) >= length:
            picks = torch.randperm(len(vocab), generator=generator)[:length]
        else:
            picks = torch.randint(len(vocab), (length,), generator=generator)
        row = vocab[picks].repeat(repeats)  # [L·R]
        rows.append(row if first_id is None else torch.cat([torch.tensor([first_id]), row]))
    return torch.stack(rows)


def repeat_scores(weights: torch.Tensor, length: int, repeats: int, offset: int) -> dict[str, torch.Tensor]:
    """Induction, duplicate-token and previous-token scores [L, H] from weights [S, L, H, T, T] on repeats."""
    n = weights.shape[-1]
    queries = torch.arange(offset + length, offset + length * repeats)  # the second copy on
    after_copy = torch.zeros(n, n)  # [T, T]: 1 at (p, p - kL + 1)
    copy = torch.zeros(n, n)  # [T, T]: 1 at (p, p - kL)
    for p in queries.tolist():
        for earlier in range(p - length, offset - 1, -length):
            copy[p, earlier] = 1.0
            after_copy[p, earlier + 1] = 1.0
    previous = torch.zeros(n, n)
    previous[queries, queries - 1] = 1.0

    def score(mask: torch.Tensor) -> torch.Tensor:
        per_query = (weights * mask).sum(dim=-1)[..., queries]  # [S, L, H, Q]
        return per_query.mean(dim=(0, -1))  # [L, H]

    return {"induction": score(after_copy), "duplicate token": score(copy), "previous token": score(previous)}


@torch.no_grad()
def copy_losses(model: GPT, idx: torch.Tensor, length: int, repeats: int, offset: int) -> list[float]:
    """Mean next-token loss on tokens 2..L of each copy (the first token of a copy follows a different one)."""
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(idx.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
    losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), idx[:, 1:].to(logits.device),
                             reduction="none").cpu()  # [S, T-1]: losses[:, p - 1] is the loss of token p
    result = []
    for c in range(repeats):
        positions = torch.arange(offset + c * length + 1, offset + (c + 1) * length)
        result.append(losses[:, positions - 1].mean().item())
    return result


def measure_induction(
    model: GPT,
    vocab_ids: Sequence[int],
    *,
    length: int | None = None,
    repeats: int = DEFAULT_REPEATS,
    sequences: int = SEQUENCES,
    seed: int = 0,
    first_id: int | None = None,
) -> InductionReport:
    """Feed `sequences` repeated random sequences and score every head; see the module docstring.

    `vocab_ids` are the ids to draw from (no special tokens); `first_id` starts every sequence (<|doc|>).
    `length` defaults to the longest that fits the block, at most MAX_DEFAULT_LENGTH.
    """
    offset = 0 if first_id is None else 1
    block_size = model.config.block_size
    length = default_length(block_size, repeats, offset) if length is None else length
    check_shape(length, repeats, offset, block_size)
    idx = repeated_random_tokens(vocab_ids, length, repeats, sequences, seed=seed, first_id=first_id)
    scores = repeat_scores(attention_weights(model, idx), length, repeats, offset)
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    heads = [
        InductionHead(layer, head, *(scores[name][layer, head].item() for name in SCORE_NAMES))
        for layer in range(n_layers)
        for head in range(n_heads)
    ]
    losses = copy_losses(model, idx, length, repeats, offset)
    return InductionReport(length, repeats, sequences, heads, losses, len(set(vocab_ids)))
