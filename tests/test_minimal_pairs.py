"""Minimal pairs from the built-in grammar: each differs in exactly its phenomenon, and the checker agrees."""

from __future__ import annotations

from collections import Counter

import pytest

from minitx.corpus import check_text
from minitx.corpus.grammar import split_words
from minitx.corpus.lexicon import PRONOUNS, WORDS
from minitx.corpus.pairs import EXPECTED_REASON, PHENOMENA, minimal_pairs

SEEDS = range(8)


@pytest.fixture(scope="module")
def pairs_by_seed():
    return {seed: minimal_pairs(60, seed) for seed in SEEDS}


def _words(sentence: str) -> list[str]:
    return [w.lower() if w.lower() in WORDS and w not in WORDS else w for w in split_words(sentence)]


def _differing(good: str, bad: str) -> list[int]:
    g, b = _words(good), _words(bad)
    assert len(g) == len(b), (good, bad)
    return [i for i, (x, y) in enumerate(zip(g, b, strict=True)) if x != y]


@pytest.mark.parametrize("seed", SEEDS)
def test_good_twin_is_accepted_and_bad_twin_rejected_for_its_phenomenon(pairs_by_seed, seed):
    for pair in pairs_by_seed[seed]:
        good, bad = (check_text(f"<|doc|>{text}\n") for text in pair.texts())
        assert good.rejected == [] and good.accepted == good.total >= 1, pair
        assert len(bad.rejected) == 1, pair
        rejection = bad.rejected[0]
        assert rejection.sentence == pair.bad, pair  # the context, if any, is still fine
        assert rejection.reason.startswith(EXPECTED_REASON[pair.phenomenon]), (pair, rejection.reason)
        assert rejection.reason == pair.reason


@pytest.mark.parametrize("seed", SEEDS)
def test_twins_differ_in_exactly_their_phenomenon(pairs_by_seed, seed):
    for pair in pairs_by_seed[seed]:
        g, b = _words(pair.good), _words(pair.bad)
        where = _differing(pair.good, pair.bad)
        if pair.phenomenon == "adjective_order":  # two neighbouring adjectives swapped (and a/an kept right)
            adjectives = [i for i in where if WORDS[g[i]].terminal == "ADJ"]
            assert len(adjectives) == 2 and adjectives[1] == adjectives[0] + 1, pair
            assert (b[adjectives[0]], b[adjectives[1]]) == (g[adjectives[1]], g[adjectives[0]])
            assert set(where) - set(adjectives) <= {adjectives[0] - 1}
            assert all(g[i] in ("a", "an") for i in set(where) - set(adjectives))
        elif pair.phenomenon.startswith("agreement"):  # one verb, same verb, other number
            (i,) = where
            old, new = WORDS[g[i]], WORDS[b[i]]
            assert old.terminal == new.terminal and old.terminal in ("VERB_INTR", "VERB_TR", "BE"), pair
            assert old.base == new.base and old.number != new.number
            subject_noun = WORDS[g[i - pair.distance]]  # `distance` words back from the verb
            assert subject_noun.terminal in ("NOUN", "NAME") and subject_noun.number == old.number, pair
            assert (pair.distance == 1) == (pair.phenomenon == "agreement_local"), pair
        elif pair.phenomenon == "article":
            (i,) = where
            assert {g[i], b[i]} == {"a", "an"}
        elif pair.phenomenon == "pronoun":  # same context, one subject pronoun of the same number replaced
            assert pair.context
            (i,) = where
            assert i == 0 and g[0].lower() in PRONOUNS and b[0].lower() in PRONOUNS
            assert WORDS[g[0].lower()].number == WORDS[b[0].lower()].number
        else:  # word_swap: two neighbouring words trade places
            i, j = where
            assert j == i + 1 and (g[i].lower(), g[j].lower()) == (b[j].lower(), b[i].lower())


def test_pairs_are_spread_evenly_and_repeat_from_the_seed():
    pairs = minimal_pairs(63, seed=5)
    counts = Counter(p.phenomenon for p in pairs)
    assert set(counts) == set(PHENOMENA) and max(counts.values()) - min(counts.values()) <= 1
    assert minimal_pairs(63, seed=5) == pairs
    assert minimal_pairs(63, seed=6) != pairs


def test_long_distance_agreement_covers_several_distances():
    distances = {p.distance for p in minimal_pairs(300, seed=0) if p.phenomenon == "agreement_far"}
    assert len(distances) >= 4 and min(distances) >= 2
