"""The order test: how much worse does the model predict text when its order is destroyed?

Take held-out documents and make two copies that keep every word but not its place:

    words shuffled      within each sentence:   "The dog chases a cat."  ->  "a The cat dog chases."
                                                 (the final mark stays last)
    sentences shuffled  within each document:   "A. B. C."  ->  "C. A. B."

Each copy has exactly the bytes of the original (whitespace is normalised to single spaces in all
three), so the loss per byte can be compared directly. The **gap** is

    gap = (nats of the shuffled copy - nats of the original) / bytes      (reported in bits per byte)

and also as the difference of the mean loss per token. A model that ignored order would find the
shuffled text just as likely: gap ≈ 0. The gap in bits per byte is the share of the model's
knowledge (in the units of compression) that lives in word order. Intervals are bootstrapped over
documents. Shuffles come from a seeded RNG, so the test is repeatable.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from minitx.evaluation.intervals import bootstrap
from minitx.evaluation.likelihood import token_log_probs
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer


_SENTENCE = re.compile(r"[^.?!]*[.?!]")
#: How many documents the order test reads by default: enough for intervals of a few hundredths of a bit.
DEFAULT_DOCUMENTS = 400


def sentences_of(document: str) -> list[str]:
    """The sentences of a document, whitespace normalised: "A b.  C d!" -> ["A b.", "C d!"] (a trailing
    fragment without a final mark is kept as a last sentence)."""
    found = [" ".join(m.group().split()) for m in _SENTENCE.finditer(document)]
    tail = document[sum(len(m.group()) for m in _SENTENCE.finditer(document)):]
    found += [" ".join(tail.split())] if tail.strip() else []
    return [s for s in found if s]


def shuffle_words(sentence: str, rng: random.Random) -> str:
    """The words of a sentence in random order; a final . ? ! stays at the end."""
    mark = sentence[-1] if sentence[-1] in ".?!" else ""
    words = sentence[: len(sentence) - len(mark)].split()
    rng.shuffle(words)
    return " ".join(words) + mark


def shuffled_documents(documents: list[str], what: str, seed: int = 0) -> list[str]:
    """`documents` with their "words" (within each sentence) or "sentences" (within each document) shuffled,
    or left in order for "none"; all three normalise whitespace the same way."""
    rng = random.Random(seed)
    result = []
    for document in documents:
        sentences = sentences_of(document)
        if what == "words":
            sentences = [shuffle_words(s, rng) for s in sentences]
        elif what == "sentences":
            rng.shuffle(sentences)
        result.append(" ".join(sentences))
    return result


def documents_of(text: str, max_documents: int | None = DEFAULT_DOCUMENTS) -> list[str]:
    """The non-empty documents of `text`: the pieces between `<|doc|>` markers or, in text without
    markers, its paragraphs (blank-line separated). When a marked text starts in the middle of a
    document (a validation split cut from a stream), that first piece is dropped."""
    if DOC_TOKEN in text:
        pieces = text.split(DOC_TOKEN)
        if not text.startswith(DOC_TOKEN):
            pieces = pieces[1:]
    else:
        pieces = re.split(r"\n\s*\n", text)
    documents = [p.strip() for p in pieces if p.strip()]
    return documents[:max_documents] if max_documents else documents


@dataclass
class OrderGap:
    """The gap of one shuffle against the original, with 95% bootstrap intervals over documents."""

    what: str  # "words" or "sentences"
    bits_per_byte: float
    bits_per_byte_interval: tuple[float, float]
    nats_per_token: float
    nats_per_token_interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits_per_byte": self.bits_per_byte,
            "bits_per_byte_low": self.bits_per_byte_interval[0],
            "bits_per_byte_high": self.bits_per_byte_interval[1],
            "nats_per_token": self.nats_per_token,
            "nats_per_token_low": self.nats_per_token_interval[0],
            "nats_per_token_high": self.nats_per_token_interval[1],
        }


@dataclass
class OrderTest:
    documents: int
    bytes: int
    original_bits_per_byte: float
    original_nats_per_token: float
    words: OrderGap
    sentences: OrderGap

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "bytes": self.bytes,
            "original_bits_per_byte": self.original_bits_per_byte,
            "original_nats_per_token": self.original_nats_per_token,
            "words": self.words.to_dict(),
            "sentences": self.sentences.to_dict(),
        }


def _nats_and_tokens(model: GPT, tokenizer: Tokenizer, documents: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per document: nats to predict it after `<|doc|>` (its closing newline included), and tokens predicted."""
    log_probs = token_log_probs(model, [tokenizer.encode(f"{DOC_TOKEN}{d}\n") for d in documents])
    return np.array([-float(lp.sum()) for lp in log_probs]), np.array([len(lp) for lp in log_probs], dtype=float)


def order_test(model: GPT, tokenizer: Tokenizer, documents: list[str], seed: int = 0) -> OrderTest:
    """Score the documents as they are and shuffled both ways; see the module docstring."""
    if not documents:
        from minitx.errors import UserError

        raise UserError("the order test found no documents in the text; it needs text with <|doc|> markers "
                        "(or one document per file)")
    original = shuffled_documents(documents, "none")
    n_bytes = np.array([len(f"{d}\n".encode()) for d in original], dtype=float)
    nats, tokens = _nats_and_tokens(model, tokenizer, original)
    gaps = {}
    for what in ("words", "sentences"):
        shuffled = shuffled_documents(documents, what, seed)
        nats_s, tokens_s = _nats_and_tokens(model, tokenizer, shuffled)

        def per_byte(a: np.ndarray, b: np.ndarray, size: np.ndarray) -> float:
            return float((a.sum() - b.sum()) / size.sum() / math.log(2))

        def per_token(a: np.ndarray, ta: np.ndarray, b: np.ndarray, tb: np.ndarray) -> float:
            return float(a.sum() / ta.sum() - b.sum() / tb.sum())

        gaps[what] = OrderGap(
            what,
            per_byte(nats_s, nats, n_bytes),
            bootstrap([nats_s, nats, n_bytes], per_byte, seed=seed),
            per_token(nats_s, tokens_s, nats, tokens),
            bootstrap([nats_s, tokens_s, nats, tokens], per_token, seed=seed),
        )
    return OrderTest(len(documents), int(n_bytes.sum()), float(nats.sum() / n_bytes.sum() / math.log(2)),
                     float(nats.sum() / tokens.sum()), gaps["words"], gaps["sentences"])
