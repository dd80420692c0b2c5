"""Preparing a corpus: its text, streamed in blocks, encoded on every core into flat token files.

    sources --(CorpusStream: 4 MB blocks)--> text blocks
            --(safe_batches: cut where BPE words end, carry the tail)--> pieces of ~32K characters
            --(Tokenizer.encode_pieces: Rust threads, all cores)--> ids, appended to tokens.bin
    at the end: the last val_fraction of the tokens moves to val.bin, the rest is train.bin

The ids equal `tokenizer.encode(whole_text)` exactly: the text is only ever cut where encoding the two
sides separately gives the ids of encoding them together (`Tokenizer.safe_pieces`), so no block
boundary changes a token. Memory holds one block and its ids, whatever the corpus size.

Nothing half-done is ever visible: everything is written into a temporary sibling directory
(`.DATA_DIR.partial-PID`) that replaces DATA_DIR only when complete. A Ctrl-C or a crash leaves
DATA_DIR as it was, and a leftover `.partial` directory is never read (it has no meta.json where a
reader looks).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from minitx import __version__
from minitx.errors import UserError
from minitx.fileio import atomic_write_json
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer
from minitx.tokens import store
from minitx.tokens.sources import CorpusStream, Source

#: progress(bytes_read, total_bytes or None, tokens_written)
Progress = Callable[[int, "int | None", int], None]
_COPY_BYTES = 16 << 20


def safe_batches(blocks: Iterable[str], cut: Callable[[str], list[str]]) -> Iterator[list[str]]:
    """Regroup text blocks into lists of pieces that can each be encoded on their own.

    `cut` is `Tokenizer.safe_pieces`: within a block every cut it makes is safe, but the block's end is
    not (the next block may continue the word), so the last piece is carried into the next block.
    "".join of all pieces of all batches == "".join(blocks).
    """
    carry = ""
    for block in blocks:
        pieces = cut(carry + block)
        carry = pieces.pop()
        if pieces:
            yield pieces
    if carry:
        yield [carry]


def prepare(
    sources: list[Source],
    tokenizer: Tokenizer,
    out: str | Path,
    *,
    val_fraction: float = 0.1,
    text_field: str = "text",
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Encode the corpus of `sources` into DATA_DIR `out` (see the module docstring); return its meta.json.

    `out` must not hold anything but a previous prepared corpus, which only `force` replaces.
    """
    import numpy as np

    out = Path(out)
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}")
    check_out_dir(out, force)
    started = time.perf_counter()
    dtype = np.dtype(store.token_dtype(tokenizer.vocab_size)).newbyteorder("<")
    doc_id = tokenizer.token_id(DOC_TOKEN) if DOC_TOKEN in tokenizer.special_tokens else None
    stream = CorpusStream(sources, text_field=text_field)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        n_tokens = n_docs = 0
        with open(partial / "tokens.bin", "wb") as tokens_file, open(partial / store.DOCS_BIN, "wb") as docs_file:
            for pieces in safe_batches(stream.blocks(), tokenizer.safe_pieces):
                encoded = tokenizer.encode_pieces(pieces)
                ids = np.concatenate([np.asarray(piece_ids, dtype=dtype) for piece_ids in encoded])
                tokens_file.write(ids.tobytes())
                if doc_id is not None:
                    starts = np.flatnonzero(ids == doc_id).astype("<i8") + n_tokens
                    docs_file.write(starts.tobytes())
                    n_docs += len(starts)
                n_tokens += len(ids)
                if progress is not None:
                    progress(stream.bytes_read, stream.total_bytes, n_tokens)
            _sync(tokens_file)
            _sync(docs_file)
        if n_tokens == 0:
            raise UserError("the corpus is empty; pass files with some text in them")
        n_val = int(n_tokens * val_fraction)  # the rule of dataset.batches: the last share is held out
        _split_tail(partial / "tokens.bin", partial / store.TRAIN_BIN, partial / store.VAL_BIN,
                    (n_tokens - n_val) * dtype.itemsize)
        tokenizer.save(partial / store.TOKENIZER)
        meta = _meta(stream, tokenizer, dtype.name, n_tokens, n_val, n_docs, doc_id, val_fraction, text_field,
                     time.perf_counter() - started)
        atomic_write_json(partial / store.META, meta)
        _swap_into_place(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return meta


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to overwrite anything that is not a prepared corpus, and a prepared one without --force."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a directory for the prepared data")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not store.is_prepared_dir(out):
        raise UserError(f"{out} already holds other files; choose a new or empty directory for the prepared data")
    if not force:
        raise UserError(f"{out} already holds prepared data; pass --force to replace it or choose another --out")


def _split_tail(tokens: Path, train: Path, val: Path, train_bytes: int) -> None:
    """Move the bytes of `tokens` after `train_bytes` into `val`, and rename what stays to `train`."""
    with open(tokens, "r+b") as source, open(val, "wb") as target:
        source.seek(train_bytes)
        while chunk := source.read(_COPY_BYTES):
            target.write(chunk)
        _sync(target)
        source.truncate(train_bytes)
        _sync(source)
    os.replace(tokens, train)


def _sync(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())


def _swap_into_place(partial: Path, out: Path) -> None:
    """Make the complete `partial` directory DATA_DIR; an old DATA_DIR is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(partial, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _meta(
    stream: CorpusStream, tokenizer: Tokenizer, dtype: str, n_tokens: int, n_val: int, n_docs: int,
    doc_id: int | None, val_fraction: float, text_field: str, seconds: float,
) -> dict[str, Any]:
    return {
        "kind": "minitx prepared tokens",
        "format": store.FORMAT,
        "minitx_version": __version__,
        "dtype": dtype,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer_kind": tokenizer.kind,
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "tokens": {"total": n_tokens, "train": n_tokens - n_val, "val": n_val},
        "val_fraction": val_fraction,
        "text_bytes": stream.text_bytes,
        "text_sha256": stream.text_sha256,
        "text_field": text_field,
        "documents": {"count": n_docs, "token": DOC_TOKEN, "token_id": doc_id, "file": store.DOCS_BIN,
                      "dtype": "int64"} if doc_id is not None else None,
        "sources": [record.to_dict() for record in stream.records],
        "seconds": round(seconds, 3),
    }


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """The identity of a tokenizer: the sha256 of its tokenizer.json text."""
    return hashlib.sha256(tokenizer.to_json_str().encode("utf-8")).hexdigest()
