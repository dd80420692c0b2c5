"""Is a target sentence grammatical? Read it back with the target lexicon and the rules that wrote it.

`check_target(text, order)` answers (True, "") or (False, reason), checking what the renderer in
`translation.py` guarantees and a model may get wrong:

    words       every word is in the target lexicon, capitals and marks in place ("¿...?", "¡...!", ".")
    agreement   article and adjectives agree with the noun in gender and number ("la perro": no);
                a verb agrees with its subject in number; a predicate adjective with the subject
    adjectives  follow the noun ("la roja pelota": no), stacked ones in mirrored English order
                (material first, opinion last: "una caja de madera roja pequeña")
    verb place  svo: the verb right after the subject (an object pronoun just before it);
                sov: the verb last in every clause

A small backtracking parser tries every reading of the sentence (in sov, "que los perros ve" can be
"that sees the dogs" or "that the dogs see") and accepts if any reading fits every rule; otherwise
the reason comes from the reading that got furthest.

    >>> check_target("La perro corre.", "svo")
    (False, "agreement: 'la' with masculine singular noun 'perro'")
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from minitx.corpus import lexicon as en
from minitx.corpus import target_lexicon as tl

Features = frozenset[tuple[str, str]]  # the (gender, number) pairs a word agrees with
ALL_FEATURES: Features = frozenset((g, n) for g in (tl.MASCULINE, tl.FEMININE) for n in ("sg", "pl"))
_NUMBER_WORD = {"sg": "singular", "pl": "plural"}
_GENDER_WORD = {tl.MASCULINE: "masculine", tl.FEMININE: "feminine"}


@dataclass(frozen=True)
class Unit:
    """One word of the target lexicon, or a fixed group of words ("debajo de", "se esconde", "de madera")."""

    text: str
    kind: str  # DET NOUN ADJ VERB_INTR VERB_TR COPULA LOCATIVE EXISTENTIAL THERE QUESTION REL PREP ADV OPENER
    #            NAME PRONOUN CLITIC
    features: Features = frozenset()
    category: str = ""  # adjectives: opinion, size, ... (for the mirrored order)


def _both_genders(number: str) -> Features:
    return frozenset({(tl.MASCULINE, number), (tl.FEMININE, number)})


@functools.cache
def target_units() -> dict[str, tuple[Unit, ...]]:
    """Every word form (or fixed group) of the target language -> its readings; most have one."""
    units: list[Unit] = []
    for noun in tl.NOUNS.values():
        units += [Unit(noun.singular, "NOUN", frozenset({(noun.gender, "sg")})),
                  Unit(noun.plural, "NOUN", frozenset({(noun.gender, "pl")}))]
    transitive = set(en.TRANSITIVE_VERBS)
    for english, verb in tl.VERBS.items():
        for number in ("sg", "pl"):
            units.append(Unit(" ".join(tl.verb_form(verb, number)), "VERB_TR" if english in transitive else "VERB_INTR",
                              _both_genders(number)))
    for category, adjectives in en.ADJECTIVES.items():
        for adjective in adjectives:
            base = tl.ADJECTIVES[adjective]
            if " " in base:
                units.append(Unit(base, "ADJ", ALL_FEATURES, category))
            else:
                units += [Unit(form, "ADJ", features, category) for form, features in tl.adjective_forms(base).items()]
    for forms in tl.DETERMINERS.values():
        by_form: dict[str, set[tuple[str, str]]] = {}
        for features, form in forms.items():
            by_form.setdefault(form, set()).add(features)
        units += [Unit(form, "DET", frozenset(features)) for form, features in by_form.items()]
    for subject, _, _ in tl.PRONOUNS.values():
        units.append(Unit(subject, "PRONOUN", frozenset({tl.PRONOUN_FEATURES[subject]})))
    for clitic in ("lo", "la", "los", "las"):
        units.append(Unit(clitic, "CLITIC"))
    for kind, names in en.NAMES.items():
        gender = tl.FEMININE if kind == en.FEMALE else tl.MASCULINE
        units += [Unit(name, "NAME", frozenset({(gender, "sg")})) for name in names]
    for singular, kind in ((tl.COPULA, "COPULA"), (tl.LOCATIVE_COPULA, "LOCATIVE")):
        plural = tl.PLURAL_COPULA[singular]
        units += [Unit(singular, kind, _both_genders("sg")), Unit(plural, kind, _both_genders("pl"))]
    units += [Unit(tl.EXISTENTIAL, "EXISTENTIAL", ALL_FEATURES), Unit(tl.THERE, "THERE"),
              Unit(tl.QUESTION, "QUESTION"), Unit(tl.RELATIVE, "REL")]
    for kind, table in (("PREP", tl.PREPOSITIONS), ("ADV", tl.ADVERBS), ("OPENER", tl.OPENERS)):
        units += [Unit(word, kind) for word in table.values()]

    index: dict[str, list[Unit]] = {}
    for unit in units:
        readings = index.setdefault(unit.text, [])
        if unit not in readings:
            readings.append(unit)
    homographs = {"la", "los", "las"}  # article or object pronoun; the next word tells which
    for text, readings in index.items():
        if len(readings) > 1 and text not in homographs:
            raise ValueError(f"target lexicon: {text!r} has {len(readings)} readings: {readings}")
    return {text: tuple(readings) for text, readings in index.items()}


def _longest_group() -> int:
    return max(len(text.split()) for text in target_units())


def _describe(features: Features) -> str:
    """{("f", "pl")} -> "feminine plural"; both genders -> "plural"."""
    genders = {g for g, _ in features}
    numbers = {n for _, n in features}
    number = " or ".join(_NUMBER_WORD[n] for n in sorted(numbers, reverse=True))
    return number if len(genders) > 1 else f"{_GENDER_WORD[genders.pop()]} {number}"


class TargetRejected(Exception):
    """A target sentence breaks a rule; the message is the reason."""


def check_target(text: str, order: str = "svo") -> tuple[bool, str]:
    """(True, "") if `text` is one grammatical target sentence in word order `order`, else (False, reason)."""
    try:
        units, commas, mark = _read(text)
    except TargetRejected as rejected:
        return False, str(rejected)
    reason = _Parser(units, commas, mark, verb_last=order == "sov").parse()
    if reason is None:
        return True, ""
    other = "svo" if order == "sov" else "sov"
    if _Parser(units, commas, mark, verb_last=other == "sov").parse() is None:
        place = {"sov": "last in each clause", "svo": "right after its subject"}
        return False, f"verb position: the verb stands {place[other]} ({other} order); {order} puts it {place[order]}"
    return False, reason


def _read(text: str) -> tuple[list[tuple[Unit, ...]], set[int], str]:
    """Marks off, words grouped into units: (the readings of each unit, units followed by a comma, final mark)."""
    words = text.split()
    if not words:
        raise TargetRejected("empty sentence")
    mark = words[-1][-1]
    if mark not in ".?!":
        raise TargetRejected(f"punctuation: the sentence ends with '.', '?' or '!', not '{words[-1]}'")
    words[-1] = words[-1][:-1]
    opening = {"?": "¿", "!": "¡"}.get(mark, "")
    if opening and not words[0].startswith(opening):
        raise TargetRejected(f"punctuation: a sentence ending in '{mark}' starts with '{opening}'")
    words[0] = words[0].removeprefix(opening)
    if words[0][:1] in ("¿", "¡"):
        raise TargetRejected(f"punctuation: '{words[0][0]}' at the start needs its pair at the end, not '{mark}'")
    comma_after_word = set()
    for index, word in enumerate(words):
        if word.endswith(","):
            comma_after_word.add(index)
            words[index] = word[:-1]
        if not words[index] or any(c in ",.?!¿¡" for c in words[index]):
            raise TargetRejected(f"punctuation: misplaced mark in '{word}'")
    known = target_units()
    units, commas, position = [], set(), 0
    while position < len(words):
        for size in range(min(_longest_group(), len(words) - position), 0, -1):
            group = words[position:position + size]
            readings = known.get(" ".join(group)) or (known.get(" ".join(group).lower()) if position == 0 else None)
            if readings:
                break
        else:
            raise TargetRejected(f"unknown word '{words[position]}'")
        _check_capitals(group, readings, first=position == 0)
        if any(position + k in comma_after_word for k in range(size - 1)):
            raise TargetRejected(f"punctuation: a comma inside '{' '.join(group)}'")
        if position + size - 1 in comma_after_word:
            commas.add(len(units))
        units.append(readings)
        position += size
    return units, commas, mark


def _check_capitals(group: list[str], readings: tuple[Unit, ...], first: bool) -> None:
    expected = readings[0].text
    if first:
        expected = expected[0].upper() + expected[1:]
    if " ".join(group) != expected:
        where = "the first word of a sentence" if first else "a word inside a sentence"
        raise TargetRejected(f"capitalisation: '{' '.join(group)}' should be '{expected}' ({where})")


Parses = Iterator[tuple[int, Features, str]]  # (where the phrase ends, its features, its text)


class _Parser:
    """Recursive descent over units with backtracking: each rule yields every way it can end."""

    def __init__(self, units: list[tuple[Unit, ...]], commas: set[int], mark: str, verb_last: bool) -> None:
        self.units, self.commas, self.mark, self.verb_last = units, commas, mark, verb_last
        self.failure: tuple[int, int, str] = (-1, -1, "")

    def fail(self, at: int, reason: str, priority: int = 1) -> None:
        """Remember why a reading failed. A broken rule (priority 1, 2) explains better than a reading that
        found no structure (0); among equals, the reading that got furthest explains."""
        if (priority, at) > self.failure[:2]:
            self.failure = (priority, at, reason)

    def has(self, at: int, kind: str) -> bool:
        """Whether the unit at `at` can be read as `kind` (a look-ahead that records no failure)."""
        return at < len(self.units) and any(unit.kind == kind for unit in self.units[at])

    def take(self, at: int, kind: str) -> Unit | None:
        """The unit at `at` read as `kind`, or None (remembered as where this reading stopped)."""
        for unit in self.units[at] if at < len(self.units) else ():
            if unit.kind == kind:
                return unit
        where = f"at '{self.units[at][0].text}'" if at < len(self.units) else "too early"
        self.fail(at, f"not a sentence of the target grammar (it stops {where})", priority=0)
        return None

    def parse(self) -> str | None:
        """None if some reading covers every unit, else the reason."""
        for end in self.sentence(0):
            if end == len(self.units):
                return None
            self.fail(end, f"not a sentence of the target grammar (it stops at '{self.units[end][0].text}')", 0)
        return self.failure[2] or "not a sentence of the target grammar"

    # -- sentences --------------------------------------------------------------------------------
    def sentence(self, at: int) -> Iterator[int]:
        if self.mark == "?":
            if self.commas:
                self.fail(0, "punctuation: a question has no comma")
                return
            if self.take(at, "QUESTION"):
                for after_subject, features, text in self.noun_phrase(at + 1, "subject"):
                    yield from self.verb_phrase(after_subject, features, text)
            yield from self.be_question(at)
            return
        starts = [at]
        if self.commas:
            starts = [end for end in self.opener(at) if self.commas == {end - 1}]
            if not starts:
                self.fail(min(self.commas), "punctuation: a comma only closes an opener ('Entonces,', 'En el parque,')",
                          priority=0)
        for start in starts:
            if self.take(start, "THERE"):
                yield from self.existential(start + 1)
            for after_subject, features, text in self.noun_phrase(start, "subject"):
                yield from self.verb_phrase(after_subject, features, text)

    def opener(self, at: int) -> Iterator[int]:
        if self.take(at, "OPENER"):
            yield at + 1
        yield from self.prepositional_phrase(at)

    def existential(self, at: int) -> Iterator[int]:
        """allí hay NP [PP]  /  sov: allí NP [PP] hay."""
        if not self.verb_last:
            if self.take(at, "EXISTENTIAL"):
                for end, _, _ in self.noun_phrase(at + 1, "object"):
                    yield end
                    yield from self.prepositional_phrase(end)
            return
        for end, _, _ in self.noun_phrase(at, "object"):
            for before_verb in (end, *self.prepositional_phrase(end)):
                if self.take(before_verb, "EXISTENTIAL"):
                    yield before_verb + 1

    def be_question(self, at: int) -> Iterator[int]:
        """¿es NP ADJ? / ¿está NP PP?  -- sov: ¿NP ADJ es? / ¿NP PP está?"""
        if not self.verb_last:
            for kind in ("COPULA", "LOCATIVE"):
                copula = self.take(at, kind)
                if copula:
                    for end, features, text in self.noun_phrase(at + 1, "subject"):
                        if self.agree(features, text, copula, at):
                            yield from self.predicate(end, kind, features, text)
            return
        for end, features, text in self.noun_phrase(at, "subject"):
            yield from self.verb_final_predicate(end, features, text)

    # -- verb phrases -----------------------------------------------------------------------------
    def verb_phrase(self, at: int, subject: Features, subject_text: str) -> Iterator[int]:
        """Everything after the subject: the verb and its complements, in the order's place."""
        if self.verb_last:
            yield from self.verb_final_phrase(at, subject, subject_text)
            return
        clitic = 1 if self.take(at, "CLITIC") else 0
        verb_at = at + clitic
        verb = self.take(verb_at, "VERB_TR") or (None if clitic else self.take(verb_at, "VERB_INTR"))
        if verb is not None and self.agree(subject, subject_text, verb, verb_at):
            after = verb_at + 1
            if verb.kind == "VERB_INTR":
                for end in (after, after + 1) if self.take(after, "ADV") else (after,):
                    yield end
                    yield from self.prepositional_phrase(end)
            elif clitic:
                yield after
                yield from self.prepositional_phrase(after)
            else:
                for end, _, _ in self.noun_phrase(after, "object"):
                    yield end
                    yield from self.prepositional_phrase(end)
        if not clitic:
            for kind in ("COPULA", "LOCATIVE"):
                copula = self.take(at, kind)
                if copula and self.agree(subject, subject_text, copula, at):
                    yield from self.predicate(at + 1, kind, subject, subject_text)

    def verb_final_phrase(self, at: int, subject: Features, subject_text: str) -> Iterator[int]:
        """sov: [object] [adverb] [place] [clitic] verb, or a predicate then es/está."""
        before_verb = [(at, False)]
        for end, _, _ in self.noun_phrase(at, "object"):
            before_verb.append((end, True))
        if self.take(at, "ADV"):
            before_verb.append((at + 1, False))
        for start, has_object in list(before_verb):
            before_verb += [(end, has_object) for end in self.prepositional_phrase(start)]
        for start, has_object in before_verb:
            clitic = 0 if has_object else (1 if self.take(start, "CLITIC") else 0)
            verb = self.take(start + clitic, "VERB_TR" if has_object or clitic else "VERB_INTR")
            if verb is not None and self.agree(subject, subject_text, verb, start + clitic):
                yield start + clitic + 1
        yield from self.verb_final_predicate(at, subject, subject_text)

    def verb_final_predicate(self, at: int, subject: Features, subject_text: str) -> Iterator[int]:
        for kind in ("COPULA", "LOCATIVE"):
            for end in self.predicate(at, kind, subject, subject_text):
                copula = self.take(end, kind)
                if copula and self.agree(subject, subject_text, copula, end):
                    yield end + 1

    def predicate(self, at: int, kind: str, subject: Features, subject_text: str) -> Iterator[int]:
        """After es/son an adjective agreeing with the subject; after está/están a place."""
        if kind == "LOCATIVE":
            yield from self.prepositional_phrase(at)
            return
        adjective = self.take(at, "ADJ")
        if adjective is not None:
            if subject & adjective.features:
                yield at + 1
            else:
                self.fail(at, f"agreement: '{adjective.text}' with {_describe(subject)} subject '{subject_text}'")

    def agree(self, subject: Features, subject_text: str, verb: Unit, at: int) -> bool:
        if subject & verb.features:
            return True
        number = _describe(verb.features)
        self.fail(at, f"agreement: {_describe(subject).split()[-1]} subject '{subject_text}' with {number} "
                      f"verb '{verb.text}'")
        return False

    # -- noun phrases -----------------------------------------------------------------------------
    def noun_phrase(self, at: int, role: str) -> Parses:
        """det noun adjectives [place] [que ...]; a bare plural noun; a name; a subject pronoun.

        `role` "object": no pronoun (an object pronoun is a clitic before the verb); "place": inside a
        prepositional phrase, which takes neither a phrase of its own nor a relative clause.
        """
        name = self.take(at, "NAME")
        if name:
            yield at + 1, name.features, name.text
        pronoun = self.take(at, "PRONOUN")
        if pronoun and role != "object":
            yield at + 1, pronoun.features, pronoun.text
        elif pronoun:
            clitic = next(obj for subject, obj, _ in tl.PRONOUNS.values() if subject == pronoun.text)
            self.fail(at, f"pronoun: an object pronoun goes before its verb, as '{clitic}', not '{pronoun.text}' "
                          "after it")
        determiner = self.take(at, "DET")
        noun_at = at + 1 if determiner else at
        first_non_adjective = noun_at
        while self.has(first_non_adjective, "ADJ"):
            first_non_adjective += 1
        if first_non_adjective > noun_at and self.has(first_non_adjective, "NOUN"):
            self.fail(noun_at, f"adjective order: '{self.units[noun_at][0].text}' before its noun "
                               f"'{self.units[first_non_adjective][0].text}'; adjectives follow the noun", priority=2)
        noun = self.take(noun_at, "NOUN")
        if noun is None:
            return
        features = noun.features
        if determiner is not None and not determiner.features & features:
            self.fail(at, f"agreement: '{determiner.text}' with {_describe(features)} noun '{noun.text}'")
            return
        if determiner is None and all(number == "sg" for _, number in features):
            self.fail(at, f"article: singular noun '{noun.text}' needs a determiner (el, un, ...)")
            return
        text = " ".join(unit.text for unit in (determiner, noun) if unit is not None)
        for end in self.adjectives(noun_at + 1, noun):
            yield end, features, text
            if role != "place":
                for after_pp in self.prepositional_phrase(end):
                    yield after_pp, features, text
                    yield from ((e, features, text) for e in self.relative_clause(after_pp, features, text))
                yield from ((e, features, text) for e in self.relative_clause(end, features, text))

    def adjectives(self, at: int, noun: Unit) -> Iterator[int]:
        """Each run of agreeing adjectives after the noun, in mirrored order; yields every stopping point."""
        yield at
        previous: Unit | None = None
        while (adjective := self.take(at, "ADJ")) is not None:
            if not adjective.features & noun.features:
                self.fail(at, f"agreement: '{adjective.text}' with {_describe(noun.features)} noun '{noun.text}'")
                return
            if previous is not None:
                rank_before, rank_after = (en.ADJECTIVE_ORDER.index(u.category) for u in (previous, adjective))
                if rank_before <= rank_after:
                    self.fail(at, f"adjective order: '{previous.text}' ({previous.category}) before "
                                  f"'{adjective.text}' ({adjective.category}); after the noun the order is "
                                  "mirrored (material first, opinion last)")
                    return
            previous = adjective
            at += 1
            yield at

    def relative_clause(self, at: int, head: Features, head_text: str) -> Iterator[int]:
        """que + what the head does (the head is the subject), or que + subject + verb (the head is the object)."""
        if not self.take(at, "REL"):
            return
        yield from self.verb_phrase(at + 1, head, head_text)
        for end, features, text in self.noun_phrase(at + 1, "subject"):
            if self.verb_last:
                for start in (end, *self.prepositional_phrase(end)):
                    verb = self.take(start, "VERB_TR")
                    if verb is not None and self.agree(features, text, verb, start):
                        yield start + 1
            else:
                verb = self.take(end, "VERB_TR")
                if verb is not None and self.agree(features, text, verb, end):
                    yield end + 1
                    yield from self.prepositional_phrase(end + 1)

    def prepositional_phrase(self, at: int) -> Iterator[int]:
        if self.take(at, "PREP"):
            for end, _, _ in self.noun_phrase(at + 1, "place"):
                yield end
