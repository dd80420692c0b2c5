"""From one long stream of token ids to training batches (the details: docs/data.md).

For a window x = ids[i : i+T] the target is the same window shifted by one, y = ids[i+1 : i+T+1],
so every position is a training example. The last `val_fraction` of the stream is held out for
validation. Batches are windows at random offsets drawn from a `torch.Generator` of their own, whose
state is the data position a checkpoint saves to resume exactly. `--doc-aligned` starts windows only
at `<|doc|>` (measured not to pay: docs/decisions.md). The streams are numpy arrays -- read-only
memory maps of prepared token files, or arrays in memory -- and a batch copies out only its
B × (T+1) ids, so memory does not grow with the corpus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from minitx.errors import UserError

if TYPE_CHECKING:
    from minitx.tokens.store import PreparedData


@dataclass
class TokenSplit:
    """Train and validation id streams, and how many UTF-8 bytes one token stands for on average."""

    train: np.ndarray  # (N_train,) integer ids: a memory map of train.bin, or an array in memory
    val: np.ndarray  # (N_val,)
    bytes_per_token: float
    train_starts: np.ndarray | None = None  # offsets where a window may start (document starts)
    val_starts: np.ndarray | None = None

    def sampler(
        self, part: str, block_size: int, batch_size: int, seed: int, device: str = "cpu",
        rank: int = 0, world_size: int = 1,
    ) -> BatchSampler:
        """Random batches of `part` ("train" or "val"): what the trainer asks every kind of training data for.

        Each batch is a tuple the model takes as `model(*batch)`, here (x, y).
        """
        data, starts = (self.train, self.train_starts) if part == "train" else (self.val, self.val_starts)
        return BatchSampler(data, block_size, batch_size, seed, device, starts=starts, rank=rank,
                            world_size=world_size)


def split_train_val(
    ids: list[int] | np.ndarray, n_bytes: int, block_size: int, val_fraction: float, doc_id: int | None = None
) -> TokenSplit:
    """Hold out the last `val_fraction` of the stream; both halves must hold at least one block + 1.

    With `doc_id`, windows of each half start only where that token stands (if it stands anywhere a
    whole window still fits).
    """
    data = np.asarray(ids, dtype=np.int64)
    n_val = int(len(data) * val_fraction)
    n_train = len(data) - n_val
    _check_lengths(n_train, n_val, block_size)
    train, val = data[:n_train], data[n_train:]
    return TokenSplit(train, val, n_bytes / max(1, len(data)), _starts(train, doc_id, block_size),
                      _starts(val, doc_id, block_size))


def split_prepared(data: PreparedData, block_size: int, doc_aligned: bool = False) -> TokenSplit:
    """The split `minitx prepare` wrote (train.bin, val.bin), with document starts from docs.bin.

    The same split as `split_train_val` on the same ids: prepare holds out the last share of the tokens too.
    """
    n_train, n_val = len(data.train), len(data.val)
    _check_lengths(n_train, n_val, block_size)
    train_starts = val_starts = None
    if doc_aligned and data.doc_starts is not None:
        offsets = data.doc_starts  # sorted offsets in the whole stream (train, then val)
        end_train, begin_val, end_val = np.searchsorted(offsets, [n_train - block_size, n_train,
                                                                  n_train + n_val - block_size])
        train_starts = offsets[:end_train] if end_train else None  # a view of the memory map
        val_starts = (offsets[begin_val:end_val] - n_train) if end_val > begin_val else None
    return TokenSplit(data.train, data.val, data.bytes_per_token, train_starts, val_starts)


def _token_file(data: np.ndarray) -> int | None:
    """A file descriptor of the token file `data` maps whole (prepared data), else None.

    Windows of prepared data are read with `os.pread`, not through the memory map: measured on a 1 GB
    corpus, 30 batches of 16 windows through the map added 120 MB of resident memory (each page fault
    maps a whole large folio of the page cache, MADV_RANDOM or not), while the same windows read with
    pread add nothing -- the page cache serves them without mapping them into the process.
    """
    if not isinstance(data, np.memmap) or not data.filename or data.offset != 0:
        return None
    if data.nbytes != os.path.getsize(data.filename):  # a view of part of the file: use the map
        return None
    return os.open(data.filename, os.O_RDONLY)


def _check_lengths(n_train: int, n_val: int, block_size: int) -> None:
    need = block_size + 1
    if n_train < need or n_val < need:
        raise UserError(
            f"the corpus is too short: {n_train + n_val} tokens give {n_train} for training and {n_val} for "
            f"validation, but each needs at least block size + 1 = {need}; use more text or a smaller "
            "--block-size"
        )


def _starts(data: np.ndarray, doc_id: int | None, block_size: int) -> np.ndarray | None:
    """Offsets of `doc_id` in `data` from which a window of block_size + 1 tokens fits, or None."""
    if doc_id is None:
        return None
    starts = np.flatnonzero(data[: len(data) - block_size] == doc_id)
    return starts if len(starts) else None


class BatchSampler:
    """Random (x, y) windows of `block_size` tokens from one id stream (a numpy array or memory map)."""

    def __init__(
        self,
        data: np.ndarray | torch.Tensor,
        block_size: int,
        batch_size: int,
        seed: int,
        device: str = "cpu",
        starts: np.ndarray | torch.Tensor | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        """`world_size` processes training together each draw the same global batch of
        batch_size × world_size windows (one generator, one seed) and keep rows rank·B .. (rank+1)·B - 1,
        so the windows a run trains on do not depend on how the global batch is split."""
        self.data = data.numpy() if isinstance(data, torch.Tensor) else data
        # allowed window offsets (document starts), or None for any offset
        self.starts = starts.numpy() if isinstance(starts, torch.Tensor) else starts
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = device
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self._offsets = np.arange(block_size + 1)  # (T+1,)
        self._file = _token_file(self.data)

    @property
    def tokens_per_batch(self) -> int:
        """Target tokens in one batch of this rank: B × T."""
        return self.batch_size * self.block_size

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: x (B, T) and y (B, T), y shifted one token to the right of x."""
        global_batch = self.batch_size * self.world_size
        if self.starts is None:
            starts = torch.randint(len(self.data) - self.block_size, (global_batch,), generator=self.generator)
            starts = starts.numpy()
        else:
            pick = torch.randint(len(self.starts), (global_batch,), generator=self.generator)
            starts = self.starts[pick.numpy()]
        if self.world_size > 1:
            starts = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # this rank's slice
        if self._file is not None:  # (B, T+1): B reads of T+1 ids from the token file
            window_bytes = (self.block_size + 1) * self.data.itemsize
            rows = [os.pread(self._file, window_bytes, int(start) * self.data.itemsize) for start in starts]
            windows = np.frombuffer(b"".join(rows), dtype=self.data.dtype).reshape(len(starts), -1)
        else:  # (B, T+1): one gather, no Python loop
            windows = self.data[starts[:, None] + self._offsets]
        windows = torch.from_numpy(windows.astype(np.int64))
        if self.device != "cpu":
            windows = windows.to(self.device, non_blocking=True)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def __del__(self) -> None:
        self.close()

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
