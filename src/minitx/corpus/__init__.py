"""The built-in corpus: short English stories from a grammar that minitx defines itself.

Word order carries meaning in these stories -- "the dog that the cats chase runs" agrees across a
relative clause, adjectives come in the order English insists on ("a lovely little old red ball"),
"an" goes before a vowel sound -- so a model has to learn positions to write them. Because the
grammar is known, a sample can be graded exactly: `check_text` parses every sentence.

    lexicon.py    the words and their features (the one list both halves read)
    generate.py   `generate_corpus(n_bytes, seed)`, `generate_story(rng)`
    story.lark    the sentence shapes, for lark's Earley parser
    grammar.py    sentence -> words -> parse tree
    check.py      `check_text(text) -> CheckReport`, `render_report`

The checking half imports lark, so it is loaded on first use (`__getattr__` below): importing
`minitx.corpus` for `generate_corpus` stays cheap.
"""

from __future__ import annotations

from typing import Any

from minitx.text.special import DOC_TOKEN  # starts every document

__all__ = [
    "DOC_TOKEN",
    "CheckReport",
    "Rejection",
    "check_text",
    "generate_corpus",
    "generate_story",
    "render_report",
]

_LAZY = {
    "generate_corpus": "minitx.corpus.generate",
    "generate_story": "minitx.corpus.generate",
    "check_text": "minitx.corpus.check",
    "CheckReport": "minitx.corpus.check",
    "Rejection": "minitx.corpus.check",
    "render_report": "minitx.corpus.check",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
