"""The words of the story grammar, and what each word is: the one source of truth.

Both halves of the corpus read this module: `generate.py` picks words from the lists below, and
`check.py` looks every word of a sentence up in `WORDS` to learn its part of speech (the lark
terminal the parser sees) and its features (number, gender, adjective category, pronoun case).
If a word is added here, the generator can use it and the checker accepts it, with no second list
to keep in step.

Features are small sets, so agreement is set intersection (unification in miniature):

    WORDS["dogs"].number == {"pl"}          # plural noun
    WORDS["sheep"].number == {"sg", "pl"}   # either; "the sheep" agrees with "runs" and "run"
    WORDS["a"].number & WORDS["dogs"].number == set()   # "a dogs": no number fits both

Every word form belongs to exactly one terminal (no homographs such as the noun "fly" next to the
verb "flies"), so the lexer never has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass

SINGULAR = frozenset({"sg"})
PLURAL = frozenset({"pl"})
EITHER_NUMBER = SINGULAR | PLURAL

#: Kinds of thing a noun or name can be. They decide pronouns (he/she/it/they), "who" versus
#: "that", and which verbs the generator lets them do (dogs run; boxes do not).
MALE, FEMALE, PERSON, ANIMAL, THING, FOOD, PLACE = "male", "female", "person", "animal", "thing", "food", "place"
PEOPLE = frozenset({MALE, FEMALE, PERSON})
ANIMATE = PEOPLE | {ANIMAL}
OBJECTS = frozenset({THING, FOOD})


@dataclass(frozen=True)
class Noun:
    """A noun with its two forms; `plural == singular` for nouns like "sheep"."""

    singular: str
    plural: str
    kind: str


def _nouns(kind: str, words: str) -> list[Noun]:
    """Parse "dog cat mouse/mice" into nouns: regular plurals get -s, -es or -ies; a slash gives one."""
    nouns = []
    for item in words.split():
        singular, _, plural = item.partition("/")
        nouns.append(Noun(singular, plural or _regular_plural(singular), kind))
    return nouns


def _regular_plural(word: str) -> str:
    """dog -> dogs, box -> boxes, puppy -> puppies (the same rule makes verbs' -s forms)."""
    if word.endswith(("s", "sh", "ch", "x", "z", "o")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


NOUNS: list[Noun] = [
    *_nouns(MALE, "boy man/men king prince father brother uncle"),
    *_nouns(FEMALE, "girl woman/women queen princess mother sister aunt"),
    *_nouns(PERSON, "child/children baby teacher farmer friend doctor baker sailor"),
    *_nouns(
        ANIMAL,
        "dog cat mouse/mice goose/geese sheep/sheep fish/fish fox wolf/wolves bird rabbit puppy "
        "kitten duck horse cow pig frog bear owl elephant unicorn tiger lion monkey hen ox/oxen "
        "snail turtle dragon squirrel",
    ),
    *_nouns(
        THING,
        "ball box hat kite boat car book cup bell drum key coat shoe umbrella toy flower leaf/leaves "
        "star basket bag feather shell stone ribbon blanket lamp",
    ),
    *_nouns(FOOD, "apple egg cake cookie sandwich carrot pie banana"),
    *_nouns(PLACE, "garden park house forest river hill pond kitchen school field castle island bridge"),
]

#: Verbs by their base form; the third person singular is made by `third_person`.
INTRANSITIVE_VERBS = (
    "run jump sleep sing laugh swim play cry fly hide dance wait go smile sit walk rest shout dream hop"
).split()
TRANSITIVE_VERBS = (
    "see like chase find have watch catch want love help hold carry push kiss fix follow hug meet "
    "paint eat climb visit call miss wash touch pull open drop"
).split()
IRREGULAR_THIRD_PERSON = {"have": "has", "go": "goes"}


def third_person(verb: str) -> str:
    """The -s form used with a singular subject: run -> runs, watch -> watches, cry -> cries, have -> has."""
    return IRREGULAR_THIRD_PERSON.get(verb) or _regular_plural(verb)


#: Adjective categories in the order English puts them before a noun: opinion, size, age, shape,
#: colour, material ("a lovely old red box", "a little round wooden box"). A phrase has at most
#: MAX_ADJECTIVES of them, each from a different category.
ADJECTIVES: dict[str, list[str]] = {
    "opinion": (
        "lovely nice good bad pretty funny silly kind brave clever happy sad sleepy hungry grumpy "
        "gentle shy honest lucky naughty cheerful wonderful beautiful ugly angry awful useful"
    ).split(),
    "size": "big little small tiny huge tall short enormous".split(),
    "age": "old young new ancient".split(),
    "shape": "round square flat pointy".split(),
    "colour": "red blue green yellow orange pink purple brown black white grey golden silver".split(),
    "material": "wooden woollen plastic leather paper".split(),
}
ADJECTIVE_ORDER = list(ADJECTIVES)  # opinion < size < age < shape < colour < material
MAX_ADJECTIVES = 4

NAMES: dict[str, list[str]] = {
    MALE: "Tom Ben Sam Max Leo Jack Oscar Finn Hugo Noah Eli Omar Ravi Kofi Yusuf".split(),
    FEMALE: "Mia Lily Anna Zoe Ella Ivy Rosa Nora Amara Lucy Maya Sofia Aisha Emma Hana".split(),
}

#: Determiners and the numbers they allow: "a dog", "these dogs", "the dog(s)".
DETERMINERS: dict[str, frozenset[str]] = {
    "a": SINGULAR,
    "an": SINGULAR,
    "the": EITHER_NUMBER,
    "this": SINGULAR,
    "every": SINGULAR,
    "these": PLURAL,
    "some": PLURAL,
    "two": PLURAL,
    "three": PLURAL,
    "four": PLURAL,
}

#: Personal pronouns: form -> (its subject form, the cases it may fill). The subject form names
#: the pronoun: "him" is "he" as an object, "it" serves both cases.
PRONOUNS: dict[str, tuple[str, frozenset[str]]] = {
    "he": ("he", frozenset({"subject"})),
    "him": ("he", frozenset({"object"})),
    "she": ("she", frozenset({"subject"})),
    "her": ("she", frozenset({"object"})),
    "it": ("it", frozenset({"subject", "object"})),
    "they": ("they", frozenset({"subject"})),
    "them": ("they", frozenset({"object"})),
}
PRONOUN_KIND = {"he": MALE, "she": FEMALE, "it": THING, "they": ""}


def pronoun_for(kind: str, number: str) -> str | None:
    """The subject pronoun that can point back to a noun of this kind and number, if any.

    pronoun_for("female", "sg") == "she"; pronoun_for("animal", "sg") == "it";
    pronoun_for("thing", "pl") == "they"; pronoun_for("person", "sg") is None ("the child":
    neither "he" nor "she" is safe, so the corpus never refers back to it with a pronoun).
    """
    if number == "pl":
        return "they"
    if kind == MALE:
        return "he"
    if kind == FEMALE:
        return "she"
    return None if kind == PERSON else "it"


#: Prepositions of place ("the cat is under the bridge"), of movement ("the cat runs into the
#: house"), and "with".
PLACE_PREPOSITIONS = "in on under near behind by beside".split()
MOTION_PREPOSITIONS = "into over".split()
PREPOSITIONS = [*PLACE_PREPOSITIONS, *MOTION_PREPOSITIONS, "with"]
ADVERBS = "happily slowly quickly quietly loudly sadly softly gladly".split()
#: Sentence openers; each is followed by a comma ("Then, the dog runs.").
OPENERS = "then later soon suddenly today finally afterwards meanwhile now".split()
RELATIVE_PRONOUNS = ["who", "that"]  # "who" only after people
MAX_RELATIVE_DEPTH = 2

#: Words spelt with a vowel letter but said with a consonant sound, and the reverse ("an honest").
CONSONANT_SOUND = {"unicorn", "unicorns", "useful", "one"}
VOWEL_SOUND = {"honest", "hour"}


def starts_with_vowel_sound(word: str) -> bool:
    """Whether `word` takes "an": an old cat, an honest king, a little owl, a unicorn."""
    word = word.lower()
    if word in VOWEL_SOUND:
        return True
    return word[0] in "aeiou" and word not in CONSONANT_SOUND


def article_for(word: str) -> str:
    """ "a" or "an" for the word that follows it: article_for("owl") == "an"."""
    return "an" if starts_with_vowel_sound(word) else "a"


@dataclass(frozen=True)
class Word:
    """One word form and everything the checker needs to know about it.

    `terminal` is the part of speech the parser sees (see story.lark); the rest are features.
    For verbs, `number` says which subjects the form agrees with: "runs" {sg}, "run" {pl}; the
    base form is the plural one, which is what follows "does" in a question.
    """

    text: str
    terminal: str
    number: frozenset[str] = frozenset()
    kind: str = ""  # nouns, names, pronouns
    category: str = ""  # adjectives: "opinion", "size", ...
    cases: frozenset[str] = frozenset()  # pronouns: {"subject"}, {"object"} or both
    base: str = ""  # verbs: the base form ("run" for "runs"); nouns: the singular; pronouns: "he" for "him"


def _build_index() -> dict[str, Word]:
    """Map every word form to its `Word`; refuses a form that would belong to two terminals."""
    entries: list[Word] = []
    for noun in NOUNS:
        if noun.plural == noun.singular:
            entries.append(Word(noun.singular, "NOUN", EITHER_NUMBER, noun.kind, base=noun.singular))
        else:
            entries.append(Word(noun.singular, "NOUN", SINGULAR, noun.kind, base=noun.singular))
            entries.append(Word(noun.plural, "NOUN", PLURAL, noun.kind, base=noun.singular))
    for terminal, verbs in (("VERB_INTR", INTRANSITIVE_VERBS), ("VERB_TR", TRANSITIVE_VERBS)):
        for verb in verbs:
            entries.append(Word(third_person(verb), terminal, SINGULAR, base=verb))
            entries.append(Word(verb, terminal, PLURAL, base=verb))
    for category, adjectives in ADJECTIVES.items():
        entries += [Word(adjective, "ADJ", category=category) for adjective in adjectives]
    for kind, names in NAMES.items():
        entries += [Word(name, "NAME", SINGULAR, kind) for name in names]
    entries += [Word(det, "DET", number) for det, number in DETERMINERS.items()]
    for pronoun, (subject_form, cases) in PRONOUNS.items():
        number = PLURAL if subject_form == "they" else SINGULAR
        entries.append(Word(pronoun, "PRONOUN", number, PRONOUN_KIND[subject_form], cases=cases, base=subject_form))
    entries += [Word(prep, "PREP") for prep in PREPOSITIONS]
    entries += [Word(adverb, "ADV") for adverb in ADVERBS]
    entries += [Word(opener, "OPENER") for opener in OPENERS]
    entries += [Word(rel, "REL") for rel in RELATIVE_PRONOUNS]
    entries += [Word("is", "BE", SINGULAR), Word("are", "BE", PLURAL)]
    entries += [Word("does", "AUX", SINGULAR), Word("do", "AUX", PLURAL), Word("there", "THERE")]
    entries += [Word(mark, "COMMA" if mark == "," else "END") for mark in ",.?!"]

    index: dict[str, Word] = {}
    for entry in entries:
        if entry.text in index:
            raise ValueError(f"lexicon: {entry.text!r} is both {index[entry.text].terminal} and {entry.terminal}")
        index[entry.text] = entry
    return index


#: Every word form of the language -> its `Word` (names keep their capital: "Mia").
WORDS: dict[str, Word] = _build_index()
#: Lower-cased names, to tell "mia" (a name written small) from an unknown word.
NAMES_BY_LOWERCASE = {name.lower(): name for names in NAMES.values() for name in names}
#: The terminals a sentence can contain; story.lark declares exactly these.
TERMINALS = sorted({word.terminal for word in WORDS.values()})


def vocabulary() -> list[str]:
    """All word forms (punctuation excluded), sorted: what a model trained on the corpus can see."""
    return sorted(text for text, word in WORDS.items() if word.terminal not in ("COMMA", "END"))
