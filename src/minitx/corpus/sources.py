"""Where training text comes from: the user's files, or -- when none are given -- the built-in stories.

`minitx train` and `minitx tokenize train` with no files train on 2,000,000 bytes of stories from
seed 0, so two users who type the same command get the same corpus.
"""

from __future__ import annotations

from pathlib import Path

from minitx.config import BUILTIN_CORPUS_BYTES, BUILTIN_CORPUS_SEED
from minitx.text.files import read_corpus


def load_training_text(files: list[Path]) -> tuple[str, str]:
    """The corpus to train on and a name for it: the files, or the built-in story grammar."""
    if files:
        return read_corpus(files), ", ".join(str(f) for f in files)
    from minitx.corpus.generate import generate_corpus

    return generate_corpus(BUILTIN_CORPUS_BYTES, BUILTIN_CORPUS_SEED), "built-in stories"
