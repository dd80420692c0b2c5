"""Minimal pairs: a grammatical sentence and a twin that breaks exactly one rule (BLiMP-style).

A language model "knows" a rule if it gives the grammatical twin the higher probability. Because the
story grammar is ours, the pairs are made from it and graded by its own checker (`check.py`): each
good sentence is accepted, each bad one is rejected *for the stated reason*. Six phenomena:

    phenomenon        good                                   bad
    ----------------  -------------------------------------  -------------------------------------
    adjective_order   A lovely little red ball rolls.        A little lovely red ball rolls.
    agreement_local   The dogs run.                          The dogs runs.
    agreement_far     The dog that the cats chase runs.      The dog that the cats chase run.
    article           An old owl sleeps.                     A old owl sleeps.
    pronoun           Tom sees a cat. He smiles.             Tom sees a cat. She smiles.
    word_swap         The girl sees the dog.                 The sees girl the dog.

`agreement_far` puts a relative clause between the subject and its verb; `distance` is how many
words lie between the subject's noun and the verb (1 for agreement_local). The pronoun pairs are
two-sentence documents whose first sentence (the `context`) introduces the antecedents; the bad
twin uses a pronoun of the same number (so the verb still agrees) with no fitting antecedent.

Every choice comes from one `random.Random(seed)`, so `minimal_pairs(600, seed=0)` is the same
list on every machine. Sentences are written by `generate.StoryWriter`, words come from the lexicon.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from minitx.corpus import DOC_TOKEN
from minitx.corpus.check import antecedents_introduced, check_text, judge_sentence
from minitx.corpus.generate import Phrase, StoryWriter
from minitx.corpus.grammar import split_words
from minitx.corpus.lexicon import ANIMATE, PRONOUNS, WORDS, article_for, third_person

PHENOMENA = ("adjective_order", "agreement_local", "agreement_far", "article", "pronoun", "word_swap")

#: What the checker's reason for rejecting the bad twin starts with, per phenomenon (word_swap: any).
EXPECTED_REASON = {
    "adjective_order": "adjective order",
    "agreement_local": "agreement",
    "agreement_far": "agreement",
    "article": "article",
    "pronoun": "pronoun '",
    "word_swap": "",
}


@dataclass(frozen=True)
class MinimalPair:
    """One pair. The model reads `<|doc|>` + context + " " + sentence (context may be empty)."""

    phenomenon: str
    good: str
    bad: str
    context: str = ""
    distance: int = 0  # words between subject noun and verb (agreement phenomena), else 0
    reason: str = ""  # why the checker rejects `bad`

    def texts(self) -> tuple[str, str]:
        """The two documents to score, without the `<|doc|>` marker."""
        prefix = f"{self.context} " if self.context else ""
        return prefix + self.good, prefix + self.bad

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def minimal_pairs(n: int, seed: int = 0, phenomena: tuple[str, ...] = PHENOMENA) -> list[MinimalPair]:
    """`n` pairs, as evenly spread over `phenomena` as n allows (the first ones get the remainder).

    A candidate whose twin the checker does not reject for the expected reason (rare: e.g. a swap
    that happens to stay grammatical) is dropped and another is drawn, so every returned pair is valid.
    """
    rng = random.Random(seed)
    pairs: list[MinimalPair] = []
    for index, phenomenon in enumerate(phenomena):
        wanted = n // len(phenomena) + (1 if index < n % len(phenomena) else 0)
        make = _MAKERS[phenomenon]
        made, attempts = 0, 0
        while made < wanted:
            attempts += 1
            if attempts > 200 * wanted + 1000:
                raise RuntimeError(f"could not build {wanted} {phenomenon} pairs")  # a generator bug
            pair = make(rng)
            if pair is not None and (pair := _graded(pair)) is not None:
                pairs.append(pair)
                made += 1
    return pairs


def _graded(pair: MinimalPair) -> MinimalPair | None:
    """The pair with the checker's reason filled in, or None unless good passes and bad fails as expected."""
    good_doc, bad_doc = (f"{DOC_TOKEN}{text}\n" for text in pair.texts())
    if pair.good == pair.bad or check_text(good_doc).rejected:
        return None
    rejected = check_text(bad_doc).rejected
    if len(rejected) != 1 or not rejected[0].reason.startswith(EXPECTED_REASON[pair.phenomenon]):
        return None
    return MinimalPair(**{**pair.to_dict(), "reason": rejected[0].reason})


# -- making one candidate per phenomenon ----------------------------------------------------------

def _sentence(words: list[str], mark: str = ".") -> str:
    """["the", "dog", "runs"] -> "The dog runs." (commas attach to the word before them)."""
    words = list(words)
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words).replace(" ,", ",") + mark


def _story_sentence(rng: random.Random) -> list[str]:
    """The words (lower-cased first word, no final mark) of a sentence that needs no earlier context."""
    while True:
        writer = StoryWriter(rng)
        sentence = writer.sentence(first=True)
        if sentence.endswith(".") and judge_sentence(sentence) is None:
            words = split_words(sentence)[:-1]
            if WORDS.get(words[0]) is None:  # not a name: lower-case the first word
                words[0] = words[0].lower()
            return words


def _other_number(verb: str) -> str:
    """runs <-> run, is <-> are, has <-> have."""
    word = WORDS[verb]
    if word.terminal == "BE":
        return "are" if verb == "is" else "is"
    return word.base if "sg" in word.number else third_person(word.base)


def _adjective_order(rng: random.Random) -> MinimalPair | None:
    words = _story_sentence(rng)
    spots = [i for i in range(len(words) - 1)
             if WORDS[words[i]].terminal == "ADJ" and WORDS[words[i + 1]].terminal == "ADJ"]
    if not spots:
        return None
    i = rng.choice(spots)
    bad = list(words)
    bad[i], bad[i + 1] = bad[i + 1], bad[i]
    if i > 0 and bad[i - 1] in ("a", "an"):  # keep the article right for the new first adjective
        bad[i - 1] = article_for(bad[i])
    return MinimalPair("adjective_order", _sentence(words), _sentence(bad))


def _agreement(rng: random.Random, far: bool) -> MinimalPair | None:
    """Subject (+ relative clause when `far`) + verb phrase; the bad twin flips the main verb's number."""
    writer = StoryWriter(rng)
    subject = writer.noun_phrase(ANIMATE, "subject", relatives_left=0, allow_pronoun=False, allow_name=not far,
                                 simple=True)
    if WORDS[subject.words[-1]].terminal == "NOUN" and len(WORDS[subject.words[-1]].number) > 1:
        return None  # "the sheep" agrees with both verb forms
    clause = writer.relative_clause(subject, relatives_left=0) if far else []
    verb_phrase = writer.verb_phrase(subject, relatives_left=0)
    words = [*subject.words, *clause, *verb_phrase]
    verb_at = len(subject.words) + len(clause)
    bad = list(words)
    bad[verb_at] = _other_number(words[verb_at])
    return MinimalPair("agreement_far" if far else "agreement_local", _sentence(words), _sentence(bad),
                       distance=len(clause) + 1)


def _article(rng: random.Random) -> MinimalPair | None:
    words = _story_sentence(rng)
    spots = [i for i, word in enumerate(words) if word in ("a", "an")]
    if not spots:
        return None
    i = rng.choice(spots)
    bad = list(words)
    bad[i] = "an" if words[i] == "a" else "a"
    return MinimalPair("article", _sentence(words), _sentence(bad))


_SINGULAR_SUBJECT_PRONOUNS = [p for p, (base, cases) in PRONOUNS.items() if p == base and p != "they"]


def _pronoun(rng: random.Random) -> MinimalPair | None:
    """Context introduces someone; the next sentence starts with their pronoun, or with a pronoun of the
    same number that nothing in the context fits."""
    writer = StoryWriter(rng)
    context = writer.sentence(first=True)
    writer.known += writer.introduced
    writer.introduced = []
    available = antecedents_introduced(context)
    fitting = [p for p in _SINGULAR_SUBJECT_PRONOUNS if p in available]
    unfitting = [p for p in _SINGULAR_SUBJECT_PRONOUNS if p not in available]
    if not fitting or not unfitting:
        return None
    good_pronoun, bad_pronoun = rng.choice(fitting), rng.choice(unfitting)
    kind = {"he": "male", "she": "female", "it": "animal"}[good_pronoun]
    verb_phrase = writer.verb_phrase(Phrase([good_pronoun], "sg", kind), relatives_left=0)
    return MinimalPair("pronoun", _sentence([good_pronoun, *verb_phrase]), _sentence([bad_pronoun, *verb_phrase]),
                       context=context)


def _word_swap(rng: random.Random) -> MinimalPair | None:
    words = _story_sentence(rng)
    spots = [i for i in range(len(words) - 1) if words[i] != words[i + 1] and "," not in (words[i], words[i + 1])]
    if not spots:
        return None
    i = rng.choice(spots)
    bad = list(words)
    bad[i], bad[i + 1] = bad[i + 1], bad[i]
    return MinimalPair("word_swap", _sentence(words), _sentence(bad))


_MAKERS: dict[str, Callable[[random.Random], MinimalPair | None]] = {
    "adjective_order": _adjective_order,
    "agreement_local": lambda rng: _agreement(rng, far=False),
    "agreement_far": lambda rng: _agreement(rng, far=True),
    "article": _article,
    "pronoun": _pronoun,
    "word_swap": _word_swap,
}
