"""The logit lens: read the residual stream after every block as if it were the last one.

The output layer turns the final residual into next-token scores, logits = lm_head(ln_f(x_L)). Apply
the same readout to the stream at an earlier point p (after the embedding, or after block p-1):

    lens_p = softmax(lm_head(ln_f(x_p)))        p = 0 (embedding), 1 .. L (after each block)

and see at which depth the model "already knows" the next token. The last point is the model's own
prediction exactly (a test holds |Δ| ≤ 1e-5). Early points are only a rough view -- nothing trained
the model to make x_p readable this way -- but in a small model the answer often appears in one
step, at the block that computes it. Per point and position the report keeps the top tokens and the
probability and rank (1 = top) of a target: the token that actually comes next, or one word asked for.

On an encoder-decoder the stream read is the decoder's, given a source sentence: `ids` is the decoder's
input (the start token, then the translation so far) and `source` the encoder's, so each row asks
"what does the decoder, at this depth, expect as the next target word?" -- and the answer can only
have come from the source through cross-attention (`minitx.inspect.residual`).

Example (3 tokens through a 2-layer model: 3 points × 3 positions; the last position has no next token):
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT
    >>> model = GPT(ModelConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, dim=8)).eval()
    >>> report = logit_lens(model, [1, 2, 3], ["a", "b", "c"])
    >>> report.points, tuple(report.target_rank.shape), report.targets
    (['embed', 'block 0', 'block 1'], (3, 3), [2, 3, None])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minitx.inspect.residual import decoder_stack, read_out, residual_stream

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.model.encoder_decoder import EncoderDecoder

#: Top tokens kept per point and position.
TOP_K = 3


@dataclass
class LensReport:
    """What every point of the stream predicts at every position.

    Attributes:
        tokens / token_ids: the text read, token by token.
        points: the names of the stream points, "embed", "block 0", ... "block L-1".
        targets: per position the id whose probability is followed (the next token, or --target); None: none.
        top_ids, top_probs: [P, T, k] the k most likely tokens at each point and position.
        target_prob, target_rank: [P, T] the target's probability and rank (1 = top); nan / 0 where none.
    """

    tokens: list[str]
    token_ids: list[int]
    points: list[str]
    targets: list[int | None]
    top_ids: Tensor
    top_probs: Tensor
    target_prob: Tensor
    target_rank: Tensor


def point_names(n_layers: int) -> list[str]:
    """["embed", "block 0", ..., "block {L-1}"]: the stream after the embedding and after each block."""
    return ["embed", *(f"block {layer}" for layer in range(n_layers))]


@torch.no_grad()
def lens_logits(model: GPT | EncoderDecoder, idx: Tensor, source: Tensor | list[list[int]] | None = None
                ) -> tuple[Tensor, Tensor]:
    """Every point read out: ([P, B, T, V] lens logits, the model's own logits [B, T, V]), float32 on the CPU.
    An encoder-decoder also takes `source` (see `minitx.inspect.residual.reading`)."""
    stream, logits = residual_stream(model, idx, source)  # [P, B, T, C]
    return read_out(decoder_stack(model), stream).float().cpu(), logits.float().cpu()


def logit_lens(
    model: GPT | EncoderDecoder, ids: list[int], tokens: list[str], *, target: int | None = None, k: int = TOP_K,
    source: list[int] | None = None, following: int | None = None,
) -> LensReport:
    """The lens over one text `ids` (displayed as `tokens`): top-k and the target's probability and rank.

    The target at position t is `target` when given, else ids[t+1]; at the last position `following` (the
    token known to come after the text: a whole translation's end token), else none. An encoder-decoder
    reads `source` (its ids ending in the end token) and `ids` is its decoder's input.
    """
    lens, _ = lens_logits(model, torch.tensor([ids], dtype=torch.long), None if source is None else [source])
    probs = lens[:, 0].softmax(dim=-1)  # [P, T, V]
    top_probs, top_ids = probs.topk(min(k, probs.shape[-1]), dim=-1)
    targets: list[int | None] = [target] * len(ids) if target is not None else [*ids[1:], following]
    n_points, n_tokens = probs.shape[:2]
    target_prob = torch.full((n_points, n_tokens), float("nan"))
    target_rank = torch.zeros(n_points, n_tokens, dtype=torch.long)
    for t, wanted in enumerate(targets):
        if wanted is None:
            continue
        p = probs[:, t, wanted]  # [P]
        target_prob[:, t] = p
        target_rank[:, t] = (probs[:, t, :] > p[:, None]).sum(dim=-1) + 1
    return LensReport(tokens, list(ids), point_names(n_points - 1), targets, top_ids, top_probs, target_prob,
                      target_rank)


def first_confident_point(report: LensReport, position: int, threshold: float = 0.5) -> int | None:
    """The first point at which the target of `position` is the top token with p ≥ threshold (None: never)."""
    for point in range(len(report.points)):
        if report.target_rank[point, position] == 1 and report.target_prob[point, position] >= threshold:
            return point
    return None
