"""The built-in translation corpus: story sentences rendered into a Spanish-like language, with gold alignments.

Each English sentence of the story grammar is parsed (`grammar.py`), and the parse tree is rendered
rule by rule with the words of `target_lexicon.py`:

    The lovely little red ball is under the old bridge.
    La pelota roja pequeña preciosa está debajo de el puente viejo.          (order="svo")
    La pelota roja pequeña preciosa debajo de el puente viejo está.          (order="sov": verbs last)

Articles and adjectives agree with the noun's gender and number; adjectives follow the noun, stacked
ones in mirrored order; an object pronoun goes right before its verb ("Mia lo ve"). A pair is

    {"source": str, "target": str, "alignment": [[source_word, target_word], ...]}

with word indices over whitespace-split words. Punctuation is attached to the word it touches
("runs.", "Then,", "¿Acaso") and is part of that word; nothing aligns it separately. Every target
word is aligned to exactly one source word and every source word to one or more target words, so
a target word's most-attended source word can reproduce the gold links exactly (AER 0).
The full grammar and lexicon: docs/translation.md. Long pairs: `join` K joins up to K consecutive
sentences into one pair (`join_pairs`), and `length_bucket_pairs` makes held-out sets per source
length, for the length curve of docs/rnn.md.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Collection, Sequence

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from minitx.corpus import target_lexicon as tl
from minitx.corpus.generate import generate_story
from minitx.corpus.grammar import SentenceRejected, look_up, sentence_parser, split_words
from minitx.corpus.lexicon import FEMALE, WORDS
from minitx.errors import UserError

ORDERS = ("svo", "sov")
#: Sentences longer than this many English words are left out; their targets reach 14 words (docs/translation.md).
MAX_SOURCE_WORDS = 10
#: Stories in a row that give no new sentence before `translation_pairs` gives up (the filters are too tight).
_PATIENCE = 2_000
_SENTENCE = re.compile(r"[^.?!]*[.?!]")
#: Added to the seed of the generator that draws how many sentences a joined pair takes (`join`).
_JOIN_SALT = 1_000_003
#: Source lengths in words, (lo, hi]: the buckets of Bahdanau et al.'s length curve (`length_bucket_pairs`).
LENGTH_BUCKETS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60))

#: A target word and the index (in `grammar.split_words` of the English sentence) of the English word it renders.
Rendered = list[tuple[str, int]]


def translate(sentence: str, order: str = "svo") -> dict:
    """One English story sentence (with its final mark) -> a pair with its gold alignment.

    >>> pair = translate("Mia sees the red ball.")
    >>> pair["target"], pair["alignment"]
    ('Mia ve la pelota roja.', [[0, 0], [1, 1], [2, 2], [4, 3], [3, 4]])
    """
    if order not in ORDERS:
        raise UserError(f"unknown word order {order!r}; choose one of {', '.join(ORDERS)}")
    tokens = split_words(sentence)
    rendered, end = _Renderer(order).sentence(_parse(sentence))
    words = _spell(rendered, end, question=end == "?")
    source_word = _source_word_of_token(sentence, tokens)
    alignment = [[source_word[token], target_index] for target_index, (_, token) in enumerate(rendered)]
    return {"source": sentence, "target": " ".join(words), "alignment": alignment}


def adjective_noun_phrases(sentence: str) -> int:
    """How many noun phrases of an English sentence have adjectives before their noun.

    "The red ball is under the old bridge." -> 2; "The ball is red." -> 0 (a predicate, not a phrase).
    """
    return sum(1 for np in _parse(sentence).iter_subtrees() if np.data in ("np", "simple_np")
               and any(leaf.type == "ADJ" for leaf in _leaves(np)))


def _parse(sentence: str) -> Tree:
    """The parse tree of an English story sentence; each leaf's `start_pos` is its index in `split_words`.

    Earley parsing costs milliseconds, and the tree depends only on the parts of speech, so one tree per
    sequence of parts of speech is kept and its leaves are refilled with the sentence's words.
    """
    entries = look_up(split_words(sentence))
    shape = _parse_shape(tuple(entry.terminal for entry in entries))
    return _refill(shape, [entry.text for entry in entries])


@functools.lru_cache(maxsize=50_000)
def _parse_shape(terminals: tuple[str, ...]) -> Tree:
    """The tree of one sequence of parts of speech; SentenceRejected when it is not one sentence of the grammar
    (several joined sentences, or words in an order the grammar has no rule for)."""
    try:
        return sentence_parser().parse([Token(terminal, "", start_pos=i) for i, terminal in enumerate(terminals)])
    except UnexpectedInput:
        raise SentenceRejected("not one sentence of the story grammar") from None


def _refill(tree: Tree, words: list[str]) -> Tree:
    children = [Token(child.type, words[child.start_pos], start_pos=child.start_pos) if isinstance(child, Token)
                else _refill(child, words) for child in tree.children]
    return Tree(tree.data, children)


def translation_pairs(n: int, seed: int, order: str = "svo", max_source_words: int = MAX_SOURCE_WORDS,
                      min_adjective_phrases: int = 0, exclude: Collection[str] = (), join: int = 1,
                      max_words: int | None = None) -> list[dict]:
    """`n` pairs of distinct English sentences from seeded stories, deterministic given all the arguments.

    The English side does not depend on `order`: the svo and sov corpora of one seed have the same sources.
    `min_adjective_phrases` keeps only sentences with at least that many adjective-noun phrases (about 4% of
    sentences have two or more; a test set of those is where an encoder without positions should fail).
    `exclude`: English sentences to leave out (the sources of a training set, when making a test set).

    Long pairs: with `join` K > 1, each pair is 1 to K consecutive sentences of the story stream (how many:
    uniform, from a generator of its own, so `join=1` gives exactly the pairs it always gave), joined by
    `join_pairs`; `max_words` leaves out pairs whose joined source has more words ("trained on <= 30 words").
    Every sentence is used at most once, in one pair; `max_source_words` still caps each sentence.
    """
    if n < 1:
        raise UserError(f"the number of pairs must be at least 1, not {n}")
    if order not in ORDERS:
        raise UserError(f"unknown word order {order!r}; choose one of {', '.join(ORDERS)}")
    if join < 1:
        raise UserError(f"--join must be at least 1 (sentences per pair), not {join}")
    if max_words is not None and max_words < 1:
        raise UserError(f"--max-words must be at least 1, not {max_words}")
    rng, sizes = random.Random(seed), random.Random(_JOIN_SALT + seed)
    pairs: list[dict] = []
    seen: set[str] = set(exclude)
    group: list[str] = []
    wanted = sizes.randint(1, join) if join > 1 else 1
    fruitless = 0  # stories in a row with no new sentence
    while len(pairs) < n:
        fruitless += 1
        if fruitless > _PATIENCE:
            raise UserError(f"found only {len(pairs)} distinct sentences of at most {max_source_words} words "
                            f"(with {min_adjective_phrases}+ adjective-noun phrases); ask for fewer pairs or "
                            "allow longer sentences")
        for match in _SENTENCE.finditer(generate_story(rng)):
            sentence = match.group().strip()
            if len(sentence.split()) > max_source_words or sentence in seen:
                continue
            if min_adjective_phrases and adjective_noun_phrases(sentence) < min_adjective_phrases:
                continue
            seen.add(sentence)
            group.append(sentence)
            fruitless = 0
            if len(group) < wanted:
                continue
            if max_words is None or sum(len(s.split()) for s in group) <= max_words:
                pairs.append(join_pairs([translate(s, order) for s in group]))
            group = []
            wanted = sizes.randint(1, join) if join > 1 else 1
            if len(pairs) == n:
                break
    return pairs


def join_pairs(pairs: Sequence[dict]) -> dict:
    """One pair of several: sources and targets joined with a space, each alignment link offset by the words before.

    >>> joined = join_pairs([translate("Mia runs."), translate("Leo sees the red ball.")])
    >>> joined["source"], joined["target"]
    ('Mia runs. Leo sees the red ball.', 'Mia corre. Leo ve la pelota roja.')
    >>> joined["alignment"][2:]                   # "Leo"(2) -> "Leo"(2), ..., "red"(5) -> "roja"(6)
    [[2, 2], [3, 3], [4, 4], [6, 5], [5, 6]]
    """
    source_offset = target_offset = 0
    alignment = []
    for pair in pairs:
        alignment += [[s + source_offset, t + target_offset] for s, t in pair["alignment"]]
        source_offset += len(pair["source"].split())
        target_offset += len(pair["target"].split())
    return {"source": " ".join(p["source"] for p in pairs), "target": " ".join(p["target"] for p in pairs),
            "alignment": alignment}


def source_sentences(pair: dict) -> list[str]:
    """The English sentences a (joined) pair's source is made of.

    "Mia runs. Leo sits." -> ["Mia runs.", "Leo sits."]
    """
    return [match.group().strip() for match in _SENTENCE.finditer(pair["source"])]


def bucket_name(bucket: tuple[int, int]) -> str:
    """(10, 20) -> "10-20": sources of 11 to 20 words."""
    return f"{bucket[0]}-{bucket[1]}"


def length_bucket(pair: dict, buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS) -> str | None:
    """The name of the bucket (lo, hi] holding the pair's source length in words, or None if none does."""
    words = len(pair["source"].split())
    return next((bucket_name(b) for b in buckets if b[0] < words <= b[1]), None)


def length_bucket_pairs(n_per_bucket: int, seed: int, order: str = "svo",
                        buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS,
                        exclude: Collection[str] = ()) -> dict[str, list[dict]]:
    """Held-out pairs by source length: for each bucket (lo, hi], `n_per_bucket` pairs of lo < words <= hi.

    A pair is consecutive sentences of the story stream, taken until their words exceed lo, kept if they
    do not exceed hi (with sentences of at most `MAX_SOURCE_WORDS` words and buckets at least that wide,
    always). No sentence is in two pairs, and none is in `exclude` -- pass the training pairs' sentences
    (`source_sentences`), so that every held-out sentence is new to the model, whatever its length.

        >>> sets = length_bucket_pairs(2, seed=0, buckets=[(0, 10), (20, 30)])
        >>> {name: [len(p["source"].split()) for p in pairs] for name, pairs in sets.items()}
        {'0-10': [5, 5], '20-30': [23, 22]}
    """
    if n_per_bucket < 1:
        raise UserError(f"the number of pairs per length bucket must be at least 1, not {n_per_bucket}")
    rng = random.Random(seed)
    seen: set[str] = set(exclude)
    sets: dict[str, list[dict]] = {}
    for low, high in buckets:
        found: list[dict] = []
        group: list[str] = []
        fruitless = 0
        while len(found) < n_per_bucket:
            fruitless += 1
            if fruitless > _PATIENCE:
                raise UserError(f"found only {len(found)} new pairs of {low + 1}-{high} words; ask for fewer")
            for match in _SENTENCE.finditer(generate_story(rng)):
                sentence = match.group().strip()
                if len(sentence.split()) > MAX_SOURCE_WORDS or sentence in seen:
                    continue
                seen.add(sentence)
                group.append(sentence)
                fruitless = 0
                words = sum(len(s.split()) for s in group)
                if words <= low:
                    continue
                if words <= high:
                    found.append(join_pairs([translate(s, order) for s in group]))
                group = []
                if len(found) == n_per_bucket:
                    break
        sets[bucket_name((low, high))] = found
    return sets


def translation_split(n_train: int, n_held_out: int, seed: int, order: str = "svo") -> tuple[list[dict], list[dict]]:
    """Training pairs and held-out pairs with no English sentence in common (the last `n_held_out`)."""
    pairs = translation_pairs(n_train + n_held_out, seed, order)
    return pairs[:n_train], pairs[n_train:]


def _source_word_of_token(sentence: str, tokens: list[str]) -> list[int]:
    """For each token of `split_words(sentence)`, the index of the whitespace-split word holding it."""
    owner = []
    for index, word in enumerate(sentence.split()):
        owner += [index] * len(split_words(word))
    if len(owner) != len(tokens):
        raise ValueError(f"cannot place the words of {sentence!r}")
    return owner


def _spell(rendered: Rendered, end: str, question: bool) -> list[str]:
    """Capitalise the first word and attach the marks: "¿" / "¡" before it, the final mark after the last."""
    words = [word for word, _ in rendered]
    words[0] = words[0][0].upper() + words[0][1:]
    if question:
        words[0] = "¿" + words[0]
    elif end == "!":
        words[0] = "¡" + words[0]
    words[-1] += end
    return words


def _leaves(tree: Tree) -> list[Token]:
    return [child for child in tree.children if isinstance(child, Token)]


class _Renderer:
    """Walks a parse tree of story.lark and returns target words, each with its English token index.

    One method per grammar rule, as in check.py. Numbers are resolved on the way: a noun phrase
    takes the number its verb agrees with ("the sheep runs": singular), and stays singular where
    English leaves it open ("she sees the sheep").
    """

    def __init__(self, order: str) -> None:
        self.verb_last = order == "sov"

    # -- sentences ------------------------------------------------------------------------------
    def sentence(self, tree: Tree) -> tuple[Rendered, str]:
        (clause,) = tree.children
        parts = list(clause.children)
        end = str(parts.pop())
        opener: Rendered = []
        if isinstance(parts[0], Tree) and parts[0].data == "opener":
            opener = self.opener(parts.pop(0))
        return opener + getattr(self, clause.data)(*parts), end

    def opener(self, tree: Tree) -> Rendered:
        first, comma = tree.children
        words = self.prepositional_phrase(first) if isinstance(first, Tree) else self.word(first, tl.OPENERS)
        last_word, index = words[-1]
        return [*words[:-1], (last_word + str(comma), index)]

    def statement(self, subject_np: Tree, vp: Tree) -> Rendered:
        number = self.agreeing_number(subject_np, vp.children[0])
        subject = self.noun_phrase(subject_np, number)
        verb, clitic, complements = self.verb_phrase(vp, subject_np, number)
        return subject + self.clause(clitic + verb, complements)

    def existential(self, there: Token, be: Token, np: Tree, pp: Tree | None = None) -> Rendered:
        number = self.agreeing_number(np, be)
        complements = self.noun_phrase(np, number) + (self.prepositional_phrase(pp) if pp is not None else [])
        return [(tl.THERE, there.start_pos)] + self.clause([(tl.EXISTENTIAL, be.start_pos)], complements)

    def do_question(self, aux: Token, subject_np: Tree, vp: Tree) -> Rendered:
        number = self.agreeing_number(subject_np, aux)
        verb, clitic, complements = self.verb_phrase(vp, subject_np, number)
        return [(tl.QUESTION, aux.start_pos)] + self.noun_phrase(subject_np, number) + self.clause(
            clitic + verb, complements)

    def be_question(self, be: Token, subject_np: Tree, predicate: Tree) -> Rendered:
        number = self.agreeing_number(subject_np, be)
        subject = self.noun_phrase(subject_np, number)
        verb, complements = self.predicate(be, predicate, subject_np, number)
        if self.verb_last:
            return subject + complements + verb
        return verb + subject + complements

    def clause(self, verb: Rendered, complements: Rendered) -> Rendered:
        """What follows the subject: the verb then its complements, or (sov) the complements then the verb."""
        return complements + verb if self.verb_last else verb + complements

    # -- verb phrases ---------------------------------------------------------------------------
    def verb_phrase(self, vp: Tree, subject_np: Tree, number: str) -> tuple[Rendered, Rendered, Rendered]:
        """(verb words, clitic object pronoun words, complements in svo order) of a verb phrase."""
        verb, *rest = vp.children
        if vp.data == "copular":
            (predicate,) = rest
            verb_words, complements = self.predicate(verb, predicate, subject_np, number)
            return verb_words, [], complements
        verb_words = [(word, verb.start_pos) for word in tl.verb_form(tl.VERBS[WORDS[verb].base], number)]
        clitic: Rendered = []
        complements: Rendered = []
        for child in rest:
            if isinstance(child, Token):  # an adverb
                complements += self.word(child, tl.ADVERBS)
            elif child.data == "np" and _leaves(child)[0].type == "PRONOUN":
                clitic = [(tl.PRONOUNS[WORDS[child.children[0]].base][1], child.children[0].start_pos)]
            elif child.data == "np":
                complements += self.noun_phrase(child, self.np_number(child))
            else:
                complements += self.prepositional_phrase(child)
        return verb_words, clitic, complements

    def predicate(self, be: Token, predicate: Tree, subject_np: Tree, number: str) -> tuple[Rendered, Rendered]:
        """is/are + an adjective (es/son, the adjective agreeing with the subject) or + a place (está/están)."""
        (child,) = predicate.children
        if isinstance(child, Tree):
            copula, complements = tl.LOCATIVE_COPULA, self.prepositional_phrase(child)
        else:
            gender = self.np_gender(subject_np)
            copula = tl.COPULA
            complements = [(w, child.start_pos) for w in tl.adjective_form(tl.ADJECTIVES[child], gender, number)]
        if number == "pl":
            copula = tl.PLURAL_COPULA[copula]
        return [(copula, be.start_pos)], complements

    # -- noun phrases ---------------------------------------------------------------------------
    def noun_phrase(self, np: Tree, number: str, after_preposition: bool = False) -> Rendered:
        """det noun adjectives(mirrored) [pp] [relative clause]; a name as it is; a pronoun's subject form."""
        first = np.children[0]
        if first.type == "NAME":
            return [(str(first), first.start_pos)]
        if first.type == "PRONOUN":
            subject_form, _, prepositional = tl.PRONOUNS[WORDS[first].base]
            return [(prepositional if after_preposition else subject_form, first.start_pos)]
        leaves = _leaves(np)
        noun = leaves[-1]
        target_noun = tl.NOUNS[WORDS[noun].base]
        gender = target_noun.gender
        words = [(target_noun.singular if number == "sg" else target_noun.plural, noun.start_pos)]
        for adjective in reversed([leaf for leaf in leaves if leaf.type == "ADJ"]):
            words += [(w, adjective.start_pos) for w in tl.adjective_form(tl.ADJECTIVES[adjective], gender, number)]
        if leaves[0].type == "DET":
            words.insert(0, (tl.DETERMINERS[leaves[0]][gender, number], leaves[0].start_pos))
        for child in np.children:
            if isinstance(child, Tree) and child.data == "pp":
                words += self.prepositional_phrase(child)
            elif isinstance(child, Tree):
                words += self.relative_clause(child, np, number)
        return words

    def relative_clause(self, clause: Tree, head_np: Tree, head_number: str) -> Rendered:
        """que + verb phrase (the head is its subject), or que + subject + verb (the head is its object)."""
        relative, *rest = clause.children
        words: Rendered = [(tl.RELATIVE, relative.start_pos)]
        if clause.data == "subject_relative":
            verb, clitic, complements = self.verb_phrase(rest[0], head_np, head_number)
            return words + self.clause(clitic + verb, complements)
        inner_np, verb, *pp = rest
        number = self.agreeing_number(inner_np, verb)
        verb_words = [(word, verb.start_pos) for word in tl.verb_form(tl.VERBS[WORDS[verb].base], number)]
        complements = self.prepositional_phrase(pp[0]) if pp else []
        return words + self.noun_phrase(inner_np, number) + self.clause(verb_words, complements)

    def prepositional_phrase(self, pp: Tree) -> Rendered:
        preposition, np = pp.children
        return self.word(preposition, tl.PREPOSITIONS) + self.noun_phrase(np, self.np_number(np),
                                                                           after_preposition=True)

    def word(self, token: Token, table: dict[str, str]) -> Rendered:
        """A word from a plain table, as one or more target words aligned to it."""
        return [(word, token.start_pos) for word in table[str(token).lower()].split()]

    # -- features -------------------------------------------------------------------------------
    def np_numbers(self, np: Tree) -> frozenset[str]:
        """The numbers a noun phrase can have: the determiner's and the noun's in common; a bare noun is plural."""
        leaves = _leaves(np)
        if leaves[0].type in ("NAME", "PRONOUN"):
            return WORDS[leaves[0]].number
        numbers = WORDS[leaves[-1]].number if leaves[0].type == "DET" else frozenset({"pl"})
        if leaves[0].type == "DET":
            numbers &= WORDS[leaves[0]].number
        for child in np.children:  # "the sheep that run": the relative clause's verb agrees with its head
            if isinstance(child, Tree) and child.data == "subject_relative":
                numbers = numbers & WORDS[child.children[1].children[0]].number or numbers
        return numbers

    def np_number(self, np: Tree) -> str:
        return "sg" if "sg" in self.np_numbers(np) else "pl"

    def agreeing_number(self, np: Tree, verb: Token) -> str:
        """The subject's number, as its verb settles it ("the sheep run": plural). After does/do the verb is
        the base form, so the auxiliary decides; check.py has made sure the two agree."""
        numbers = self.np_numbers(np) & WORDS[verb].number or self.np_numbers(np)
        return "sg" if "sg" in numbers else "pl"

    def np_gender(self, np: Tree) -> str:
        first = np.children[0]
        if first.type == "NAME":
            return tl.FEMININE if WORDS[first].kind == FEMALE else tl.MASCULINE
        if first.type == "PRONOUN":
            return tl.PRONOUN_FEATURES[tl.PRONOUNS[WORDS[first].base][0]][0]
        return tl.NOUNS[WORDS[_leaves(np)[-1]].base].gender
