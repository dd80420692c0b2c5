"""Translation measures: exact match, chrF, BLEU, results by phenomenon, and the alignment error rate of a head."""

from __future__ import annotations

import numpy as np
import pytest

from minitx.corpus.translation import translation_pairs
from minitx.evaluation.translation import (
    alignment_error_rate,
    attention_to_links,
    bleu,
    chrf,
    corpus_alignment_error_rate,
    exact_match,
    movement,
    movement_bucket,
    pool_attention,
    random_head_links,
    scores_by_phenomenon,
    token_to_word,
    translation_scores,
)


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return translation_pairs(400, seed=5)


def test_identical_output_scores_100(pairs):
    references = [p["target"] for p in pairs]
    assert exact_match(references, references) == 1.0
    assert chrf(references, references) == pytest.approx(100.0)
    assert bleu(references, references) == pytest.approx(100.0)


def test_a_wrong_word_lowers_every_score_and_chrf_gives_partial_credit():
    references = ["La pelota roja es grande.", "El perro corre."]
    hypotheses = ["La pelota rojo es grande.", "El perro corre."]
    assert exact_match(hypotheses, references) == 0.5
    assert 50 < chrf(hypotheses, references) < 100
    assert bleu(hypotheses, references) < 100
    assert chrf(hypotheses, references) > chrf(["Un gato duerme.", "Hoy."], references)


def test_scores_count_grammatical_output_when_given_the_order():
    scores = translation_scores(["El perro corre.", "La perro corre."], ["El perro corre.", "El perro corre."],
                                order="svo")
    assert scores["n"] == 2 and scores["grammatical"] == 0.5


def test_results_by_phenomenon_split_by_adjective_phrases_and_movement(pairs):
    hypotheses = [p["target"] if i % 2 else "Hoy." for i, p in enumerate(pairs)]
    table = scores_by_phenomenon(pairs, hypotheses, order="svo")
    assert list(table["adjective_phrases"]) == ["0", "1", "2+"]
    assert sum(bucket["n"] for bucket in table["adjective_phrases"].values()) == len(pairs)
    assert sum(bucket["n"] for bucket in table["movement"].values()) == len(pairs)
    assert {"0", ">1"} <= set(table["movement"])
    for bucket in table["adjective_phrases"].values():
        assert 0.3 < bucket["exact_match"] < 0.7


def test_sov_moves_words_further_than_svo(pairs):
    sov = translation_pairs(400, seed=5, order="sov")
    assert np.mean([movement(p["alignment"]) for p in sov]) > 1.5 * np.mean([movement(p["alignment"]) for p in pairs])


def test_movement_is_the_mean_distance_of_the_links():
    assert movement([[0, 0], [1, 2], [2, 1]]) == pytest.approx(2 / 3)
    assert movement_bucket([[0, 0], [1, 1]]) == "0"
    assert movement_bucket([[0, 0], [1, 2], [2, 1]]) == "(0.5, 1]"
    assert movement_bucket([[0, 3], [3, 0]]) == ">1"


# -- alignment error rate -----------------------------------------------------------------------------------

def test_gold_against_gold_has_aer_zero(pairs):
    for pair in pairs[:50]:
        assert alignment_error_rate(pair["alignment"], pair["alignment"]) == 0.0
    gold = [p["alignment"] for p in pairs]
    assert corpus_alignment_error_rate(gold, gold) == 0.0


def test_aer_of_a_hand_example():
    # A = {(0,0), (1,2), (2,1)}, S = {(0,0), (1,1), (2,2), (3,3)}: |A ∩ S| = 1, AER = 1 - 2/7
    assert alignment_error_rate([(0, 0), (1, 2), (2, 1)], [(0, 0), (1, 1), (2, 2), (3, 3)]) == pytest.approx(5 / 7)
    assert alignment_error_rate([(0, 1)], [(0, 0)]) == 1.0
    assert alignment_error_rate([], []) == 0.0
    # corpus AER sums the counts: (1 + 1) hits of (3 + 4) + (1 + 1) links
    assert corpus_alignment_error_rate([[(0, 0), (1, 2), (2, 1)], [(0, 0)]],
                                       [[(0, 0), (1, 1), (2, 2), (3, 3)], [(0, 0)]]) == pytest.approx(1 - 4 / 9)


def test_a_head_that_attends_to_the_gold_word_reproduces_the_gold_links(pairs):
    for pair in pairs[:40]:
        source, target = pair["source"], pair["target"]
        src_map = token_to_word(source, [c.encode() for c in source])  # a char tokenizer
        tgt_map = token_to_word(target, [c.encode() for c in target])
        weights = np.full((len(tgt_map), len(src_map)), 1e-3)
        gold_source = dict((t, s) for s, t in pair["alignment"])
        for token, word in enumerate(tgt_map):
            aligned = [i for i, w in enumerate(src_map) if w == gold_source.get(word)]
            weights[token, aligned] = 1.0 / len(aligned) if aligned else 0.0
        links = attention_to_links(weights, src_map, tgt_map)
        assert alignment_error_rate(links, pair["alignment"]) == 0.0


def test_pooling_sums_over_source_pieces_and_averages_over_target_pieces():
    # source words: [0, 0, 1] (word 0 has two tokens); target words: [0, 0, 1]; token -1 is left out
    weights = np.array([[0.3, 0.3, 0.4, 0.0],
                        [0.1, 0.1, 0.8, 0.0],
                        [0.0, 0.0, 0.1, 0.9]])
    pooled = pool_attention(weights, [0, 0, 1, -1], [0, 0, 1])
    np.testing.assert_allclose(pooled, [[0.4, 0.6], [0.0, 0.1]])
    assert attention_to_links(weights, [0, 0, 1, -1], [0, 0, 1]) == [(1, 0), (1, 1)]


def test_random_heads_align_far_worse_than_the_gold(pairs):
    rng = np.random.default_rng(0)
    predicted, gold = [], []
    for pair in pairs:
        source, target = pair["source"], pair["target"]
        predicted.append(random_head_links(token_to_word(source, [c.encode() for c in source]),
                                           token_to_word(target, [c.encode() for c in target]), rng))
        gold.append(pair["alignment"])
    assert corpus_alignment_error_rate(predicted, gold) > 0.6


def test_tokens_map_to_words_even_when_bpe_cuts_a_character():
    text = "La canción"
    pieces = [b"La", b" can", b"ci", "ó".encode()[:1], "ó".encode()[1:] + b"n"]
    assert token_to_word(text, pieces) == [0, 1, 1, 1, 1]
    assert token_to_word("a  b", [b"a", b" ", b" b"]) == [0, -1, 1]
    with pytest.raises(ValueError, match="spell"):
        token_to_word("ab", [b"a"])
