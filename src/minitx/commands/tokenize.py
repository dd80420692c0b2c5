"""`minitx tokenize train|encode|decode`: train a tokenizer, show how it cuts text, turn ids back into text."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.table import Table

from minitx.commands.display import make_console
from minitx.console import safe
from minitx.errors import UserError
from minitx.fileio import refuse_existing
from minitx.text.files import read_stdin
from minitx.text.tokenizer import Tokenizer


def load_tokenizer(spec: str) -> Tokenizer:
    """A tokenizer from tokenizer.json or from a run directory."""
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    return Tokenizer.load(path)


def train(
    files: list[Path], *, vocab_size: int, out: Path, kind: str, min_frequency: int, special: list[str],
    force: bool, quiet: bool, max_bytes: int | None = None, text_field: str = "text",
) -> None:
    """`minitx tokenize train`: train a tokenizer on a corpus (default: the built-in stories), save it.

    Files are streamed (never one string in memory); `max_bytes` trains on about that many bytes of them.
    """
    from minitx.text.special import DOC_TOKEN

    refuse_existing(out, force)
    if kind not in ("bpe", "char"):
        raise UserError(f"--kind must be bpe or char, got {kind!r}")
    specials = [DOC_TOKEN, *[s for s in special if s != DOC_TOKEN]]
    started = time.perf_counter()
    if files:
        from minitx.tokens.sources import expand_sources
        from minitx.tokens.vocab import train_tokenizer

        sources = expand_sources(files)
        tok, stream = train_tokenizer(sources, kind=kind, vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=specials, text_field=text_field, max_bytes=max_bytes,
                                      show_progress=not quiet)
        seconds = time.perf_counter() - started
        tok.save(out)
        sample = _text_sample(sources, specials, text_field, min(stream.sampled_bytes, SUMMARY_BYTES))
        make_console().print(tokenizer_summary(tok, sample, out, seconds, trained_bytes=stream.sampled_bytes))
        return
    from minitx.corpus.sources import load_training_text

    text, _ = load_training_text([])
    if kind == "char":
        tok = Tokenizer.train_char(text, special_tokens=specials)
    else:
        tok = Tokenizer.train_bpe([text], vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=specials, show_progress=not quiet)
    seconds = time.perf_counter() - started
    tok.save(out)
    make_console().print(tokenizer_summary(tok, text, out, seconds))


#: The summary measures bytes per token on at most this much of the training text.
SUMMARY_BYTES = 16_000_000


def _text_sample(sources: list, specials: list[str], text_field: str, n_bytes: int) -> str:
    """The first `n_bytes` (about) of the corpus, cut at a safe place, for the summary's bytes per token."""
    from minitx.tokens.sources import STDIN, CorpusStream
    from minitx.tokens.vocab import sample_text

    if any(s.path == STDIN for s in sources):
        return ""  # stdin was read once, for training
    return "".join(sample_text(CorpusStream(sources, text_field=text_field), specials, n_bytes))


def encode(text: str, *, tokenizer: str, ids: bool) -> None:
    """`minitx tokenize encode`: coloured tokens with their ids, or only the ids."""
    from minitx.text.display import render_tokens

    tok = load_tokenizer(tokenizer)
    text = read_stdin() if text == "-" else text
    if ids:
        print(" ".join(map(str, tok.encode(text))))
    else:
        console = make_console()
        plain = not console.is_terminal or console.no_color  # no colours: mark the boundaries with |
        console.print(render_tokens(tok, text, separator="|" if plain else ""))


def decode(ids: list[str], *, tokenizer: str) -> None:
    """`minitx tokenize decode`: token ids (or '-' for stdin) back to text, exactly."""
    tok = load_tokenizer(tokenizer)
    raw = read_stdin().split() if ids == ["-"] else ids
    try:
        numbers = [int(i) for i in raw]
    except ValueError:
        raise UserError(f"token ids must be whole numbers, got {' '.join(raw)[:60]!r}") from None
    bad = [i for i in numbers if not 0 <= i < tok.vocab_size]
    if bad:
        raise UserError(f"token id {bad[0]} is outside this tokenizer's vocabulary (0..{tok.vocab_size - 1})")
    sys.stdout.write(tok.decode(numbers) + "\n")


def tokenizer_summary(tok: Tokenizer, text: str, out: Path, seconds: float, trained_bytes: int | None = None) -> Table:
    """Vocabulary size, corpus bytes, training seconds and bytes per token on (a sample of) the corpus."""
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tok.encode(text))
    trained_bytes = n_bytes if trained_bytes is None else trained_bytes
    table = Table(title=f"tokenizer → {safe(out)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("kind", tok.kind)
    table.add_row("vocabulary size", f"{tok.vocab_size:,}")
    table.add_row("corpus bytes", f"{trained_bytes:,}")
    if n_bytes == trained_bytes:
        table.add_row("corpus tokens", f"{n_tokens:,}")
    if n_bytes:
        sampled = "" if n_bytes == trained_bytes else f" (first {n_bytes:,} bytes)"
        table.add_row(f"bytes per token{sampled}", f"{n_bytes / max(1, n_tokens):.3f}")
    table.add_row("seconds", f"{seconds:.2f}")
    return table
