"""Getting text in: the one reader of UTF-8 text (files and stdin), and fetching the tiny Shakespeare corpus.

Every command that reads text -- a corpus to train on, a tokenizer's training files, a prompt or a
story from stdin -- reads it here, so all of them agree: the bytes are decoded as UTF-8 exactly as
they are ("\r\n" stays "\r\n"; a leading byte-order mark is dropped), and text that is not UTF-8
is a `UserError` giving the offset of the first bad byte.

A language model learns whatever bytes it is given, so corpus files are also refused when they are
almost certainly mistakes, before hours go into training on them: a path that is a directory, an
empty file, a binary file (a checkpoint, an image). Each refusal names the file and what to do.

For example, with a.txt holding "one" (no final newline) and b.txt holding "two\\n",
`read_corpus([Path("a.txt"), Path("b.txt")])` returns "one\\ntwo\\n".

Tiny Shakespeare (about 40,000 lines of the plays, 1,115,394 bytes) is the classic small corpus for
character-level models. `download_tinyshakespeare` fetches it with the standard library only and
keeps it only if its sha256 matches, so every minitx user trains on the same bytes.

(Token ids, the train/validation split and batches come later in the pipeline: see batches.py.)
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from minitx.errors import UserError
from minitx.fileio import atomic_write_bytes, refuse_existing

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
#: A download larger than this is not the file we asked for; stop instead of filling the memory.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024

#: Bytes `read_text_file` decodes at a time.
READ_BLOCK_BYTES = 4 << 20
#: Control bytes that plain text does use: tab, newline, vertical tab, form feed, carriage return.
_TEXT_CONTROL_BYTES = frozenset(b"\t\n\x0b\x0c\r")
#: Share of other control bytes in a file's first 8 KiB above which it is called binary.
_MAX_CONTROL_SHARE = 0.1


def read_corpus(paths: list[Path]) -> str:
    """Read UTF-8 text files and join them, putting a newline between two files where missing.

    Raises UserError for: no paths, a missing file, a directory, an empty (or whitespace-only)
    file, a binary file, or bytes that are not UTF-8 (the message gives the byte offset).
    A UTF-8 byte-order mark at the start of a file is dropped.
    """
    if not paths:
        raise UserError("no corpus file given; pass at least one UTF-8 text file")
    texts: list[str] = []
    for path in paths:
        text = read_text_file(Path(path))
        if texts and not texts[-1].endswith("\n"):
            texts.append("\n")  # so the last line of one file does not run into the next file
        texts.append(text)
    return "".join(texts)


def read_text_file(path: Path) -> str:
    """One corpus file's text, or a UserError saying why it is not a usable corpus file."""
    if not path.exists():
        raise UserError(f"corpus file not found: {path} (check the path)")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a text file; pass the files inside it, e.g. {path}/*.txt")
    how_to_fix = f"; convert it first, e.g. iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}"
    with open(path, "rb") as binary:
        return "".join(decoded_blocks(binary, str(path), READ_BLOCK_BYTES, how_to_fix))


def decoded_blocks(binary: BinaryIO, where: str, block_bytes: int,
                   how_to_fix: str = "; convert it first, e.g. with iconv -f latin1 -t utf-8") -> Iterator[str]:
    """The UTF-8 text of a corpus byte stream, a block at a time: the one decoder of corpus text.

    `read_text_file` reads a file through it and `tokens.sources.CorpusStream` every text source, so
    both give the same text and refuse the same things: a binary stream (a NUL byte, or many control
    bytes at the start), bytes that are not UTF-8 (named with their offset), a damaged .gz, and an
    empty or whitespace-only stream. A leading byte-order mark is dropped; "\r\n" stays.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes read before this block
    any_text = False
    first = True
    while True:
        try:
            data = binary.read(block_bytes)
        except (OSError, EOFError) as err:  # a damaged or truncated .gz
            raise UserError(f"{where} cannot be read ({err}); check the file") from None
        if first and looks_binary(data):
            raise UserError(f"{where} looks like a binary file, not text; pass a plain UTF-8 text file")
        if b"\x00" in data:
            raise UserError(f"{where} holds a NUL byte at offset {offset + data.index(0)}: a binary file, not text")
        pending = len(decoder.getstate()[0])  # bytes of a character split across the previous block
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            at = offset - pending + error.start
            raise UserError(
                f"{where} is not valid UTF-8 (byte 0x{error.object[error.start]:02x} at offset {at}){how_to_fix}"
            ) from None
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        offset += len(data)
        any_text = any_text or bool(text.strip())
        if text:
            yield text
        if not data:
            break
    if not any_text:
        raise UserError(f"corpus file {where} is empty; put some text in it or pass another file")


def read_stdin() -> str:
    """All of stdin as text, decoded like a file (`-` in place of a file or a prompt)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a stream that is text already (a test's StringIO)
        return sys.stdin.read().removeprefix("\ufeff")
    return decode_utf8(buffer.read(), "stdin")


def line_batches(source: str | Path, batch_size: int, flag: str = "--file") -> Iterator[list[str]]:
    """The non-blank lines of FILE ('-': stdin) as they arrive, `batch_size` at a time (`translate --file`).

    A batch is handed on when it is full, at the end of the input, or -- when the input is a pipe,
    a FIFO or a terminal -- as soon as nothing more is ready to read, so a line typed or piped in is
    answered before the next one comes. Only the current batch and one read block are in memory:
    any number of lines streams through. The bytes are UTF-8 (a leading byte-order mark dropped);
    text that is not is a UserError naming the line. A missing FILE is a UserError naming `flag`.
    """
    import io
    import os
    import select
    import stat

    if str(source) == "-":
        binary = getattr(sys.stdin, "buffer", None)
        if binary is None:  # a text stream already (a test's StringIO)
            binary = io.BytesIO(sys.stdin.read().encode("utf-8"))
        where, close = "stdin", False
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(f"{flag} {path}: no such file (check the path)")
        if path.is_dir():
            raise UserError(f"{flag} {path} is a directory; give a text file, one sentence per line")
        binary, where, close = open(path, "rb"), str(path), True
    try:
        fd = binary.fileno()
        streaming = sys.platform != "win32" and not stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        fd, streaming = None, False

    def ready() -> bool:
        return select.select([fd], [], [], 0)[0] != []

    decoder = codecs.getincrementaldecoder("utf-8")()
    pending, batch, line_number, first = "", [], 0, True
    try:
        while True:
            data = os.read(fd, READ_BLOCK_BYTES) if streaming else binary.read(1 << 16)
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as error:
                bad_line = line_number + data[: max(0, error.start)].count(b"\n") + 1
                raise UserError(f"{where}: line {bad_line} is not valid UTF-8; "
                                "convert the file first, e.g. with iconv") from None
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            pending += text
            *lines, pending = pending.split("\n")
            if not data and pending:
                lines, pending = [*lines, pending], ""
            for line in lines:
                line_number += 1
                batch.extend(part for part in line.splitlines() if part.strip())
                while len(batch) >= batch_size:
                    yield batch[:batch_size]
                    batch = batch[batch_size:]
            if batch and (not data or (streaming and not ready())):
                yield batch
                batch = []
            if not data:
                return
    finally:
        if close:
            binary.close()


def decode_utf8(data: bytes, where: str, how_to_fix: str = "") -> str:
    """Bytes to text, exactly: UTF-8, no newline translation, a leading byte-order mark dropped.

    >>> decode_utf8("\\ufeffone\\r\\ntwo".encode("utf-8"), "a.txt")
    'one\\r\\ntwo'
    >>> decode_utf8(b"caf\\xe9", "a.txt")
    Traceback (most recent call last):
    minitx.errors.UserError: a.txt is not valid UTF-8 (byte 0xe9 at offset 3)
    """
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{where} is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}){how_to_fix}"
        ) from None


def looks_binary(data: bytes) -> bool:
    """True for bytes with a NUL, or with many control characters near the start.

    >>> looks_binary(b"To be, or not to be\\n"), looks_binary(b"PK\\x03\\x04\\x00\\x00")
    (False, True)
    """
    if b"\x00" in data:
        return True
    head = data[:8192]
    control = sum(1 for byte in head if (byte < 0x20 or byte == 0x7F) and byte not in _TEXT_CONTROL_BYTES)
    return bool(head) and control / len(head) > _MAX_CONTROL_SHARE


def download_tinyshakespeare(
    out: Path,
    url: str = TINYSHAKESPEARE_URL,
    force: bool = False,
    timeout: float = 20,
    sha256: str = TINYSHAKESPEARE_SHA256,
    progress: bool = False,
) -> Path:
    """Download `url` to `out` and keep it only if its sha256 is `sha256`; return `out`.

    The body is read into memory (it is about 1 MB) and checked before anything is written; it then
    lands through `atomic_write_bytes` (a temporary file in the same directory, renamed over `out`),
    so `out` never holds a half download or a file with the wrong checksum. `progress` shows a rich
    progress bar. Every failure is a UserError: `out` exists without `force`, no network or an HTTP
    error (the message says how to place the file by hand), or the wrong checksum.
    """
    out = Path(out)
    refuse_existing(out, force)
    data = _fetch(url, out, timeout, progress)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise UserError(
            f"the file downloaded from {url} has sha256 {actual}, expected {sha256}; nothing was saved "
            f"(try again, or download it by hand and save it as {out})"
        )
    atomic_write_bytes(out, data)
    return out


def _fetch(url: str, out: Path, timeout: float, progress: bool) -> bytes:
    """The body of `url`, read in chunks; network and HTTP failures become one-line UserErrors."""
    by_hand = f"download it by hand and save it as {out}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected_size = int(response.headers.get("Content-Length") or 0) or None
            return _read_body(response, expected_size, progress)
    except urllib.error.HTTPError as error:
        raise UserError(f"could not download {url} (HTTP {error.code} {error.reason}); {by_hand}") from None
    except urllib.error.URLError as error:
        raise UserError(f"could not download {url} ({error.reason}); {by_hand}") from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # timeouts, cut-off bodies, bad URLs
        raise UserError(f"could not download {url} ({str(error) or type(error).__name__}); {by_hand}") from None


def _read_body(response, expected_size: int | None, progress: bool) -> bytes:
    """Read a response in 64 KiB chunks, optionally drawing a progress bar."""
    body = bytearray()
    bar = None
    if progress:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress("downloading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
        task = bar.add_task("download", total=expected_size)
        bar.start()
    try:
        while chunk := response.read(64 * 1024):
            body += chunk
            if len(body) > MAX_DOWNLOAD_BYTES:
                raise ValueError(f"more than {MAX_DOWNLOAD_BYTES:,} bytes, which is not the expected file")
            if bar is not None:
                bar.update(task, completed=len(body))
    finally:
        if bar is not None:
            bar.stop()
    return bytes(body)
