"""`minitx data grammar|check|tinyshakespeare`: corpora to train on, and the grammar checker."""

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
