"""The translation corpus: rules render English story sentences into the target language, with gold alignments."""

from __future__ import annotations

import pytest

from minitx.corpus import target_lexicon as tl
from minitx.corpus.translation import MAX_SOURCE_WORDS, translate, translation_pairs, translation_split
from minitx.errors import UserError


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return translation_pairs(300, seed=3)


@pytest.fixture(scope="module")
def sov_pairs() -> list[dict]:
    return translation_pairs(300, seed=3, order="sov")


def test_same_arguments_give_the_same_pairs(pairs):
    assert translation_pairs(300, seed=3) == pairs
    assert translation_pairs(300, seed=4) != pairs


def test_svo_and_sov_share_their_english_side(pairs, sov_pairs):
    assert [p["source"] for p in pairs] == [p["source"] for p in sov_pairs]
    assert [p["target"] for p in pairs] != [p["target"] for p in sov_pairs]


def test_sources_are_distinct_and_short(pairs):
    sources = [p["source"] for p in pairs]
    assert len(set(sources)) == len(sources)
    assert max(len(s.split()) for s in sources) <= MAX_SOURCE_WORDS


def test_held_out_pairs_share_no_sentence_with_training():
    train, held_out = translation_split(200, 50, seed=1)
    assert len(train) == 200 and len(held_out) == 50
    assert not {p["source"] for p in train} & {p["source"] for p in held_out}


@pytest.mark.parametrize("order", ["svo", "sov"])
def test_every_target_word_has_one_source_word_and_every_source_word_one_or_more(order, pairs, sov_pairs):
    for pair in pairs if order == "svo" else sov_pairs:
        n_source, n_target = len(pair["source"].split()), len(pair["target"].split())
        targets = [t for _, t in pair["alignment"]]
        assert sorted(targets) == list(range(n_target)), pair
        assert {s for s, _ in pair["alignment"]} == set(range(n_source)), pair


def test_a_hand_example_renders_and_aligns_word_by_word():
    pair = translate("The lovely little red ball is under the old bridge.")
    assert pair["target"] == "La pelota roja pequeña preciosa está debajo de el puente viejo."
    # the(0) lovely(1) little(2) red(3) ball(4) is(5) under(6) the(7) old(8) bridge.(9)
    assert pair["alignment"] == [[0, 0], [4, 1], [3, 2], [2, 3], [1, 4], [5, 5], [6, 6], [6, 7], [7, 8],
                                 [9, 9], [8, 10]]


def test_articles_and_adjectives_agree_with_gender_and_number():
    assert translate("The red balls are big.")["target"] == "Las pelotas rojas son grandes."
    assert translate("The red hat is big.")["target"] == "El sombrero rojo es grande."
    assert translate("Some green apples are big.")["target"] == "Unas manzanas verdes son grandes."
    assert translate("Mia is happy.")["target"] == "Mia es feliz."
    assert translate("The girls are old.")["target"] == "Las chicas son viejas."


def test_stacked_adjectives_follow_the_noun_in_mirrored_order():
    pair = translate("A lovely little red wooden box is big.")
    words = pair["target"].split()
    assert words[:7] == ["Una", "caja", "de", "madera", "roja", "pequeña", "preciosa"]
    english = pair["source"].split()
    adjective_sources = [s for s, t in sorted(pair["alignment"], key=lambda link: link[1]) if 2 <= t <= 6]
    assert [english[s] for s in dict.fromkeys(adjective_sources)] == ["wooden", "red", "little", "lovely"]


def test_sov_puts_the_verb_last_in_every_clause():
    assert translate("The dog sees the cat.", "sov")["target"] == "El perro el gato ve."
    assert translate("The dog that the cats chase runs into the house.", "sov")["target"] == (
        "El perro que los gatos persiguen dentro de la casa corre.")
    assert translate("Are the dogs happy?", "sov")["target"] == "¿Los perros felices son?"
    assert translate("There is an owl in the park.", "sov")["target"] == "Allí un búho en el parque hay."


def test_sov_pairs_end_in_a_verb(sov_pairs):
    verbs = {w for v in tl.VERBS.values() for n in ("sg", "pl") for w in tl.verb_form(v, n)}
    verbs |= {tl.COPULA, tl.LOCATIVE_COPULA, *tl.PLURAL_COPULA.values(), tl.EXISTENTIAL}
    for pair in sov_pairs:
        assert pair["target"].split()[-1].rstrip(".?!") in verbs, pair


def test_object_pronouns_go_before_the_verb_and_questions_get_marks():
    assert translate("Mia sees him.")["target"] == "Mia lo ve."
    assert translate("Does the cat like them?")["target"] == "¿Acaso el gato los aprecia?"
    assert translate("Then, the dogs sleep!")["target"] == "¡Entonces, los perros duermen!"


def test_a_verb_settles_the_number_english_leaves_open():
    assert translate("The sheep run.")["target"] == "Las ovejas corren."
    assert translate("The sheep runs.")["target"] == "La oveja corre."


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="word order"):
        translation_pairs(3, seed=0, order="vso")
    with pytest.raises(UserError, match="at least 1"):
        translation_pairs(0, seed=0)
