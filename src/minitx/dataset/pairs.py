"""Sentence pairs as training batches for an encoder-decoder: padded, length-bucketed.

A pair (source ids s_1..s_n, target ids y_1..y_m) becomes three rows, with the boundary token b
(`<|doc|>`) starting and ending the target:

    source      s_1  s_2 ... s_n  b  .           the encoder's input, right-padded (source_padding True on .)
    target_in   b    y_1 ... y_m  .  .           the decoder's input
    targets     y_1  y_2 ... b   -1 -1           what each decoder position predicts; -1: no loss

so the loss counts the target's tokens and its end, never padding or the source. Padding wastes
compute on every padded slot, so a batch is drawn from pairs of similar length: the pairs are sorted
by length once, and each batch is a run of neighbours in that order starting at a random place
(`PairSampler`). `PairSplit` is the trainer's data interface (`.sampler(...)`, `.bytes_per_token`),
the same one a stream of tokens offers (batches.py). One tokenizer encodes both languages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from minitx.errors import UserError
from minitx.model.inputs import end_token, pad_rows
from minitx.text.pairs import read_pairs

if TYPE_CHECKING:
    from minitx.text.tokenizer import Tokenizer

#: The built-in pairs `minitx train --arch encoder-decoder` learns: this many, from this seed; the last
#: `val_fraction` of them are held out (`builtin_pairs`, `split_pairs`).
BUILTIN_PAIRS = 20_000
BUILTIN_PAIRS_SEED = 0
BUILTIN_NAME = "built-in translation pairs"


@dataclass
class EncodedPairs:
    """Token ids of many pairs, ready for batching: sources[i] and targets[i] are 1-D int64 arrays."""

    sources: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.sources)


@dataclass
class PairSplit:
    """Training and held-out pairs as the trainer sees them (the interface of batches.TokenSplit).

    `bytes_per_token`: UTF-8 bytes of the held-out targets per target token (their end tokens
    counted), so that a loss in nats per target token converts to bits per byte of target text.
    """

    train: EncodedPairs
    val: EncodedPairs
    boundary_id: int
    bytes_per_token: float

    def sampler(
        self, part: str, block_size: int, batch_size: int, seed: int, device: str = "cpu",
        rank: int = 0, world_size: int = 1,
    ) -> PairSampler:
        """Random length-bucketed batches of `part` ("train" or "val"), each (source, target_in, padding, targets)."""
        pairs = self.train if part == "train" else self.val
        return PairSampler(pairs, batch_size, seed, self.boundary_id, device, rank=rank, world_size=world_size)


class PairSampler:
    """Batches of neighbouring pairs in length order, from a random start each time.

    All `world_size` ranks draw the same global batch of batch_size × world_size pairs (one generator,
    one seed) and keep rows rank·B .. (rank+1)·B - 1, as `BatchSampler` does. The generator's state
    is all the sampler's state: a checkpoint saves it, and a resumed run draws the same batches.
    """

    def __init__(self, pairs: EncodedPairs, batch_size: int, seed: int, boundary_id: int, device: str = "cpu",
                 rank: int = 0, world_size: int = 1) -> None:
        if len(pairs) == 0:
            raise UserError("no sentence pairs to train on (every pair was longer than the block, or none were given)")
        self.pairs = pairs
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.boundary_id = boundary_id
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        lengths = np.array([len(s) + len(t) for s, t in zip(pairs.sources, pairs.targets, strict=True)])
        self._order = np.argsort(lengths, kind="stable")  # the pairs from shortest to longest
        mean_target = float(np.mean([len(t) for t in pairs.targets])) + 1  # + the end token
        self._tokens_per_batch = round(batch_size * mean_target)

    @property
    def tokens_per_batch(self) -> int:
        """Target tokens in one batch of this rank, on average: B × (mean target length + 1)."""
        return self._tokens_per_batch

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch: source [B, S], target_in [B, T], source_padding [B, S] (True on padding), targets [B, T]."""
        global_batch = self.batch_size * self.world_size
        n = len(self.pairs)
        start = int(torch.randint(n, (1,), generator=self.generator))
        picked = self._order[(start + np.arange(global_batch)) % n]  # neighbours by length (wrapping round)
        picked = picked[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # this rank's slice
        batch = collate([self.pairs.sources[i] for i in picked], [self.pairs.targets[i] for i in picked],
                        self.boundary_id)
        if self.device != "cpu":
            batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        return batch

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def collate(sources: list[np.ndarray], targets: list[np.ndarray],
            boundary_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a list of pairs into (source, target_in, source_padding, targets); see the module docstring.

    Example, boundary b = 0: sources [[5, 6], [7]], targets [[8], [9, 9]] ->
        source [[5, 6, 0], [7, 0, 0]], padding [[F, F, F], [F, F, T]],
        target_in [[0, 8, 0], [0, 9, 9]], targets [[8, 0, -1], [9, 9, 0]]
    """
    source, padding = pad_rows([[*x.tolist(), boundary_id] for x in sources])
    t = max(len(y) for y in targets) + 1
    target_in = np.zeros((len(targets), t), dtype=np.int64)  # padding there is never seen: the mask is causal
    wanted = np.full((len(targets), t), -1, dtype=np.int64)
    for row, y in enumerate(targets):
        target_in[row, 0] = boundary_id
        target_in[row, 1 : len(y) + 1] = y
        wanted[row, : len(y)] = y
        wanted[row, len(y)] = boundary_id  # the end of the translation
    return source, torch.from_numpy(target_in), padding, torch.from_numpy(wanted)


# ---------------------------------------------------------------------------------------------
# Where the pairs come from: the built-in corpus, or a JSON Lines file of the user's.


def builtin_pairs() -> list[dict]:
    """The built-in pairs (`BUILTIN_PAIRS` from `BUILTIN_PAIRS_SEED`), each {"source", "target", "alignment"}."""
    from minitx.corpus.translation import translation_pairs

    return translation_pairs(BUILTIN_PAIRS, BUILTIN_PAIRS_SEED)


def split_pairs(pairs: list[dict], val_fraction: float) -> tuple[list[dict], list[dict]]:
    """Training pairs and held-out pairs: the last `val_fraction` of them (at least one) are held out."""
    n_val = max(1, round(len(pairs) * val_fraction))
    if n_val >= len(pairs):
        raise UserError(f"{len(pairs)} pairs are too few to hold out --val-fraction {val_fraction:g}; give more")
    return pairs[:-n_val], pairs[-n_val:]


@dataclass
class PairData:
    """A tokenizer and the sentence pairs of one corpus, and what a run records about them (as data.TrainingData)."""

    tokenizer: Tokenizer
    source: str
    files: list[str]
    text_bytes: int
    text_sha256: str
    pairs: list[dict]
    val_fraction: float
    prepared: None = None  # pairs are encoded in memory, never prepared into token files
    notes: list[str] = field(default_factory=list)

    def split(self, block_size: int, val_fraction: float, doc_aligned: bool = False) -> PairSplit:
        """Encode both sides; pairs longer than the block (either side with its end token) are left out."""
        train, val = split_pairs(self.pairs, val_fraction)
        boundary = end_token(self.tokenizer, "; train without --tokenizer")
        encoded_train, encoded_val = (self._encode(part, block_size) for part in (train, val))
        target_bytes = sum(len(p["target"].encode("utf-8")) for p in val)
        target_tokens = sum(len(t) + 1 for t in encoded_val.targets)
        return PairSplit(encoded_train, encoded_val, boundary, target_bytes / max(1, target_tokens))

    def _encode(self, pairs: list[dict], block_size: int) -> EncodedPairs:
        sources = self.tokenizer.encode_pieces([p["source"] for p in pairs])
        targets = self.tokenizer.encode_pieces([p["target"] for p in pairs])
        kept = [(s, t) for s, t in zip(sources, targets, strict=True) if len(s) < block_size and len(t) < block_size]
        if len(kept) < len(pairs):
            self.notes.append(f"left out {len(pairs) - len(kept)} of {len(pairs)} pairs longer than the block "
                              f"({block_size} tokens)")
        return EncodedPairs([np.asarray(s, dtype=np.int64) for s, _ in kept],
                            [np.asarray(t, dtype=np.int64) for _, t in kept])

    def record(self) -> dict[str, Any]:
        """The corpus fields of a run's TrainConfig."""
        return {"corpus": self.source, "corpus_files": self.files, "corpus_bytes": self.text_bytes,
                "corpus_sha256": self.text_sha256, "prepared_data": None}


def load_pair_data(
    files: list[str | Path], *, make_tokenizer: Callable[[str], Tokenizer], val_fraction: float,
    source_field: str = "source", target_field: str = "target",
) -> PairData:
    """The tokenizer and pairs for `minitx train [FILE.jsonl] --arch encoder-decoder`.

    No file: the built-in pairs. One tokenizer for both languages: `make_tokenizer` gets the text of
    all sources and targets together (data.py passes a BPE trainer, `char`, a tokenizer.json or a
    resumed run's own).
    """
    if len(files) > 1:
        raise UserError("an encoder-decoder trains on one JSON Lines file of pairs; give one FILE.jsonl")
    if files:
        pairs, name, paths = read_pairs(files[0], source_field, target_field), str(files[0]), [
            str(Path(files[0]).resolve())]
    else:
        pairs, name, paths = builtin_pairs(), BUILTIN_NAME, []
    text = "\n".join(p["source"] + "\t" + p["target"] for p in pairs) + "\n"
    data = text.encode("utf-8")
    return PairData(make_tokenizer(text), name, paths, len(data), hashlib.sha256(data).hexdigest(), pairs,
                    val_fraction)
