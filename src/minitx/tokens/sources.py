"""Where a corpus comes from, read as a stream of text blocks: files, directories, globs, stdin, JSON Lines, Parquet.

`expand_sources(["books/", "extra/*.txt.gz", "-"])` turns the CORPUS arguments into an ordered list of
`Source`s: a directory gives every non-hidden file below it (sorted), a glob the files it matches
(sorted), `-` stdin. Each source is read in blocks of a few MB, so memory stays bounded whatever the
corpus size, and its bytes are hashed on the way (sha256), so nothing is read twice.

The text of a corpus is defined once, here, and every later step (tokenizer training, token files,
the run's sha256) sees exactly it:

* a text file (`.gz`: decompressed first) is its UTF-8 text, a leading byte-order mark dropped;
* a JSON Lines file (`.jsonl`, `.jsonl.gz`) or a Parquet file (`.parquet`) holds one document per
  record, in the `--text-field` column: each becomes `"<|doc|>" + text + "\\n"` (no `<|doc|>` added if the
  text starts with one, no newline if it ends with one), the way the built-in stories are written;
* sources are joined with a newline where the previous one does not end with one -- the rule of
  `text.files.read_corpus`, so `a.txt b.txt` and `cat a.txt b.txt` (with that newline) are the same text.

A text source is decoded by `text.files.decoded_blocks`, the decoder `read_corpus` uses too, so its
refusals hold here as well: a binary file, text that is not UTF-8 (with the byte offset), an empty
file are each a one-line `UserError` (and a missing path, in `expand_sources`).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import stat as stat_module
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from minitx.config import value_words
from minitx.errors import UserError
from minitx.text.files import decoded_blocks
from minitx.text.special import DOC_TOKEN

#: Bytes read from a file at a time: large enough that per-block Python work is negligible.
BLOCK_BYTES = 4 << 20
STDIN = "-"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    """One input of a corpus: `path` ('-' for stdin), its `kind` (text | jsonl | parquet), gzip or not."""

    path: str
    kind: str
    gzip: bool = False

    @property
    def cacheable(self) -> bool:
        """Stdin, a pipe or a FIFO cannot be checked for changes later, so their tokens are never cached."""
        return not is_stream(self.path)


def is_stream(path: str) -> bool:
    """Stdin, or a path that is no regular file: a FIFO, `<(cmd)`'s /dev/fd/N, a character device.

    Such a source can be read only once, and its size and sha256 are known only after reading it.
    """
    if path == STDIN:
        return True
    try:
        return not stat_module.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False


_spooled: dict[str, str] = {}


def spooled(path: str) -> str:
    """A stream source's bytes, copied once into a temporary file on first use; that file's path ever after.

    Preparing reads a corpus more than once (a tokenizer is trained on it, then it is encoded); a
    pipe gives its bytes only once, and a second open of a FIFO waits for a writer that never comes.
    So a stream is read once, as it arrives, into a temporary file (removed when the process exits),
    and every pass reads that.
    """
    if path not in _spooled:
        import atexit
        import shutil
        import tempfile

        fd, copy = tempfile.mkstemp(prefix="minitx-stream.", suffix=".txt")
        atexit.register(lambda: os.path.exists(copy) and os.unlink(copy))
        with os.fdopen(fd, "wb") as out:
            source = sys.stdin.buffer if path == STDIN else open(path, "rb")
            try:
                shutil.copyfileobj(source, out, BLOCK_BYTES)
            finally:
                if path != STDIN:
                    source.close()
        _spooled[path] = copy
    return _spooled[path]


def source_of(path: str) -> Source:
    """Classify one file by its name: "a.jsonl.gz" -> Source("a.jsonl.gz", "jsonl", gzip=True)."""
    if path == STDIN:
        return Source(STDIN, "text")
    name = path.lower()
    compressed = name.endswith(".gz")
    name = name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        kind = "jsonl"
    elif name.endswith(".parquet"):
        kind = "parquet"
    else:
        kind = "text"
    if kind == "parquet" and compressed:
        raise UserError(f"{path}: Parquet files compress their own columns; pass the .parquet file uncompressed")
    return Source(path, kind, compressed)


def expand_sources(args: list[str | Path]) -> list[Source]:
    """CORPUS arguments -> sources in order: files as given, directories recursively, globs, '-' (stdin)."""
    if not args:
        raise UserError("no corpus given; pass text files, directories, globs or '-' for stdin")
    sources: list[Source] = []
    for arg in map(str, args):
        if arg == STDIN:
            paths = [STDIN]
        elif os.path.isdir(arg):
            if os.path.isfile(os.path.join(arg, "meta.json")) and os.path.isfile(os.path.join(arg, "train.bin")):
                raise UserError(f"{arg} holds prepared tokens, not text; train on it alone (minitx train {arg}) or "
                                "pass the text files it was prepared from")
            paths = _files_below(arg)
            if not paths:
                raise UserError(f"directory {arg} holds no files; pass a directory with text files in it")
        elif os.path.exists(arg):
            paths = [arg]
        elif _GLOB_CHARS & set(arg):
            paths = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not paths:
                raise UserError(f"the pattern {arg} matches no files (check the pattern; quote it so the shell "
                                "does not expand it)")
        else:
            raise UserError(f"corpus file not found: {arg} (check the path)")
        sources.extend(source_of(p) for p in paths)
    if sum(s.path == STDIN for s in sources) > 1:
        raise UserError("'-' (stdin) can be given only once")
    return sources


def _files_below(directory: str) -> list[str]:
    """Every regular file under `directory`, hidden files and folders (".git") left out, sorted by path."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in files if not f.startswith("."))
    return sorted(found)


@dataclass
class SourceRecord:
    """What `meta.json` keeps of one source, to tell later whether it changed."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dict(path=self.path, kind=self.kind, size=self.size, mtime_ns=self.mtime_ns, sha256=self.sha256)


class _HashingReader:
    """A binary file wrapper that hashes and counts the bytes read through it (the bytes on disk)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()


class CorpusStream:
    """The corpus text of `sources`, block by block, with what was read so far.

        stream = CorpusStream([Source("a.txt", "text")])
        text = "".join(stream.blocks())          # == read_corpus([Path("a.txt")])

    While `blocks()` runs, `bytes_read` counts bytes on disk (for progress: MB/s, ETA against
    `total_bytes`); afterwards `records` describes every source (size, mtime, sha256 of its bytes),
    `text_bytes` and `text_sha256` the UTF-8 of the whole text.
    """

    def __init__(self, sources: list[Source], text_field: str = "text", block_bytes: int | None = None) -> None:
        self.sources = sources
        self.text_field = text_field
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.total_bytes = sum(os.path.getsize(s.path) for s in sources if not is_stream(s.path)) or None
        self.bytes_read = 0
        self.text_bytes = 0
        self.sampled_bytes = 0  # the bytes a consumer took, when it stops early (vocab.sample_text)
        self.records: list[SourceRecord] = []
        self._text_sha256 = hashlib.sha256()
        self._ends_with_newline = True  # nothing before the first source needs a separator

    @property
    def text_sha256(self) -> str:
        return self._text_sha256.hexdigest()

    def blocks(self) -> Iterator[str]:
        """The corpus text in blocks of about `block_bytes`; "".join(blocks) is the whole text."""
        for source in self.sources:
            done_before = self.bytes_read
            stream = is_stream(source.path)
            stat = os.stat(source.path) if not stream else None
            raw = open(spooled(source.path) if stream else source.path, "rb")
            reader = _HashingReader(raw)
            try:
                texts = self._parquet_texts(source) if source.kind == "parquet" else self._stream_texts(source, reader)
                first = True
                for text in texts:
                    if not text:
                        continue
                    if first and not self._ends_with_newline:
                        text = "\n" + text  # the last line of one source must not run into the next
                    first = False
                    self._ends_with_newline = text.endswith("\n")
                    data = text.encode("utf-8")
                    self._text_sha256.update(data)
                    self.text_bytes += len(data)
                    if source.kind != "parquet":
                        self.bytes_read = done_before + reader.bytes_read
                    yield text
            finally:
                reader.close()
            if source.kind == "parquet":
                sha = _file_sha256(source.path)
            else:
                sha = reader.sha256.hexdigest()
            size = stat.st_size if stat else reader.bytes_read
            self.bytes_read = done_before + size
            mtime_ns = stat.st_mtime_ns if stat else 0
            self.records.append(SourceRecord(resolve(source.path), source.kind, size, mtime_ns, sha))

    # -- one source's text ----------------------------------------------------------------------
    def _stream_texts(self, source: Source, reader: _HashingReader) -> Iterator[str]:
        name = "stdin" if source.path == STDIN else source.path
        binary: Any = gzip.GzipFile(fileobj=reader, mode="rb") if source.gzip else reader
        if source.kind == "jsonl":
            yield from self._jsonl_texts(name, binary)
        else:
            yield from decoded_blocks(binary, name, self.block_bytes)

    def _jsonl_texts(self, name: str, binary: Any) -> Iterator[str]:
        """Each line a JSON object; its `text_field` becomes one document."""
        batch: list[str] = []
        size = 0
        for number, line in enumerate(_lines(name, binary, self.block_bytes), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{name} line {number} is not JSON ({err.msg}); each line must be one JSON object") \
                    from None
            if not isinstance(record, dict) or self.text_field not in record:
                raise UserError(f'{name} line {number} has no text field "{self.text_field}"; name the field that '
                                "holds the text with --text-field")
            text = record[self.text_field]
            if not isinstance(text, str):
                raise UserError(f'{name} line {number}: field "{self.text_field}" holds {value_words(text)}, '
                                "not text; name the field that holds the text with --text-field")
            _require_valid_unicode(text, f"{name} line {number}")
            batch.append(as_document(text))
            size += len(text)
            if size >= self.block_bytes:
                yield "".join(batch)
                batch, size = [], 0
        yield "".join(batch)

    def _parquet_texts(self, source: Source) -> Iterator[str]:
        """Each row's `text_field` becomes one document; read a row group at a time."""
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(f"reading {source.path} needs pyarrow; install it with pip install 'minitx[parquet]'") \
                from None
        try:
            parquet = pq.ParquetFile(source.path)
        except Exception as err:  # pyarrow raises ArrowInvalid and friends
            raise UserError(f"{source.path} is not a readable Parquet file ({err})") from None
        if self.text_field not in parquet.schema_arrow.names:
            columns = ", ".join(parquet.schema_arrow.names)
            raise UserError(f'{source.path} has no column "{self.text_field}" (it has: {columns}); name the text '
                            "column with --text-field")
        for batch in parquet.iter_batches(batch_size=8192, columns=[self.text_field]):
            texts = batch.column(0).to_pylist()
            if any(not isinstance(t, str) for t in texts if t is not None):
                raise UserError(f'{source.path}: column "{self.text_field}" does not hold strings; name the text '
                                "column with --text-field")
            yield "".join(as_document(t) for t in texts if t)


def as_document(text: str) -> str:
    """One record as a document: "Once upon a time." -> "<|doc|>Once upon a time.\\n"."""
    start = "" if text.startswith(DOC_TOKEN) else DOC_TOKEN
    return start + text + ("" if text.endswith("\n") else "\n")


def _lines(name: str, binary: Any, block_bytes: int) -> Iterator[str]:
    """The UTF-8 lines of a binary stream (JSON Lines), one at a time."""
    pending = b""
    number = 0
    while True:
        data = binary.read(block_bytes)
        pending += data
        lines = pending.split(b"\n")
        pending = lines.pop() if data else b""
        for raw in lines:
            number += 1
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{name} line {number} is not UTF-8; convert the file") from None
        if not data:
            return


def _require_valid_unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserError(f"{where} holds a lone surrogate at index {err.start}, which is not text; fix the record") \
            from None


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(BLOCK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_changed(record: dict[str, Any]) -> bool:
    """Has the file a `SourceRecord` describes changed? Size, then mtime; a new mtime alone: the sha256 decides."""
    try:
        stat = os.stat(record["path"])
    except OSError:
        return True
    if stat.st_size != record["size"]:
        return True
    if stat.st_mtime_ns == record["mtime_ns"]:
        return False
    return _file_sha256(record["path"]) != record["sha256"]


def resolve(path: str | Path) -> str:
    """An absolute path for a cache key and meta.json ('-' stays '-')."""
    return STDIN if str(path) == STDIN else str(Path(path).resolve())
