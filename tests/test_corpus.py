"""The built-in story grammar: generation is deterministic and always grammatical; the checker
accepts what the generator writes and rejects each kind of mistake with a specific reason."""

from __future__ import annotations

import json
import random
import re

import pytest
from lark import Tree
from rich.console import Console

from minitx.corpus import DOC_TOKEN, check_text, generate_corpus, generate_story, render_report
from minitx.corpus.check import judge_sentence
from minitx.corpus.grammar import parse_sentence
from minitx.corpus.lexicon import NAMES_BY_LOWERCASE, WORDS, article_for, vocabulary
from minitx.errors import UserError

SENTENCE = re.compile(r"[^.?!]+[.?!]")


def stories(n: int, seeds=(0, 1, 2)) -> list[str]:
    """`n` stories spread over a few seeds."""
    result = []
    for seed in seeds:
        rng = random.Random(seed)
        result += [generate_story(rng) for _ in range(n // len(seeds))]
    return result


def sentences_of(texts: list[str]) -> list[str]:
    return [match.group().strip() for text in texts for match in SENTENCE.finditer(text)]


@pytest.fixture(scope="module")
def many_stories() -> list[str]:
    return stories(300)


# -- generation ------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_corpus_and_another_seed_another():
    assert generate_corpus(5_000, seed=7) == generate_corpus(5_000, seed=7)
    assert generate_corpus(5_000, seed=7) != generate_corpus(5_000, seed=8)


def test_generation_leaves_the_global_random_state_alone():
    random.seed(123)
    state = random.getstate()
    generate_corpus(2_000, seed=1)
    assert random.getstate() == state


def test_corpus_is_whole_documents_just_past_the_requested_size():
    n_bytes = 20_000
    text = generate_corpus(n_bytes, seed=3)
    documents = text.split(DOC_TOKEN)
    assert documents[0] == ""  # the text starts with the marker
    assert all(doc.endswith("\n") and doc.count("\n") == 1 for doc in documents[1:])
    assert len(text.encode()) >= n_bytes
    assert len(text.encode()) - len(documents[-1]) - len(DOC_TOKEN) < n_bytes  # one story fewer is too short


def test_a_tiny_request_still_gives_one_story_and_a_zero_request_is_refused():
    text = generate_corpus(1, seed=0)
    assert text.startswith(DOC_TOKEN) and text.count(DOC_TOKEN) == 1
    with pytest.raises(UserError):
        generate_corpus(0, seed=0)


def test_stories_have_two_to_six_sentences_separated_by_single_spaces(many_stories):
    for story in many_stories:
        assert "  " not in story and story == story.strip()
        assert 2 <= len(SENTENCE.findall(story)) <= 6, story
        assert re.fullmatch(r"([^.?!]+[.?!])( [^.?!]+[.?!])*", story), story


# -- the lexicon -----------------------------------------------------------------------------------
def test_vocabulary_has_a_few_hundred_words_with_irregular_forms():
    words = vocabulary()
    assert 200 <= len(words) < 1000
    for irregular in ("mice", "children", "geese", "has", "goes", "watches", "cries", "sheep"):
        assert irregular in words


def test_no_name_is_also_an_ordinary_word():
    assert set(NAMES_BY_LOWERCASE).isdisjoint(WORDS)


@pytest.mark.parametrize(("word", "article"), [("old", "an"), ("little", "a"), ("owl", "an"),
                                               ("honest", "an"), ("unicorn", "a"), ("useful", "a")])
def test_article_follows_the_sound_not_the_letter(word, article):
    assert article_for(word) == article


# -- the checker accepts the generator's sentences -------------------------------------------------
def test_every_generated_sentence_is_accepted(many_stories):
    report = check_text("".join(f"{DOC_TOKEN}{story}\n" for story in many_stories))
    assert report.documents == 300
    assert report.total >= 600
    assert report.rejected == [], report.rejected[:5]
    assert report.incomplete == 0
    assert report.share == 1.0


def _relative_depths(tree: Tree, depth: int = 0):
    """Yield, for every relative clause, how many relative clauses enclose it (itself included)."""
    for child in tree.children:
        if isinstance(child, Tree):
            inner = depth + (child.data in ("subject_relative", "object_relative"))
            if inner > depth:
                yield inner
            yield from _relative_depths(child, inner)


def test_corpus_exercises_nested_relative_clauses_prepositions_and_questions(many_stories):
    trees = [parse_sentence(sentence) for sentence in sentences_of(many_stories)]
    depths = [depth for tree in trees for depth in _relative_depths(tree)]
    kinds = [node.data for tree in trees for node in tree.iter_subtrees()]
    assert depths.count(2) >= 5
    assert kinds.count("pp") >= 100
    assert kinds.count("subject_relative") >= 20 and kinds.count("object_relative") >= 20
    assert kinds.count("do_question") >= 5 and kinds.count("be_question") >= 5
    assert kinds.count("existential") >= 20 and kinds.count("opener") >= 20


# -- the checker rejects mistakes, saying which ----------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("A red little ball is in the box.", "adjective order: 'red' (colour) before 'little' (size)"),
        ("A red old little lovely ball is in the box.", "adjective order: 'red' (colour) before 'old' (age)"),
        ("The big little dog runs.", "adjectives: 'big' and 'little' are both size adjectives"),
        ("A lovely little old round red ball is in the box.", "too many adjectives: 5 before 'ball'"),
        ("The dogs runs.", "agreement: plural subject 'the dogs' with singular verb 'runs'"),
        ("The dog that the cats chase run.", "agreement: singular subject 'the dog' with plural verb 'run'"),
        ("The dog that the cats chases runs.", "agreement: plural subject 'the cats' with singular verb 'chases'"),
        ("The girl who sees the dogs that runs is happy.",
         "agreement: plural subject 'the dogs' with singular verb 'runs'"),
        ("There are a dog.", "agreement: singular subject 'a dog' with plural verb 'are'"),
        ("A dogs run.", "agreement: 'a' with plural noun 'dogs'"),
        ("A old cat sleeps.", "article: 'a' before 'old'"),
        ("An little owl sleeps.", "article: 'an' before 'little'"),
        ("Dog runs.", "article: singular noun 'dog' needs a determiner"),
        ("The xyzzy runs.", "unknown word 'xyzzy'"),
        ("Him runs.", "pronoun case: 'him' cannot be a subject; use 'he'"),
        ("Tom sees he.", "pronoun case: 'he' cannot be an object; use 'him'"),
        ("Does the dog runs?", "verb form: 'runs' after 'does' should be 'run'"),
        ("The dog runs?", "punctuation: a statement ends with '.' or '!', not '?'"),
        ("Is the dog happy.", "punctuation: a question ends with '?', not '.'"),
        ("the dog runs.", "capitalisation: 'the' should be 'The'"),
        ("mia runs.", "capitalisation: the name 'Mia' is written 'mia'"),
        ("The ball who rolls is red.", "unknown word 'rolls'"),
        ("The ball who is red sleeps.", "relative pronoun: 'who' after 'the ball', which is not a person"),
        ("The dog that the cat that the girl that Tom sees likes chases runs.",
         "relative clauses nested 3 deep (at most 2)"),
        ("The dog runs, happily.", "not a sentence of the grammar (parse failed at ',')"),
        ("Runs the dog.", "not a sentence of the grammar (parse failed at 'runs')"),
    ],
)
def test_checker_names_the_mistake(sentence, reason):
    report = check_text(f"{DOC_TOKEN}{sentence}\n")
    assert (report.total, report.accepted) == (1, 0)
    assert report.rejected[0].reason.startswith(reason), report.rejected[0].reason


def test_swapping_two_adjectives_of_generated_sentences_is_rejected(many_stories):
    swapped = []
    for sentence in sentences_of(many_stories):
        words = sentence[:-1].split()
        for i in range(len(words) - 1):
            first, second = (WORDS.get(w.lower()) for w in words[i : i + 2])
            if first and second and first.terminal == second.terminal == "ADJ" and i > 0:
                words[i], words[i + 1] = words[i + 1], words[i]
                swapped.append(" ".join(words) + sentence[-1])
                break
    assert len(swapped) >= 20
    for sentence in swapped:
        assert judge_sentence(sentence, {"he", "she", "it", "they"}).startswith("adjective order:"), sentence


def test_turning_is_into_are_in_generated_sentences_breaks_agreement(many_stories):
    broken = [s.replace(" is ", " are ", 1) for s in sentences_of(many_stories)
              if " is " in s and not re.search(r"\b(sheep|fish)\b", s)]  # "the sheep are" is fine
    assert len(broken) >= 20
    for sentence in broken:
        assert judge_sentence(sentence, {"he", "she", "it", "they"}).startswith("agreement:"), sentence


def test_shuffled_generated_sentences_are_rejected(many_stories):
    """Shuffle the words (keeping capitals right and the final mark) of 50 sentences of 5+ words.

    A shuffle can land on another sentence of the language -- "Sofia finds Ella." from "Ella finds
    Sofia.", measured as 10 in 1877 shuffles -- so one such accidental sentence is tolerated.
    """
    shuffler = random.Random(0)
    long_sentences = [s for s in sentences_of(many_stories) if len(s.split()) >= 5][:50]
    accepted, changed = [], 0
    for sentence in long_sentences:
        words = [w if WORDS.get(w) and WORDS[w].terminal == "NAME" else w.lower()
                 for w in sentence[:-1].replace(",", " ,").split()]
        shuffled = words[:]
        shuffler.shuffle(shuffled)
        if shuffled == words:
            continue
        changed += 1
        shuffled[0] = shuffled[0][0].upper() + shuffled[0][1:]
        text = " ".join(shuffled).replace(" ,", ",") + sentence[-1]
        if judge_sentence(text, {"he", "she", "it", "they"}) is None:
            accepted.append(text)
    assert changed >= 45
    assert len(accepted) <= 1, accepted


# -- pronouns across the sentences of one document -------------------------------------------------
@pytest.mark.parametrize(
    ("document", "rejected_reason"),
    [
        ("She runs.", "pronoun 'she' has no earlier female antecedent"),
        ("Tom runs. She sleeps.", "pronoun 'she' has no earlier female antecedent"),
        ("The dogs run. It sleeps.", "pronoun 'it' has no earlier singular animal or thing antecedent"),
        ("The child runs. Mia sees him.", "pronoun 'him' has no earlier male antecedent"),
        ("Mia sees her. Mia runs.", "pronoun 'her' has no earlier female antecedent"),
        ("Mia sees a dog. She runs.", None),
        ("The dogs run. They see them.", None),
        ("The sheep sleep. It is happy. They are happy.", None),  # "sheep" can be one or many
    ],
)
def test_pronouns_need_an_antecedent_in_an_earlier_sentence(document, rejected_reason):
    report = check_text(f"{DOC_TOKEN}{document}\n")
    reasons = [rejection.reason for rejection in report.rejected]
    assert reasons == ([] if rejected_reason is None else [rejected_reason])


def test_antecedents_do_not_carry_over_into_the_next_document():
    report = check_text(f"{DOC_TOKEN}Mia runs.\n{DOC_TOKEN}She sleeps.\n")
    assert report.documents == 2
    assert [(r.document, r.reason) for r in report.rejected] == [
        (1, "pronoun 'she' has no earlier female antecedent")
    ]


# -- the report ------------------------------------------------------------------------------------
def test_a_cut_off_last_sentence_is_incomplete_not_rejected():
    report = check_text(f"{DOC_TOKEN}The dog runs. The cat that the{DOC_TOKEN}A cat sleeps. It")
    assert (report.total, report.accepted, report.incomplete) == (2, 2, 2)
    assert report.rejected == [] and report.share == 1.0


def test_share_counts_accepted_among_complete_sentences_and_is_zero_for_none():
    report = check_text(f"{DOC_TOKEN}The dog runs. The dogs runs. A cat sleeps. A cats sleep.\n")
    assert (report.total, report.accepted, report.share) == (4, 2, 0.5)
    assert check_text("").share == 0.0 and check_text(f"{DOC_TOKEN}The dog").share == 0.0


def test_report_to_dict_is_plain_json():
    report = check_text(f"{DOC_TOKEN}The dog runs. The dogs runs. The cat\n")
    data = json.loads(json.dumps(report.to_dict()))
    assert data == {
        "documents": 1, "total": 2, "accepted": 1, "incomplete": 1, "share": 0.5,
        "rejected": [{"sentence": "The dogs runs.", "document": 0,
                      "reason": "agreement: plural subject 'the dogs' with singular verb 'runs'"}],
    }


def test_render_report_shows_the_share_and_the_first_rejections():
    report = check_text(f"{DOC_TOKEN}The dog runs. The dogs runs. A old cat sleeps. Cat sleeps.\n")
    console = Console(record=True, width=160)
    console.print(render_report(report, max_examples=2))
    shown = console.export_text()
    assert "25.0%" in shown and "1 of 4 sentences" in shown
    assert "The dogs runs." in shown and "article: 'a' before 'old'" in shown
    assert "Cat sleeps." not in shown  # only the first two rejections
