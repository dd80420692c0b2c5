"""Write stories in the built-in grammar: a random walk through the rules, driven by one seeded RNG.

A story is 2-6 sentences about a small cast. The first sentence usually introduces someone
("There is a shy little owl in the forest."); later sentences talk about them again, by name, as
"the owl", or as a pronoun ("It sees the mice that hide under the bridge."). Pronouns are only used
for someone introduced in an *earlier* sentence, which is exactly what `check.py` verifies.

Every choice comes from the `random.Random` passed in, never the global RNG, so a seed fixes the
corpus byte for byte:

    >>> generate_corpus(200, seed=0) == generate_corpus(200, seed=0)
    True

Words come from `lexicon.py`. The generator adds the semantics that the checker does not judge
(dogs run, boxes do not; you eat cakes, not castles) so the stories read as stories.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from minitx.corpus.lexicon import (
    ADJECTIVE_ORDER,
    ADJECTIVES,
    ADVERBS,
    ANIMAL,
    ANIMATE,
    FOOD,
    INTRANSITIVE_VERBS,
    MAX_RELATIVE_DEPTH,
    MOTION_PREPOSITIONS,
    NAMES,
    NOUNS,
    OBJECTS,
    OPENERS,
    PEOPLE,
    PLACE,
    PLACE_PREPOSITIONS,
    PRONOUNS,
    THING,
    TRANSITIVE_VERBS,
    Noun,
    article_for,
    pronoun_for,
    third_person,
)
from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN

#: What each transitive verb can have as its object (the default: someone or something you can hold).
OBJECT_KINDS: dict[str, frozenset[str]] = {
    "eat": frozenset({FOOD}),
    "climb": frozenset({PLACE}),
    "visit": frozenset({PLACE}) | PEOPLE,
    "open": frozenset({THING}),
    "fix": frozenset({THING}),
    "paint": frozenset({THING, PLACE}),
    **{verb: ANIMATE for verb in "chase follow help hug kiss meet call".split()},
}
DEFAULT_OBJECT_KINDS = ANIMATE | OBJECTS
#: Adjective categories that make sense for each kind of noun ("a wooden box", not "a wooden girl").
ADJECTIVE_CATEGORIES: dict[str, list[str]] = {
    **{kind: ["opinion", "size", "age"] for kind in PEOPLE},
    ANIMAL: ["opinion", "size", "age", "colour"],
    THING: ADJECTIVE_ORDER,
    FOOD: ["opinion", "size", "colour"],
    PLACE: ["opinion", "size", "age", "colour"],
}
_SUBJECT_PRONOUN_TO_OBJECT = {base: form for form, (base, cases) in PRONOUNS.items() if "object" in cases}


@dataclass
class Phrase:
    """A noun phrase as written, with what the verb after it needs to know."""

    words: list[str]
    number: str  # "sg" or "pl"
    kind: str


@dataclass(frozen=True)
class Character:
    """Someone or something the story has mentioned, so later sentences can return to it."""

    noun: Noun | None  # None for a named character
    name: str | None
    kind: str
    number: str

    def pronoun(self) -> str | None:
        return pronoun_for(self.kind, self.number)


class StoryWriter:
    """Writes one story; `known` holds the characters of finished sentences (pronoun antecedents)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.known: list[Character] = []
        self.introduced: list[Character] = []  # characters of the sentence being written
        self.hero: Character | None = None

    def story(self) -> str:
        sentences = []
        for index in range(self.rng.randint(2, 6)):
            sentences.append(self.sentence(first=index == 0))
            self.known += self.introduced
            self.introduced = []
        return " ".join(sentences)

    # -- sentences --------------------------------------------------------------------------
    def sentence(self, first: bool) -> str:
        """A "there is" sentence (a third of first sentences), a do- or be-question (later ones
        only), or else a statement, perhaps after an opener ("Then, ..."), ending in "." or "!"."""
        roll = self.rng.random()
        if roll < (0.35 if first else 0.06):
            words, mark = self.existential(), "."
        elif not first and roll < 0.14:
            subject = self.subject()
            words, mark = [_form_of("do", subject.number), *subject.words, *self.verb_phrase(subject, base=True)], "?"
        elif not first and roll < 0.2:
            subject = self.subject()
            words, mark = [_form_of("be", subject.number), *subject.words, *self.predicate(subject)], "?"
        else:
            subject = self.subject()
            words = [*self.opener(), *subject.words, *self.verb_phrase(subject)]
            mark = "!" if self.rng.random() < 0.05 else "."
        words[0] = words[0][0].upper() + words[0][1:]
        return " ".join(words).replace(" ,", ",") + mark

    def existential(self) -> list[str]:
        """There is a little owl in the forest."""
        thing = self.noun_phrase(self.rng.choice([ANIMATE, ANIMATE, OBJECTS]), "object", relatives_left=1,
                                 allow_pronoun=False, allow_name=False, determiners="indefinite")
        place = self.prepositional_phrase("place") if self.rng.random() < 0.7 else []
        return ["there", _form_of("be", thing.number), *thing.words, *place]

    def opener(self) -> list[str]:
        roll = self.rng.random()
        if roll < 0.12:
            return [self.rng.choice(OPENERS), ","]
        if roll < 0.18:
            return [*self.prepositional_phrase("place"), ","]
        return []

    def subject(self) -> Phrase:
        """Usually the story's hero again; otherwise someone new (who may become the hero)."""
        hero = self.hero
        if hero is not None and self.rng.random() < 0.55:
            can_use_pronoun = hero in self.known and hero.pronoun() is not None
            return self.mention(hero, "subject", pronoun=can_use_pronoun and self.rng.random() < 0.5)
        return self.noun_phrase(ANIMATE, "subject", relatives_left=MAX_RELATIVE_DEPTH)

    # -- phrases ----------------------------------------------------------------------------
    def noun_phrase(self, kinds: frozenset[str], role: str, relatives_left: int, allow_pronoun: bool = True,
                    allow_name: bool = True, simple: bool = False, determiners: str = "any",
                    avoid_pronoun: str | None = None) -> Phrase:
        """A noun phrase for a noun of one of `kinds`.

        `simple`: no phrase of its own (inside a PP). `determiners`: "any", "indefinite" (after
        "there is") or "place" (mostly "the", singular: "in the garden"). `avoid_pronoun`: the
        subject's pronoun, so "Lily kisses her" does not make Lily kiss herself.
        """
        rng = self.rng
        if allow_pronoun and rng.random() < 0.25:
            earlier = [c for c in self.known if c.kind in kinds and c.pronoun() not in (None, avoid_pronoun)]
            if earlier:
                return self.mention(rng.choice(earlier), role, pronoun=True)
        named_kinds = [kind for kind in NAMES if kind in kinds]
        if allow_name and named_kinds and rng.random() < 0.2:
            kind = rng.choice(named_kinds)
            character = Character(None, rng.choice(NAMES[kind]), kind, "sg")
            self.introduce(character)
            return self.mention(character, role)

        noun = rng.choice([noun for noun in NOUNS if noun.kind in kinds])
        number = "sg" if rng.random() < (0.9 if determiners == "place" else 0.65) else "pl"
        form = noun.singular if number == "sg" else noun.plural
        words = [*self.adjectives(noun.kind), form]
        determiner = self.determiner(number, words[0], determiners)
        if determiner:
            words.insert(0, determiner)
        phrase = Phrase(words, number, noun.kind)
        self.introduce(Character(noun, None, noun.kind, number))
        if simple:
            return phrase
        if relatives_left > 0 and rng.random() < (0.3 if relatives_left < MAX_RELATIVE_DEPTH else 0.2):
            words += self.relative_clause(phrase, relatives_left - 1)
        elif rng.random() < 0.1:
            words += self.prepositional_phrase("place" if noun.kind in ANIMATE or rng.random() < 0.5 else "with")
        return phrase

    def mention(self, character: Character, role: str, pronoun: bool = False) -> Phrase:
        """Refer to a known character: by pronoun ("she"/"her"), by name, or as "the dog"."""
        if pronoun:
            subject_form = character.pronoun()
            word = subject_form if role == "subject" else _SUBJECT_PRONOUN_TO_OBJECT[subject_form]
            return Phrase([word], character.number, character.kind)
        if character.name is not None:
            return Phrase([character.name], "sg", character.kind)
        noun = character.noun
        return Phrase(["the", noun.singular if character.number == "sg" else noun.plural],
                      character.number, character.kind)

    def introduce(self, character: Character) -> None:
        self.introduced.append(character)
        if self.hero is None and character.kind in ANIMATE:
            self.hero = character

    def adjectives(self, kind: str) -> list[str]:
        """0-4 adjectives of different categories, in English order: lovely little old red."""
        count = self.rng.choices([0, 1, 2, 3, 4], weights=[55, 26, 12, 5, 2])[0]
        allowed = ADJECTIVE_CATEGORIES[kind]
        categories = sorted(self.rng.sample(allowed, min(count, len(allowed))), key=ADJECTIVE_ORDER.index)
        return [self.rng.choice(ADJECTIVES[category]) for category in categories]

    def determiner(self, number: str, next_word: str, style: str = "any") -> str | None:
        """a/an (by the next word's sound), the, this, every; for plurals the, some, two, these, or none."""
        rng = self.rng
        if number == "sg":
            options, weights = {
                "any": (["the", "a", "this", "every"], [55, 32, 8, 5]),
                "indefinite": (["a"], [1]),
                "place": (["the", "a", "this"], [75, 20, 5]),
            }[style]
            choice = rng.choices(options, weights)[0]
            return article_for(next_word) if choice == "a" else choice
        options, weights = {
            "any": (["the", "some", "two", "three", "four", "these", None], [50, 15, 8, 6, 4, 7, 10]),
            "indefinite": (["some", "two", "three", "four", None], [35, 20, 15, 10, 20]),
            "place": (["the", "some", None], [70, 10, 20]),
        }[style]
        return rng.choices(options, weights)[0]

    def relative_clause(self, head: Phrase, relatives_left: int) -> list[str]:
        """who/that + a verb phrase (the head is the subject), or + subject + verb (the head is the object)."""
        rng = self.rng
        pronoun = "who" if head.kind in PEOPLE and rng.random() < 0.7 else "that"
        verbs_taking_head = [v for v in TRANSITIVE_VERBS if head.kind in OBJECT_KINDS.get(v, DEFAULT_OBJECT_KINDS)]
        if head.kind in ANIMATE and rng.random() < 0.6 or not verbs_taking_head:
            return [pronoun, *self.verb_phrase(head, relatives_left=relatives_left)]
        inner = self.noun_phrase(ANIMATE, "subject", relatives_left=relatives_left if rng.random() < 0.3 else 0)
        verb = rng.choice(verbs_taking_head)
        return [pronoun, *inner.words, _verb_form(verb, inner.number)]

    def verb_phrase(self, subject: Phrase, base: bool = False, relatives_left: int = MAX_RELATIVE_DEPTH) -> list[str]:
        """What the subject does or is. `base`: the verb form after does/do ("Does the dog *run*?")."""
        rng = self.rng
        roll = rng.random() if subject.kind in ANIMATE else 1.0  # things only *are* something
        number = "pl" if base else subject.number
        if roll < 0.35:
            words = [_verb_form(rng.choice(INTRANSITIVE_VERBS), number)]
            if rng.random() < 0.2:
                words.append(rng.choice(ADVERBS))
            if rng.random() < 0.35:
                words += self.prepositional_phrase("place" if rng.random() < 0.7 else "motion")
            return words
        if roll < 0.85 or base:
            verb = rng.choice(TRANSITIVE_VERBS)
            kinds = OBJECT_KINDS.get(verb, DEFAULT_OBJECT_KINDS)
            avoid = pronoun_for(subject.kind, subject.number)
            obj = self.noun_phrase(kinds, "object", relatives_left, avoid_pronoun=avoid)
            words = [_verb_form(verb, number), *obj.words]
            if rng.random() < 0.12:
                words += self.prepositional_phrase("place" if rng.random() < 0.7 else "with")
            return words
        return [_form_of("be", number), *self.predicate(subject)]

    def predicate(self, subject: Phrase) -> list[str]:
        """happy / red / in the garden -- after is/are."""
        if self.rng.random() < 0.35:
            return self.prepositional_phrase("place")
        category = self.rng.choice(ADJECTIVE_CATEGORIES[subject.kind])
        return [self.rng.choice(ADJECTIVES[category])]

    def prepositional_phrase(self, sense: str) -> list[str]:
        """`sense` "place": under the old bridge; "motion": into the forest; "with": with a red ball, with Mia."""
        if sense == "with":
            kinds, preposition, determiners = ANIMATE | OBJECTS, "with", "any"
        else:
            kinds = frozenset({PLACE}) if self.rng.random() < 0.8 else OBJECTS
            preposition = self.rng.choice(PLACE_PREPOSITIONS if sense == "place" else MOTION_PREPOSITIONS)
            determiners = "place"
        phrase = self.noun_phrase(kinds, "object", 0, allow_pronoun=False, simple=True, determiners=determiners)
        return [preposition, *phrase.words]


def _verb_form(verb: str, number: str) -> str:
    return third_person(verb) if number == "sg" else verb


def _form_of(auxiliary: str, number: str) -> str:
    """be -> is/are, do -> does/do, by the subject's number."""
    return {("be", "sg"): "is", ("be", "pl"): "are", ("do", "sg"): "does", ("do", "pl"): "do"}[auxiliary, number]


def generate_story(rng: random.Random) -> str:
    """One story: 2-6 sentences separated by single spaces, no document marker."""
    return StoryWriter(rng).story()


def generate_corpus(n_bytes: int, seed: int) -> str:
    """`"<|doc|>" + story + "\\n"`, repeated until the text is at least `n_bytes` long (UTF-8 bytes).

    Whole stories only, so the result is a little longer than `n_bytes`, and never empty.
    """
    if n_bytes < 1:
        raise UserError(f"the corpus size must be at least 1 byte, not {n_bytes}; pass e.g. --bytes 1000000")
    rng = random.Random(seed)
    documents, size = [], 0
    while size < n_bytes:
        document = f"{DOC_TOKEN}{generate_story(rng)}\n"
        documents.append(document)
        size += len(document.encode("utf-8"))
    return "".join(documents)
