"""Learning a tokenizer's vocabulary from a streamed corpus, on all of it or on a sample.

`Tokenizer.train_bpe` counts words over the pieces it is given, so the corpus never needs to be one
string: the blocks of a `CorpusStream`, cut at safe places (`Tokenizer.safe_pieces`), give exactly the
word counts of the whole text, hence the same merges. `max_bytes` stops after about that many bytes of
text (at the first safe place past it): a vocabulary learned on 100 MB of a 10 GB corpus is nearly the
same and takes a hundredth of the time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer, safe_pieces
from minitx.tokens.prepare import safe_batches
from minitx.tokens.sources import CorpusStream, Source


def sample_text(stream: CorpusStream, special_tokens: Sequence[str], max_bytes: int | None = None) -> Iterator[str]:
    """The text of `stream` as safely cut blocks, stopping after `max_bytes` UTF-8 bytes (None: all of it).

    `stream.sampled_bytes` counts the bytes given out so far.
    """
    stream.sampled_bytes = 0
    for pieces in safe_batches(stream.blocks(), partial(safe_pieces, special_tokens=special_tokens)):
        for piece in pieces:
            size = len(piece.encode("utf-8"))
            if max_bytes is not None and stream.sampled_bytes + size >= max_bytes:
                # the last piece: cut it at the first safe place past the limit
                piece = safe_pieces(piece, special_tokens, chunk_chars=max(1, max_bytes - stream.sampled_bytes))[0]
                stream.sampled_bytes += len(piece.encode("utf-8"))
                yield piece
                return
            stream.sampled_bytes += size
            yield piece


def train_tokenizer(
    sources: list[Source],
    *,
    kind: str,
    vocab_size: int,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (DOC_TOKEN,),
    text_field: str = "text",
    max_bytes: int | None = None,
    show_progress: bool = False,
) -> tuple[Tokenizer, CorpusStream]:
    """Train a `kind` ('bpe' or 'char') tokenizer on the streamed corpus; also return the stream (bytes read)."""
    if kind not in ("bpe", "char"):
        raise UserError(f"--kind must be bpe or char, got {kind!r}")
    if max_bytes is not None and max_bytes < 1:
        raise UserError(f"--max-bytes must be positive, got {max_bytes}")
    stream = CorpusStream(sources, text_field=text_field)
    text = sample_text(stream, special_tokens, max_bytes)
    if kind == "char":
        return Tokenizer.train_char(text, special_tokens=special_tokens), stream
    tokenizer = Tokenizer.train_bpe(text, vocab_size=vocab_size, min_frequency=min_frequency,
                                    special_tokens=special_tokens, show_progress=show_progress)
    return tokenizer, stream
