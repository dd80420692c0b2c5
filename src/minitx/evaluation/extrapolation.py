"""Length extrapolation: read windows longer than the training block and watch the loss by position.

A model trained on windows of B tokens has never predicted token B + 1 from B tokens of context.
Whether it can depends on how it knows positions (Press et al., 2022):

    learned      has a trained vector for positions 0..B-1 only: beyond B there is nothing to add.
                 Refused, with one line saying so.
    sinusoidal   the formula gives vectors for any position, but the model has never seen those.
    rope         rotations by any angle exist; unseen *absolute* angles, familiar relative ones.
    alibi        the penalty m·(i - j) exists for any distance; far tokens are simply faded out.
    none         nothing position-specific at all; only the causal mask, at any length.

`stretched_model` rebuilds the model with its tables computed for the longer length (the
sinusoidal table and the rope cos/sin are formulas, ALiBi's bias is built per call), with the very
same weights: positions 0..B-1 get exactly the numbers they had in training. `extrapolation`
reads non-overlapping windows of L + 1 tokens and reports the mean loss of each bucket of B
positions -- [0, B) is familiar ground, [B, 2B) is the first stretch never trained on -- with a
95% bootstrap interval over windows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from minitx.errors import UserError
from minitx.evaluation.intervals import bootstrap

if TYPE_CHECKING:
    from minitx.model import GPT


def stretched_model(model: GPT, length: int) -> GPT:
    """The same model, able to read `length` tokens at once; UserError for learned positions."""
    from minitx.model import build_model

    config = model.config
    if config.pos == "learned":
        raise UserError(
            f"--context {length}: this model has learned positions, one trained vector for each of positions "
            f"0..{config.block_size - 1} and none beyond, so it cannot read past its block of {config.block_size}; "
            "length extrapolation needs a run trained with --pos rope, alibi, none or sinusoidal"
        )
    if length <= config.block_size:
        return model
    device = next(model.parameters()).device
    longer = build_model(dataclasses.replace(config, block_size=length)).to(device)
    longer.load_state_dict(model.state_dict(), strict=True)  # the tables are buffers, rebuilt for `length`
    return longer.eval()


@dataclass
class BucketLoss:
    """Mean loss over positions [start, end) of the windows, with its 95% interval over windows."""

    start: int
    end: int
    loss: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Extrapolation:
    block_size: int
    context: int
    windows: int
    buckets: list[BucketLoss]

    def beyond_block(self) -> BucketLoss | None:
        """The bucket just past the training block ([B, 2B)), the usual headline number."""
        return next((b for b in self.buckets if b.start == self.block_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {"block_size": self.block_size, "context": self.context, "windows": self.windows,
                "buckets": [b.to_dict() for b in self.buckets]}


@torch.no_grad()
def extrapolation(model: GPT, ids: torch.Tensor, context: int, max_windows: int = 200,
                  batch_size: int = 8) -> Extrapolation:
    """Loss by position bucket when reading windows of `context` tokens (see the module docstring)."""
    block = model.config.block_size
    if context < 1:
        raise UserError(f"--context must be a positive number of tokens, not {context}")
    n_windows = min(max_windows, (len(ids) - 1) // context)
    if n_windows < 1:
        raise UserError(f"--context {context}: the text has only {len(ids)} tokens; it needs at least "
                        f"{context + 1} (use a shorter --context or more text)")
    reader = stretched_model(model, context)
    device = next(reader.parameters()).device
    windows = ids[: n_windows * context + 1]
    inputs = windows[:-1].view(n_windows, context)  # [N, L]
    targets = windows[1:].view(n_windows, context)
    losses = []
    for start in range(0, n_windows, batch_size):
        x = inputs[start : start + batch_size].to(device)
        y = targets[start : start + batch_size].to(device)
        logits, _ = reader(x)
        losses.append(F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").cpu())  # [b, L]
    per_position = torch.cat(losses).numpy()  # [N, L]: nats at each position of each window
    buckets = []
    for begin in range(0, context, block):
        end = min(context, begin + block)
        per_window = per_position[:, begin:end].mean(axis=1)
        low, high = bootstrap([per_window], lambda v: float(v.mean()))
        buckets.append(BucketLoss(begin, end, float(per_window.mean()), low, high))
    return Extrapolation(block, context, n_windows, buckets)
