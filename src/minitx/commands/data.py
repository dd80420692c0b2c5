"""`minitx data grammar|translation|check|tinyshakespeare`: corpora to train on, and the grammar checker."""

from __future__ import annotations

import json
from pathlib import Path

from minitx.commands.display import make_console
from minitx.console import safe
from minitx.errors import UserError
from minitx.fileio import refuse_existing
from minitx.text.files import read_corpus, read_stdin


def grammar(*, out: Path, n_bytes: int, seed: int, force: bool) -> None:
    """`minitx data grammar`: write stories from the built-in English grammar."""
    from minitx.corpus import DOC_TOKEN, generate_corpus
    from minitx.fileio import atomic_write_text

    if n_bytes < 1:
        raise UserError(f"--bytes must be positive, got {n_bytes}")
    refuse_existing(out, force)
    text = generate_corpus(n_bytes, seed)
    atomic_write_text(out, text)
    stories = text.count(DOC_TOKEN)
    make_console().print(f"wrote {safe(out)}: {len(text.encode('utf-8')):,} bytes, {stories:,} stories (seed {seed})")


def translation(*, out: Path, n_pairs: int, seed: int, order: str, force: bool, join: int = 1,
                max_words: int | None = None) -> None:
    """`minitx data translation`: write English-target sentence pairs with gold word alignments (JSON Lines).

    `join` K > 1: each pair is 1 to K consecutive sentences joined (long sources, for the length curve);
    `max_words`: pairs whose source has more words are left out ("trained on <= 30 words")."""
    from minitx.corpus.translation import translation_pairs
    from minitx.fileio import atomic_write_text

    if n_pairs < 1:
        raise UserError(f"--pairs must be at least 1, got {n_pairs}")
    refuse_existing(out, force)
    pairs = translation_pairs(n_pairs, seed, order, join=join, max_words=max_words)
    atomic_write_text(out, "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs))
    longest_source = max(len(pair["source"].split()) for pair in pairs)
    longest_target = max(len(pair["target"].split()) for pair in pairs)
    console = make_console()
    joined = f", up to {join} sentences each" if join > 1 else ""
    capped = f", at most {max_words} source words" if max_words is not None else ""
    console.print(f"wrote {safe(out)}: {len(pairs):,} pairs (order {order}, seed {seed}{joined}{capped})")
    console.print(f"longest: {longest_source} source words, {longest_target} target words")
    for pair in pairs[:3]:
        console.print(f"  {safe(pair['source'])}  ->  {safe(pair['target'])}")


def check(file: Path, *, as_json: bool, examples: int) -> int:
    """`minitx data check`: parse every sentence; return the exit code (0: all accepted, 1 otherwise)."""
    from minitx.corpus import check_text, render_report

    text = read_stdin() if str(file) == "-" else read_corpus([file])
    report = check_text(text)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        make_console().print(render_report(report, max_examples=examples))
    return 0 if report.total > 0 and report.accepted == report.total else 1


def tinyshakespeare(*, out: Path, force: bool) -> None:
    """`minitx data tinyshakespeare`: download the corpus and verify its sha256."""
    from minitx.text.files import download_tinyshakespeare

    path = download_tinyshakespeare(out, force=force)
    make_console().print(f"saved {safe(path)} ({path.stat().st_size:,} bytes, sha256 verified)")
