"""The translation corpus: rules render English story sentences into the target language, with gold alignments."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from minitx.corpus import target_lexicon as tl
from minitx.corpus.target_check import check_target, target_units
from minitx.corpus.translation import (
    LENGTH_BUCKETS,
    MAX_SOURCE_WORDS,
    adjective_noun_phrases,
    join_pairs,
    length_bucket,
    length_bucket_pairs,
    source_sentences,
    translate,
    translation_pairs,
    translation_split,
)
from minitx.errors import UserError
from minitx.text.pairs import read_pairs


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


@pytest.mark.parametrize("order", ["svo", "sov"])
def test_in_every_pair_adjectives_follow_their_noun_in_mirrored_english_order(order, pairs, sov_pairs):
    units = target_units()
    adjective_words = {w for text, readings in units.items() if any(u.kind == "ADJ" for u in readings)
                       for w in text.split()}
    noun_words = {text for text, readings in units.items() if any(u.kind == "NOUN" for u in readings)}
    runs = 0
    for pair in pairs if order == "svo" else sov_pairs:
        words = [w.strip("¿¡.?!,").lower() for w in pair["target"].split()]
        source_of = {t: s for s, t in pair["alignment"]}
        for t, word in enumerate(words):
            if word not in noun_words or t + 1 >= len(words) or words[t + 1] not in adjective_words:
                continue
            run = []
            for u in range(t + 1, len(words)):
                if words[u] not in adjective_words or source_of[u] > source_of[t]:
                    break  # not an adjective, or a predicate one ("¿Son los marineros grandes?")
                if not run or run[-1] != source_of[u]:  # "de madera": two words, one English adjective
                    run.append(source_of[u])
            if not run:
                continue
            # English: adjectives in order right before the noun; target: the noun, then the same adjectives
            # backwards, the one nearest the noun first
            assert run == list(range(source_of[t] - 1, source_of[t] - 1 - len(run), -1)), pair
            english = pair["source"].split()
            assert run[-1] == 0 or english[run[-1] - 1].lower() not in tl.ADJECTIVES, pair  # none left out
            runs += 1
    assert runs > 20


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
    with pytest.raises(UserError, match="found only 0 distinct sentences"):  # none has one word: it gives up
        translation_pairs(5, seed=0, max_source_words=1)


def test_a_test_set_of_hard_sentences_leaves_out_the_training_sentences(pairs):
    hard = translation_pairs(30, seed=3, min_adjective_phrases=2, exclude={p["source"] for p in pairs})
    assert all(adjective_noun_phrases(p["source"]) >= 2 for p in hard)
    assert not {p["source"] for p in hard} & {p["source"] for p in pairs}
    assert adjective_noun_phrases("The red ball is under the old bridge.") == 2
    assert adjective_noun_phrases("The ball is red.") == 0


# -- long pairs: consecutive sentences joined ---------------------------------------------------------

@pytest.fixture(scope="module")
def joined() -> list[dict]:
    return translation_pairs(150, seed=3, join=10)


def test_join_one_gives_the_pairs_it_always_gave(pairs):
    assert translation_pairs(300, seed=3, join=1) == pairs


def test_joined_sources_run_from_one_sentence_to_sixty_words_and_more(joined):
    lengths = [len(p["source"].split()) for p in joined]
    assert min(lengths) <= 10 and max(lengths) >= 60
    assert {len(source_sentences(p)) for p in joined} == set(range(1, 11))
    sentences = [s for p in joined for s in source_sentences(p)]
    assert len(set(sentences)) == len(sentences)  # each sentence in one pair only
    assert all(len(s.split()) <= MAX_SOURCE_WORDS for s in sentences)


def test_a_joined_pair_is_its_sentences_translated_one_by_one(joined):
    for pair in joined[:20]:
        parts = [translate(s) for s in source_sentences(pair)]
        assert pair == join_pairs(parts)
        assert pair["target"] == " ".join(p["target"] for p in parts)


def test_every_link_of_a_joined_pair_still_joins_the_same_two_words(joined):
    for pair in joined:
        source, target = pair["source"].split(), pair["target"].split()
        parts = [translate(s) for s in source_sentences(pair)]
        expected = [(part["source"].split()[s], part["target"].split()[t]) for part in parts
                    for s, t in part["alignment"]]
        assert [(source[s], target[t]) for s, t in pair["alignment"]] == expected
        assert sorted(t for _, t in pair["alignment"]) == list(range(len(target)))  # one source word each
        assert {s for s, _ in pair["alignment"]} == set(range(len(source)))


def test_max_words_caps_the_joined_source():
    capped = translation_pairs(60, seed=3, join=10, max_words=30)
    lengths = [len(p["source"].split()) for p in capped]
    assert max(lengths) <= 30 and max(lengths) > 20  # capped, not cut short
    assert translation_pairs(60, seed=3, join=10, max_words=30, order="sov")[0]["source"] == capped[0]["source"]
    with pytest.raises(UserError, match="--join"):
        translation_pairs(3, seed=0, join=0)
    with pytest.raises(UserError, match="--max-words"):
        translation_pairs(3, seed=0, max_words=0)


def test_held_out_length_buckets_hold_new_sentences_of_their_length(joined):
    training_sentences = {s for p in joined for s in source_sentences(p)}
    sets = length_bucket_pairs(5, seed=11, exclude=training_sentences)
    assert list(sets) == ["0-10", "10-20", "20-30", "30-40", "40-50", "50-60"]
    held_out = []
    for (low, high), (name, bucket) in zip(LENGTH_BUCKETS, sets.items(), strict=True):
        assert len(bucket) == 5
        for pair in bucket:
            assert low < len(pair["source"].split()) <= high and length_bucket(pair) == name
            held_out += source_sentences(pair)
    assert len(set(held_out)) == len(held_out) and not set(held_out) & training_sentences
    assert length_bucket({"source": " ".join(["w"] * 61)}) is None


# -- the target-language checker ---------------------------------------------------------------------

@pytest.mark.parametrize("order", ["svo", "sov"])
def test_the_checker_accepts_every_generated_sentence(order, pairs, sov_pairs):
    for pair in pairs if order == "svo" else sov_pairs:
        assert check_target(pair["target"], order) == (True, ""), pair


_SWAP_GENDER = {"el": "la", "la": "el", "los": "las", "las": "los", "un": "una", "una": "un", "este": "esta",
                "esta": "este", "estos": "estas", "estas": "estos", "unos": "unas", "unas": "unos"}


def _corruptions(target: str, order: str) -> Iterator[tuple[str, str]]:
    """(kind, corrupted sentence) for each rule a one-word change can break in `target`."""
    words = target.split()
    units = target_units()
    bare = [w.strip("¿¡.?!,").lower() for w in words]
    for i, word in enumerate(bare[:-1]):
        readings = units.get(word, ())
        nxt = units.get(bare[i + 1], ())
        if word in _SWAP_GENDER and any(u.kind == "DET" for u in readings) and any(u.kind == "NOUN" for u in nxt):
            swapped = _SWAP_GENDER[word]
            yield "agreement", " ".join([*words[:i], words[i].replace(words[i].strip("¿¡,"), swapped if i else
                                         swapped.capitalize()), *words[i + 1:]])
        if any(u.kind == "NOUN" for u in readings) and any(u.kind == "ADJ" and " " not in u.text for u in nxt):
            if 0 < i and i + 1 < len(words) - 1 and not words[i].endswith(","):  # move the adjective before its noun
                yield "adjective order", " ".join([*words[:i], words[i + 1], words[i], *words[i + 2:]])
    if order == "sov" and len(words) > 3 and not target.startswith(("¿", "¡")) and "," not in target:
        verb = words[-1].rstrip(".!")
        if not any(" " in u.text for u in units.get(verb, ())) and bare[-2] != "se" and bare[-2] not in (
                "lo", "la", "los", "las"):
            yield "verb position", " ".join([words[0], words[1], verb, *words[2:-1]]) + "."


@pytest.mark.parametrize("order", ["svo", "sov"])
def test_the_checker_rejects_corrupted_sentences_for_the_right_reason(order, pairs, sov_pairs):
    seen = set()
    for pair in pairs if order == "svo" else sov_pairs:
        for kind, corrupted in _corruptions(pair["target"], order):
            if kind == "verb position" and corrupted.split()[1] not in target_units():
                continue  # the subject is longer than two words: the moved verb may land inside a phrase
            ok, reason = check_target(corrupted, order)
            assert not ok, (pair["target"], corrupted)
            assert reason.startswith(kind) or kind == "verb position", (corrupted, reason)
            seen.add(kind)
    assert seen == {"agreement", "adjective order"} | ({"verb position"} if order == "sov" else set())


@pytest.mark.parametrize(("sentence", "order", "reason"), [
    ("La perro corre.", "svo", "agreement: 'la' with masculine singular noun 'perro'"),
    ("El perro corren.", "svo", "agreement: singular subject 'el perro' with plural verb 'corren'"),
    ("La chica es viejo.", "svo", "agreement: 'viejo' with feminine singular subject 'la chica'"),
    ("La roja pelota es grande.", "svo", "adjective order: 'roja' before its noun 'pelota'"),
    ("La pelota pequeña roja es grande.", "svo", "adjective order: 'pequeña' (size) before 'roja' (colour)"),
    ("El perro el gato ve.", "svo", "verb position: the verb stands last in each clause (sov order)"),
    ("El perro ve el gato.", "sov", "verb position: the verb stands right after its subject (svo order)"),
    ("Mia ve él.", "svo", "pronoun: an object pronoun goes before its verb, as 'lo'"),
    ("Perro corre.", "svo", "article: singular noun 'perro' needs a determiner"),
    ("el perro corre.", "svo", "capitalisation: 'el' should be 'El'"),
    ("¿Acaso el perro corre.", "svo", "punctuation"),
    ("El perro xyz.", "svo", "unknown word 'xyz'"),
])
def test_the_checker_names_the_broken_rule(sentence, order, reason):
    ok, why = check_target(sentence, order)
    assert not ok and why.startswith(reason), why


def test_the_checker_reads_both_sov_relative_clauses():
    # "que los perros ve": the dogs are what the head sees (ve agrees with the singular head)
    assert check_target("La chica que los perros ve canta.", "sov") == (True, "")
    # "que los perros ven": the dogs see the head
    assert check_target("La chica que los perros ven canta.", "sov") == (True, "")
    assert not check_target("Las chicas que el perro ven canta.", "sov")[0]


# -- the command and the reader -----------------------------------------------------------------------

def _run(*args):
    from typer.testing import CliRunner

    from minitx.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_user_error(result, *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minitx: error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.output


def test_data_translation_writes_pairs_the_reader_reads_back(tmp_path):
    out = tmp_path / "pairs.jsonl"
    result = _run("data", "translation", "--pairs", 40, "--seed", 2, "--order", "sov", "--out", out)
    assert result.exit_code == 0, result.output
    assert "40 pairs" in " ".join(result.output.split())  # rich may wrap the line under a long path
    assert read_pairs(out) == translation_pairs(40, seed=2, order="sov")


def test_data_translation_joins_long_pairs_under_a_word_cap(tmp_path):
    from minitx.commands import data

    out = tmp_path / "long.jsonl"
    data.translation(out=out, n_pairs=20, seed=0, order="svo", force=False, join=6, max_words=30)
    pairs = read_pairs(out)
    assert pairs == translation_pairs(20, seed=0, join=6, max_words=30)
    assert max(len(p["source"].split()) for p in pairs) <= 30 < sum(len(p["source"].split()) for p in pairs)
    assert any(len(source_sentences(p)) > 1 for p in pairs)  # some pairs are joined sentences
    with pytest.raises(UserError, match="--join"):
        data.translation(out=tmp_path / "x.jsonl", n_pairs=5, seed=0, order="svo", force=False, join=0)


def test_data_translation_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "pairs.jsonl"
    out.write_text("keep me\n")
    _assert_user_error(_run("data", "translation", "--pairs", 3, "--out", out), "--force")
    assert out.read_text() == "keep me\n"
    assert _run("data", "translation", "--pairs", 3, "--out", out, "--force").exit_code == 0
    assert len(out.read_text().splitlines()) == 3
    _assert_user_error(_run("data", "translation", "--pairs", 0, "--out", tmp_path / "x.jsonl"), "--pairs")


def test_the_reader_takes_the_users_field_names_and_no_alignment(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"en": "The dog runs.", "es": "El perro corre."}\n\n{"en": "Hi.", "es": "Hola.", "x": 1}\n')
    assert read_pairs(path, source_field="en", target_field="es") == [
        {"source": "The dog runs.", "target": "El perro corre."}, {"source": "Hi.", "target": "Hola."}]


@pytest.mark.parametrize(("text", "words"), [
    ('{"source": "A.", "target": "B."}\nnot json\n', ["line 2 is not JSON"]),
    ('{"en": "A.", "target": "B."}\n', ["line 1 has no field 'source'", "'en'", "--source-field"]),
    ('{"source": "  ", "target": "B."}\n', ["line 1", "source", "empty"]),
    ('{"source": "A.", "target": 3}\n', ["'target' holds the integer 3, not text"]),
    ('[1, 2]\n', ["line 1 is a JSON list"]),
    ('{"source": "A b.", "target": "B.", "alignment": [[2, 0]]}\n', ["[2, 0] is outside"]),
    ('{"source": "A b.", "target": "B.", "alignment": [0, 0]}\n', ["alignment must be a list"]),
    ('\n\n', ["empty"]),
])
def test_bad_pair_files_are_one_line_user_errors(tmp_path, text, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        read_pairs(path)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


@pytest.mark.parametrize("sentence", ["The runs dog.", "The dog runs. the cat runs.", "The dog runs"])
def test_words_the_grammar_cannot_parse_as_one_sentence_are_rejected_not_a_parser_crash(sentence):
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import adjective_noun_phrases

    with pytest.raises(SentenceRejected, match="not one sentence"):
        adjective_noun_phrases(sentence)
