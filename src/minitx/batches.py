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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import UserError


@dataclass
class TokenSplit:
    """Train and validation id streams, and how many UTF-8 bytes one token stands for on average."""

    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor  # (N_val,) int64
    bytes_per_token: float


def split_train_val(ids: list[int], n_bytes: int, block_size: int, val_fraction: float) -> TokenSplit:
    """Hold out the last `val_fraction` of the stream; both halves must hold at least one block + 1."""
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
    return TokenSplit(data[:n_train], data[n_train:], n_bytes / max(1, len(data)))


class BatchSampler:
    """Random (x, y) windows of `block_size` tokens from one id stream."""

    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, seed: int, device: str = "cpu"):
        self.data = data
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._offsets = torch.arange(block_size + 1)  # (T+1,)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: x (B, T) and y (B, T), y shifted one token to the right of x."""
        starts = torch.randint(len(self.data) - self.block_size, (self.batch_size,), generator=self.generator)
        windows = self.data[starts[:, None] + self._offsets]  # (B, T+1): one gather, no Python loop
        if self.device != "cpu":
            windows = windows.to(self.device, non_blocking=True)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
