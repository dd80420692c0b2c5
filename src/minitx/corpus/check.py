"""Is this text in the story language? Parse every sentence and say why the bad ones are bad.

A model trained on the built-in corpus is judged by what share of the sentences it writes the
grammar accepts. `check_text` splits text into documents (on `<|doc|>`) and sentences (on . ? !),
and judges each sentence in four steps, stopping at the first problem:

1. words       every word is in the lexicon and capitalised correctly   (grammar.look_up)
2. structure   the parts of speech form a sentence of story.lark         (grammar.parse)
3. features    walk the parse tree: adjective order and count, a/an, determiner-noun number,
               subject-verb agreement (also inside relative clauses, whose verb agrees with the
               noun they describe), pronoun case, "who" only for people, relative clauses nested
               at most two deep, "?" exactly on questions                 (`_TreeChecker`)
4. reference   each pronoun points back to a fitting noun or name in an earlier sentence of the
               same document ("she" needs a girl, a queen, Mia ...)

    >>> check_text("<|doc|>The dog runs. A old cat sleeps.\\n").rejected[0].reason
    "article: 'a' before 'old'"

A sample cut off at a token limit ends in a sentence without its final mark; that fragment is
counted as `incomplete`, neither accepted nor rejected.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from lark import Token, Tree

from minitx.corpus.grammar import SentenceRejected, look_up, parse, split_words
from minitx.corpus.lexicon import (
    ADJECTIVE_ORDER,
    MAX_ADJECTIVES,
    MAX_RELATIVE_DEPTH,
    PEOPLE,
    PLURAL,
    PRONOUNS,
    SINGULAR,
    WORDS,
    Word,
    article_for,
    pronoun_for,
)
from minitx.text.special import DOC_TOKEN

#: A sentence is everything up to and including a final mark; what trails after the last mark of
#: a document is an unfinished sentence.
_SENTENCE = re.compile(r"[^.?!]*[.?!]")
_ANTECEDENT_NEEDED = {"he": "male", "she": "female", "it": "singular animal or thing", "they": "plural"}


@dataclass
class Rejection:
    """One sentence the grammar refused, why, and which document (0-based) it came from."""

    sentence: str
    reason: str
    document: int = 0


@dataclass
class CheckReport:
    """What `check_text` found. `share` = accepted / total, where total excludes incomplete sentences.

    With no complete sentence at all, `share` is 0.0, not 1.0: a sample with nothing to judge has
    shown no grammar, and a vacuous 100% would flatter a model that never finishes a sentence.
    """

    documents: int = 0
    total: int = 0
    accepted: int = 0
    incomplete: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.accepted / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return {
            "documents": self.documents,
            "total": self.total,
            "accepted": self.accepted,
            "incomplete": self.incomplete,
            "share": self.share,
            "rejected": [asdict(rejection) for rejection in self.rejected],
        }


def check_text(text: str) -> CheckReport:
    """Judge every sentence of `text`; documents are the pieces between `<|doc|>` markers.

    Text before the first marker (or text with no marker at all) is one document too; blank
    pieces are skipped.
    """
    report = CheckReport()
    documents = [piece for piece in text.split(DOC_TOKEN) if piece.strip()]
    for index, document in enumerate(documents):
        report.documents += 1
        antecedents: set[str] = set()  # pronouns that earlier sentences have given something to mean
        end_of_last_sentence = 0
        for match in _SENTENCE.finditer(document):
            sentence = " ".join(match.group().split())
            end_of_last_sentence = match.end()
            report.total += 1
            reason = judge_sentence(sentence, antecedents)
            if reason is None:
                report.accepted += 1
            else:
                report.rejected.append(Rejection(sentence, reason, index))
            antecedents |= antecedents_introduced(sentence)
        if document[end_of_last_sentence:].strip():
            report.incomplete += 1
    return report


def judge_sentence(sentence: str, antecedents: AbstractSet[str] = frozenset()) -> str | None:
    """None if `sentence` (with its final mark) is in the language, else the reason it is not.

    `antecedents` holds the subject pronouns ("he", "it", ...) that earlier sentences of the same
    document have introduced something for; see `antecedents_introduced`.
    """
    reason, pronouns = _judge_alone(sentence)
    if reason is not None:
        return reason
    for pronoun, subject_form in pronouns:
        if subject_form not in antecedents:
            return f"pronoun '{pronoun}' has no earlier {_ANTECEDENT_NEEDED[subject_form]} antecedent"
    return None


@functools.lru_cache(maxsize=100_000)
def _judge_alone(sentence: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Steps 1-3, which depend on the sentence only (so repeats are judged once): the reason it
    fails or None, and its pronouns as (pronoun, subject form) pairs for step 4."""
    if not sentence.rstrip(".?!").strip():
        return "empty sentence (a mark with no words)", ()
    try:
        entries = look_up(split_words(sentence))
        _TreeChecker().check(parse(entries))
    except SentenceRejected as rejected:
        return str(rejected), ()
    return None, tuple((e.text, e.base) for e in entries if e.terminal == "PRONOUN")


def antecedents_introduced(sentence: str) -> set[str]:
    """The pronouns that may refer back to the nouns and names of `sentence` in later sentences.

    >>> sorted(antecedents_introduced("Mia sees two dogs and a sheep."))  # unknown words are ignored
    ['it', 'she', 'they']
    """
    found = set()
    for text in split_words(sentence):
        entry = WORDS.get(text) or WORDS.get(text.lower())
        if entry is not None and entry.terminal in ("NOUN", "NAME"):
            found |= {pronoun_for(entry.kind, number) for number in entry.number} - {None}
    return found


@dataclass(frozen=True)
class _Phrase:
    """What agreement needs to know about a noun phrase: its words, number and kind."""

    text: str  # "the little dogs" (without its prepositional phrase or relative clause)
    number: frozenset[str]
    kind: str


def _number_word(number: frozenset[str]) -> str:
    return "singular" if number == SINGULAR else "plural" if number == PLURAL else "singular or plural"


class _TreeChecker:
    """Walks a parse tree of story.lark top-down and raises SentenceRejected at the first feature
    that does not fit. One method per grammar rule; `depth` counts enclosing relative clauses."""

    def check(self, tree: Tree) -> None:
        (clause,) = tree.children
        parts = list(clause.children)
        end = parts.pop()
        if clause.data in ("statement", "existential"):
            if isinstance(parts[0], Tree) and parts[0].data == "opener":
                opener = parts.pop(0)
                if isinstance(opener.children[0], Tree):
                    self.prepositional_phrase(opener.children[0], depth=0)
            if end == "?":
                raise SentenceRejected("punctuation: a statement ends with '.' or '!', not '?'")
        elif end != "?":
            raise SentenceRejected(f"punctuation: a question ends with '?', not '{end}'")
        getattr(self, clause.data)(*parts)

    # -- the four kinds of sentence ---------------------------------------------------------
    def statement(self, subject_np: Tree, vp: Tree) -> None:
        self.verb_phrase(vp, self.noun_phrase(subject_np, "subject", depth=0), depth=0)

    def existential(self, there: Token, be: Token, np: Tree, pp: Tree | None = None) -> None:
        if isinstance(np.children[0], Token) and np.children[0].type in ("NAME", "PRONOUN"):
            raise SentenceRejected(f"'there {be}' needs a noun after it, not '{np.children[0]}'")
        self.agree(self.noun_phrase(np, "subject", depth=0), be)
        if pp is not None:
            self.prepositional_phrase(pp, depth=0)

    def do_question(self, aux: Token, subject_np: Tree, vp: Tree) -> None:
        subject = self.noun_phrase(subject_np, "subject", depth=0)
        self.agree(subject, aux)
        self.verb_phrase(vp, subject, depth=0, after_aux=aux)

    def be_question(self, be: Token, subject_np: Tree, predicate: Tree) -> None:
        self.agree(self.noun_phrase(subject_np, "subject", depth=0), be)
        self.predicate(predicate, depth=0)

    # -- phrases ---------------------------------------------------------------------------
    def noun_phrase(self, np: Tree, role: str, depth: int) -> _Phrase:
        """Check a noun phrase (`np` or `simple_np`) and return what agreement needs of it."""
        first = WORDS[np.children[0]]
        if first.terminal == "NAME":
            return _Phrase(first.text, first.number, first.kind)
        if first.terminal == "PRONOUN":
            if role not in first.cases:
                (right,) = [p for p, (base, cases) in PRONOUNS.items() if base == first.base and role in cases]
                raise SentenceRejected(f"pronoun case: '{first.text}' cannot be {_role_article(role)}; "
                                       f"use '{right}'")
            return _Phrase(first.text, first.number, first.kind)

        words = [WORDS[child] for child in np.children if isinstance(child, Token)]
        determiner = words[0] if words[0].terminal == "DET" else None
        adjectives = [word for word in words if word.terminal == "ADJ"]
        noun = words[-1]
        self.adjective_order(adjectives, noun.text)
        text = " ".join(word.text for word in words)
        if determiner is None:  # a bare noun: fine for plurals ("dogs bark"), not for "dog barks"
            if "pl" not in noun.number:
                raise SentenceRejected(f"article: singular noun '{noun.text}' needs a determiner (a, the, ...)")
            number = PLURAL
        else:
            if determiner.text in ("a", "an"):
                expected = article_for(words[1].text)
                if determiner.text != expected:
                    raise SentenceRejected(f"article: '{determiner.text}' before '{words[1].text}'")
            number = determiner.number & noun.number
            if not number:
                raise SentenceRejected(f"agreement: '{determiner.text}' with "
                                       f"{_number_word(noun.number)} noun '{noun.text}'")
        phrase = _Phrase(text, number, noun.kind)
        for child in np.children:
            if isinstance(child, Tree) and child.data == "pp":
                self.prepositional_phrase(child, depth)
            elif isinstance(child, Tree):  # a relative clause describing this noun
                self.relative_clause(child, phrase, depth + 1)
        return phrase

    def adjective_order(self, adjectives: list[Word], noun: str) -> None:
        """Each adjective's category must come later in ADJECTIVE_ORDER than the one before it."""
        for before, after in pairwise(adjectives):
            rank_before, rank_after = (ADJECTIVE_ORDER.index(a.category) for a in (before, after))
            if rank_before == rank_after:
                raise SentenceRejected(f"adjectives: '{before.text}' and '{after.text}' are both "
                                       f"{before.category} adjectives")
            if rank_before > rank_after:
                raise SentenceRejected(f"adjective order: '{before.text}' ({before.category}) before "
                                       f"'{after.text}' ({after.category})")
        if len(adjectives) > MAX_ADJECTIVES:
            raise SentenceRejected(f"too many adjectives: {len(adjectives)} before '{noun}' "
                                   f"(at most {MAX_ADJECTIVES})")

    def relative_clause(self, clause: Tree, head: _Phrase, depth: int) -> None:
        """`head` is the noun phrase the clause describes: the dog [that the cats chase]."""
        if depth > MAX_RELATIVE_DEPTH:
            raise SentenceRejected(f"relative clauses nested {depth} deep (at most {MAX_RELATIVE_DEPTH})")
        relative_pronoun, *rest = clause.children
        if relative_pronoun == "who" and head.kind not in PEOPLE:
            raise SentenceRejected(f"relative pronoun: 'who' after '{head.text}', which is not a person")
        if clause.data == "subject_relative":  # the head is the clause's subject
            self.verb_phrase(rest[0], head, depth)
        else:  # object_relative: the head is the object of the clause's verb
            inner_subject_np, verb, *pp = rest
            self.agree(self.noun_phrase(inner_subject_np, "subject", depth), verb)
            for phrase in pp:
                self.prepositional_phrase(phrase, depth)

    def verb_phrase(self, vp: Tree, subject: _Phrase, depth: int, after_aux: Token | None = None) -> None:
        """Check `vp` with its subject; after "does"/"do" the verb must be in its base form."""
        verb, *rest = vp.children
        if after_aux is None:
            self.agree(subject, verb)
        elif vp.data == "copular":
            raise SentenceRejected(f"verb form: '{verb}' cannot follow '{after_aux}'")
        elif WORDS[verb].number != PLURAL:  # the base form is the one spelled like the plural
            raise SentenceRejected(f"verb form: '{verb}' after '{after_aux}' should be '{WORDS[verb].base}'")
        for child in rest:
            if isinstance(child, Token):  # an adverb: nothing to agree with
                continue
            if child.data == "np":
                self.noun_phrase(child, "object", depth)
            elif child.data == "pp":
                self.prepositional_phrase(child, depth)
            elif child.data == "predicate":
                self.predicate(child, depth)

    def prepositional_phrase(self, pp: Tree, depth: int) -> None:
        self.noun_phrase(pp.children[1], "object", depth)

    def predicate(self, predicate: Tree, depth: int) -> None:
        (child,) = predicate.children
        if isinstance(child, Tree):
            self.prepositional_phrase(child, depth)

    def agree(self, subject: _Phrase, verb: Token) -> None:
        """Subject-verb agreement: the verb's numbers must include the subject's."""
        verb_number = WORDS[verb].number
        if not subject.number & verb_number:
            raise SentenceRejected(f"agreement: {_number_word(subject.number)} subject '{subject.text}' "
                                   f"with {_number_word(verb_number)} verb '{verb}'")


def _role_article(role: str) -> str:
    return "a subject" if role == "subject" else "an object"


def render_report(report: CheckReport, max_examples: int = 5):
    """A rich renderable for the terminal: the accepted share, the counts, and the first rejections."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    documents = f"{report.documents} document{'s' if report.documents != 1 else ''}"
    cut_off = f"; {report.incomplete} cut off, not counted" if report.incomplete else ""
    headline = Text.assemble(
        ("grammatical: ", "bold"),
        (f"{report.share:.1%}", "bold green" if report.share >= 0.9 else "bold yellow"),
        f"  ({report.accepted} of {report.total} sentences in {documents}{cut_off})",
    )
    if not report.rejected or max_examples <= 0:
        return headline
    table = Table(title=f"first {min(max_examples, len(report.rejected))} of {len(report.rejected)} rejected",
                  show_lines=False, title_justify="left")
    table.add_column("doc", justify="right", style="dim")
    table.add_column("sentence")
    table.add_column("why not", style="red")
    for rejection in report.rejected[:max_examples]:
        # Text, not str: a sentence such as "The dog [/] runs." is text to show, never rich markup
        table.add_row(str(rejection.document), Text(rejection.sentence), Text(rejection.reason))
    return Group(headline, table)
