"""Prepared token files on disk, and reading them back through a memory map.

A prepared data directory holds a corpus already turned into token ids:

    DATA_DIR/
      train.bin       the ids of the first (1 - val_fraction) of the tokens, flat little-endian
      val.bin         the ids of the rest (the held-out validation text)
      docs.bin        where documents start: the offsets of every <|doc|> token in the whole stream, int64
      tokenizer.json  the tokenizer that made the ids
      meta.json       written last: format, dtype, token counts, sources, hashes -- the directory is
                      complete if and only if it is there

Ids are `uint16` when the vocabulary has at most 65,536 ids (2 bytes a token), else `uint32`: the
layout nanoGPT's loaders read (`np.memmap("train.bin", dtype=np.uint16, mode="r")`).

Reading maps the files instead of loading them: `np.memmap` asks the operating system for pages as
windows touch them, so a 10 GB corpus costs no more resident memory than a 1 MB one, and several
runs on the same data share one copy in the page cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.errors import UserError
from minitx.fileio import read_json

if TYPE_CHECKING:
    import numpy as np

    from minitx.text.tokenizer import Tokenizer

FORMAT = 1
META = "meta.json"
TRAIN_BIN = "train.bin"
VAL_BIN = "val.bin"
DOCS_BIN = "docs.bin"
TOKENIZER = "tokenizer.json"
#: The largest vocabulary whose ids fit in 2 bytes.
UINT16_VOCAB = 1 << 16


def token_dtype(vocab_size: int) -> str:
    """'uint16' for up to 65,536 ids (0..65535), else 'uint32'."""
    return "uint16" if vocab_size <= UINT16_VOCAB else "uint32"


def is_prepared_dir(path: str | Path) -> bool:
    """Is `path` a directory with a prepared corpus (its meta.json says so)?"""
    return (Path(path) / META).is_file()


def read_meta(path: str | Path) -> dict[str, Any]:
    """meta.json of a prepared data directory; a UserError if there is none or it is damaged."""
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise UserError(f"{path} is not a prepared data directory (no {META}); create one with minitx prepare")
    meta = read_json(meta_path, "prepare the data again with minitx prepare --force")
    if meta.get("kind") != "minitx prepared tokens":
        raise UserError(f"{meta_path} is not minitx's; prepare the data with minitx prepare")
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} was prepared in format {meta.get('format')}, this minitx reads format {FORMAT}; "
                        "prepare the data again")
    return meta


@dataclass
class PreparedData:
    """A prepared corpus, opened: token ids as memory maps (no copy in RAM), and what meta.json says."""

    path: Path
    meta: dict[str, Any]
    train: np.ndarray  # (N_train,) uint16 | uint32, memory-mapped
    val: np.ndarray  # (N_val,)
    doc_starts: np.ndarray | None  # (D,) int64 offsets of <|doc|> in the whole stream (train then val), sorted

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes of text per token, over the whole corpus (for bits per byte)."""
        return self.meta["text_bytes"] / max(1, self.meta["tokens"]["total"])

    def tokenizer(self) -> Tokenizer:
        from minitx.text.tokenizer import Tokenizer

        return Tokenizer.load(self.path / TOKENIZER)

    def identity(self) -> dict[str, Any]:
        """What a run records about the data it trained on: where, which text, which tokenizer."""
        return {
            "dir": str(self.path.resolve()),
            "text_sha256": self.meta["text_sha256"],
            "tokenizer_sha256": self.meta["tokenizer_sha256"],
            "tokens": self.meta["tokens"]["total"],
            "val_fraction": self.meta["val_fraction"],
        }


def open_prepared(path: str | Path) -> PreparedData:
    """Open DATA_DIR for reading: checks meta.json and that each file holds the tokens it should."""
    import numpy as np

    path = Path(path)
    meta = read_meta(path)
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    counts = meta["tokens"]
    train = _map(path / TRAIN_BIN, dtype, counts["train"])
    val = _map(path / VAL_BIN, dtype, counts["val"])
    docs = meta.get("documents") or {}
    doc_starts = _map(path / DOCS_BIN, np.dtype("<i8"), docs["count"]) if docs.get("count") else None
    if not (path / TOKENIZER).is_file():
        raise UserError(f"{path} has no {TOKENIZER}; prepare the data again with minitx prepare --force")
    return PreparedData(path, meta, train, val, doc_starts)


def _map(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """A read-only memory map of `count` items, after checking the file holds exactly that many."""
    import numpy as np

    expected = count * dtype.itemsize
    size = path.stat().st_size if path.is_file() else None
    if size != expected:
        found = "missing" if size is None else f"{size:,} bytes"
        raise UserError(f"{path} is {found}, expected {expected:,} bytes; prepare the data again with "
                        "minitx prepare --force")
    if count == 0:
        return np.zeros(0, dtype=dtype)  # mmap cannot map an empty file
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
