"""From a sentence string to a parse tree: split into words, look them up, parse with lark.

Three steps, each of which can reject a sentence with a reason a person can act on:

1. `split_words`  "Then, the dog runs."  ->  ["Then", ",", "the", "dog", "runs", "."]
2. `look_up`      each word -> its `lexicon.Word` (part of speech + features). Fails on an unknown
                  word ("unknown word 'xyzzy'") or wrong capitals ("capitalisation: ...").
3. `parse`        the parts of speech -> a lark tree shaped by story.lark, e.g. for "The dog runs.":

                      start
                        statement
                          np      DET 'the'  NOUN 'dog'
                          intransitive   VERB_INTR 'runs'
                          END '.'

                  Fails with "not a sentence of the grammar (parse failed at 'dog')".

The parser is lark's Earley parser: the grammar is ambiguous where English is (does "with the
ball" belong to the dog or to the chasing?), which Earley accepts and LALR would refuse. It is
built once, on first use, and shared (`sentence_parser`).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from minitx.corpus.lexicon import NAMES_BY_LOWERCASE, TERMINALS, WORDS, Word

#: A word is a run of anything but spaces and punctuation; each punctuation mark is its own token.
_WORD_OR_MARK = re.compile(r"[^\s,.?!]+|[,.?!]")


class SentenceRejected(Exception):
    """A sentence is not in the language; the message is the reason shown to the user."""


def split_words(sentence: str) -> list[str]:
    """Split a sentence into words and punctuation marks.

    >>> split_words("Then, the dog runs.")
    ['Then', ',', 'the', 'dog', 'runs', '.']
    """
    return _WORD_OR_MARK.findall(sentence)


def look_up(words: list[str]) -> list[Word]:
    """Find each word in the lexicon, checking capitals on the way; raise SentenceRejected if one fails.

    The first word must start with a capital ("The", or a name); names always do; every other word is
    all lower case. The returned `Word`s carry the lexicon's spelling ("The" -> the entry for "the").
    """
    found = []
    for position, text in enumerate(words):
        entry = WORDS.get(text) or WORDS.get(text.lower())
        if entry is None:
            if text.lower() in NAMES_BY_LOWERCASE:
                raise SentenceRejected(f"capitalisation: the name '{NAMES_BY_LOWERCASE[text.lower()]}' "
                                       f"is written '{text}'")
            raise SentenceRejected(f"unknown word '{text}'")
        if entry.terminal not in ("NAME", "COMMA", "END"):
            expected = entry.text.capitalize() if position == 0 else entry.text
            if text != expected:
                where = "the first word of a sentence" if position == 0 else "a word inside a sentence"
                raise SentenceRejected(f"capitalisation: '{text}' should be '{expected}' ({where})")
        found.append(entry)
    return found


class _LexiconLexer(Lexer):
    """Hands lark the tokens we already made: lark's own regex lexer is not needed for words."""

    def __init__(self, lexer_conf) -> None:  # lark passes its lexer configuration; we need none
        pass

    def lex(self, tokens):  # lark's simplest custom-lexer interface: gets what `Lark.parse` was given
        return iter(tokens)


@functools.cache
def sentence_parser() -> Lark:
    """The Earley parser for story.lark, built on first use (about 0.1 s) and then shared."""
    grammar = resources.files("minitx.corpus").joinpath("story.lark").read_text(encoding="utf-8")
    parser = Lark(grammar, parser="earley", lexer=_LexiconLexer, ambiguity="resolve")
    used = {symbol.name for rule in parser.rules for symbol in rule.expansion if symbol.is_term}
    if used != set(TERMINALS):  # the grammar and the lexicon must name the same parts of speech
        raise RuntimeError(f"story.lark uses {sorted(used)} but the lexicon has {TERMINALS}")
    return parser


def parse(entries: list[Word]) -> Tree:
    """Parse looked-up words into a tree; raise SentenceRejected saying where parsing stopped.

    Each leaf is a lark `Token` whose type is the part of speech and whose value is the lexicon
    spelling, so `WORDS[token]` gives back its features.
    """
    tokens = [Token(entry.terminal, entry.text) for entry in entries]
    try:
        return sentence_parser().parse(tokens)
    except UnexpectedEOF:
        raise SentenceRejected("not a sentence of the grammar (it stops too early)") from None
    except UnexpectedToken as error:
        raise SentenceRejected(f"not a sentence of the grammar (parse failed at '{error.token}')") from None
    except UnexpectedInput:  # any other way lark can fail on input
        raise SentenceRejected("not a sentence of the grammar") from None


def parse_sentence(sentence: str) -> Tree:
    """Split, look up and parse one sentence (with its final mark): the three steps in one call."""
    return parse(look_up(split_words(sentence)))
