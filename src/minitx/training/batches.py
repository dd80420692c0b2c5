"""From one long stream of token ids to training batches.

A language model learns next-token prediction: for a window of ids `x = ids[i : i+T]` the target is
the same window shifted by one, `y = ids[i+1 : i+T+1]`, so every position is a training example:

    ids     The  dog  runs  .  <|doc|>  A   cat ...
    x       The  dog  runs  .
    y       dog  runs  .   <|doc|>

The stream is split once: the last `val_fraction` of the tokens is held out for validation, so the
validation loss measures text the model never trained on. Batches are windows at random offsets,
drawn from a `torch.Generator` of their own -- its state *is* the data position, which is what a
checkpoint saves to resume exactly.

Windows start at any offset, mid-story included: that is what every run gets by default, the
built-in stories too. `--doc-aligned` instead starts windows only at a `<|doc|>` marker, so the
model always sees a story from its beginning (never a "she" whose antecedent lies before the
window). It was measured not to pay -- no more grammatical samples, a worse loss on text that is
not aligned (docs/decisions.md) -- and stays as an option; a corpus without the marker falls back to
any offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from minitx.errors import UserError


@dataclass
class TokenSplit:
    """Train and validation id streams, and how many UTF-8 bytes one token stands for on average."""

    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor  # (N_val,) int64
    bytes_per_token: float
    train_starts: torch.Tensor | None = None  # offsets where a window may start (document starts)
    val_starts: torch.Tensor | None = None


def split_train_val(
    ids: list[int], n_bytes: int, block_size: int, val_fraction: float, doc_id: int | None = None
) -> TokenSplit:
    """Hold out the last `val_fraction` of the stream; both halves must hold at least one block + 1.

    With `doc_id`, windows of each half start only where that token stands (if it stands anywhere a
    whole window still fits).
    """
    data = torch.tensor(ids, dtype=torch.long)
    n_val = int(len(data) * val_fraction)
    n_train = len(data) - n_val
    need = block_size + 1
    if n_train < need or n_val < need:
        raise UserError(
            f"the corpus is too short: {len(data)} tokens give {n_train} for training and {n_val} for "
            f"validation, but each needs at least block size + 1 = {need}; use more text or a smaller "
            "--block-size"
        )
    train, val = data[:n_train], data[n_train:]
    return TokenSplit(train, val, n_bytes / max(1, len(data)), _starts(train, doc_id, block_size),
                      _starts(val, doc_id, block_size))


def _starts(data: torch.Tensor, doc_id: int | None, block_size: int) -> torch.Tensor | None:
    """Offsets of `doc_id` in `data` from which a window of block_size + 1 tokens fits, or None."""
    if doc_id is None:
        return None
    starts = (data[: len(data) - block_size] == doc_id).nonzero().flatten()
    return starts if len(starts) else None


class BatchSampler:
    """Random (x, y) windows of `block_size` tokens from one id stream."""

    def __init__(
        self,
        data: torch.Tensor,
        block_size: int,
        batch_size: int,
        seed: int,
        device: str = "cpu",
        starts: torch.Tensor | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        """`world_size` processes training together each draw the same global batch of
        batch_size × world_size windows (one generator, one seed) and keep rows rank·B .. (rank+1)·B - 1,
        so the windows a run trains on do not depend on how the global batch is split."""
        self.data = data
        self.starts = starts  # allowed window offsets (document starts), or None for any offset
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = device
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self._offsets = torch.arange(block_size + 1)  # (T+1,)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: x (B, T) and y (B, T), y shifted one token to the right of x."""
        global_batch = self.batch_size * self.world_size
        if self.starts is None:
            starts = torch.randint(len(self.data) - self.block_size, (global_batch,), generator=self.generator)
        else:
            pick = torch.randint(len(self.starts), (global_batch,), generator=self.generator)
            starts = self.starts[pick]
        if self.world_size > 1:
            starts = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # this rank's slice
        windows = self.data[starts[:, None] + self._offsets]  # (B, T+1): one gather, no Python loop
        if self.device != "cpu":
            windows = windows.to(self.device, non_blocking=True)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
