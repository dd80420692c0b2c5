"""The lab's measures: log-probabilities, minimal-pair accuracy, the order test, length extrapolation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import random_model, train_story_run
from minitx.errors import UserError
from minitx.evaluation.extrapolation import extrapolation, stretched_model
from minitx.evaluation.intervals import bootstrap, differs, mean_and_spread, wilson
from minitx.evaluation.likelihood import token_log_probs, total_log_probs
from minitx.evaluation.order import documents_of, shuffle_words, shuffled_documents


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from minitx.rundir import load_model

    out = train_story_run(tmp_path_factory.mktemp("lab") / "rope", pos="rope", steps=200)
    model, run = load_model(out)
    return model.eval(), run


def test_wilson_interval_matches_the_formula_and_stays_in_bounds():
    low, high = wilson(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-3) and high == pytest.approx(0.9448, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0) and 0 < wilson(10, 10)[0] < 1


def test_bootstrap_interval_surrounds_the_statistic_and_narrows_with_more_units():
    import numpy as np

    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    low_few, high_few = bootstrap([few], lambda v: float(v.mean()))
    low_many, high_many = bootstrap([many], lambda v: float(v.mean()))
    assert low_few < few.mean() < high_few and low_many < many.mean() < high_many
    assert high_many - low_many < (high_few - low_few) / 5


def test_spread_over_seeds_and_the_difference_rule():
    assert mean_and_spread([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_and_spread([None, 2.0]) == (2.0, 0.0) and mean_and_spread([]) == (None, None)
    assert differs(1.0, 0.1, 1.5, 0.1) and not differs(1.0, 0.3, 1.5, 0.3)


def test_log_probs_equal_the_cross_entropy_and_long_texts_are_read_in_windows():
    model = random_model("rope", vocab_size=40, block_size=16)
    seq = torch.randint(0, 40, (50,), generator=torch.Generator().manual_seed(0)).tolist()
    short = seq[:17]
    (lp,) = token_log_probs(model, [short])
    logits, _ = model(torch.tensor([short[:-1]]))
    expected = -F.cross_entropy(logits[0], torch.tensor(short[1:]), reduction="none")
    torch.testing.assert_close(lp, expected, atol=1e-5, rtol=1e-5)
    long_lp, again = token_log_probs(model, [seq, short])  # batching with a longer neighbour changes nothing
    assert len(long_lp) == len(seq) - 1
    torch.testing.assert_close(long_lp[:16], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, expected, atol=1e-5, rtol=1e-5)
    # token 40 is predicted from the window starting at 24 (stride 8): the 16 tokens before it
    logits, _ = model(torch.tensor([seq[24:40]]))
    assert long_lp[39].item() == pytest.approx(F.log_softmax(logits[0, -1], -1)[seq[40]].item(), abs=1e-5)


def test_shuffles_keep_every_byte_and_the_final_mark():
    import random

    assert shuffle_words("The dog chases a cat.", random.Random(0)).endswith(".")
    docs = documents_of("<|doc|>The dog runs. A cat sleeps!\n<|doc|>Mia sings.\n")
    assert docs == ["The dog runs. A cat sleeps!", "Mia sings."]
    for what in ("words", "sentences"):
        shuffled = shuffled_documents(docs * 20, what, seed=1)
        assert [sorted(d) for d in shuffled] == [sorted(d) for d in docs * 20]
        assert shuffled != docs * 20
    assert documents_of("half a document<|doc|>A whole one.\n") == ["A whole one."]
    assert documents_of("First paragraph.\n\nSecond one.\n") == ["First paragraph.", "Second one."]


def test_order_gap_is_larger_for_a_trained_model_than_an_untrained_one(trained):
    from minitx.evaluation.order import order_test
    from minitx.evaluation.scoring import validation_ids
    from minitx.model import GPT

    model, run = trained
    ids, _, _ = validation_ids(run)
    documents = documents_of(run.tokenizer.decode(ids.tolist()), 120)
    torch.manual_seed(0)
    untrained = GPT(model.config).eval()
    learned, blank = order_test(model, run.tokenizer, documents), order_test(untrained, run.tokenizer, documents)
    assert learned.words.bits_per_byte_interval[0] > 0.1  # a trained model clearly knows word order
    assert abs(blank.words.bits_per_byte) < 0.05  # an untrained one barely notices
    assert learned.words.bits_per_byte > blank.words.bits_per_byte_interval[1]
    assert learned.sentences.bits_per_byte < learned.words.bits_per_byte  # sentence order matters less


def test_a_trained_model_prefers_grammatical_twins(trained):
    from minitx.corpus.pairs import minimal_pairs
    from minitx.evaluation.minimal_pairs import score_pairs

    model, run = trained
    result = score_pairs(model, run.tokenizer, minimal_pairs(120, seed=0))
    assert result.overall.total == 120 and result.overall.interval[0] > 0.5  # better than a coin
    assert sum(acc.total for acc in result.by_phenomenon.values()) == 120
    assert result.by_phenomenon["word_swap"].value >= 0.75
    assert (result.overall.right, len(result.margins)) == (sum(m > 0 for m in result.margins), 120)


def test_total_log_prob_is_the_sum_over_tokens(trained):
    model, run = trained
    ids = run.tokenizer.encode("<|doc|>The dog runs.")
    assert total_log_probs(model, [ids])[0] == pytest.approx(float(token_log_probs(model, [ids])[0].sum()))


@pytest.mark.parametrize("pos", ["sinusoidal", "rope", "alibi", "none"])
def test_a_stretched_model_predicts_the_first_block_exactly_as_before(pos):
    model = random_model(pos, vocab_size=40, block_size=16)
    longer = stretched_model(model, 64)
    assert longer.config.block_size == 64 and model.config.block_size == 16
    ids = torch.randint(0, 40, (2, 64), generator=torch.Generator().manual_seed(1))
    short_logits, _ = model(ids[:, :16])
    long_logits, _ = longer(ids)
    torch.testing.assert_close(long_logits[:, :16], short_logits, atol=1e-5, rtol=1e-5)


def test_extrapolation_on_learned_positions_is_refused_with_the_reason():
    model = random_model("learned", vocab_size=40, block_size=16)
    with pytest.raises(UserError, match="learned positions.*--pos sinusoidal, rope, alibi, none$"):
        stretched_model(model, 32)


def test_extrapolation_reports_one_bucket_per_block_of_positions():
    model = random_model("alibi", vocab_size=40, block_size=16)
    ids = torch.randint(0, 40, (1000,), generator=torch.Generator().manual_seed(2))
    result = extrapolation(model, ids, 48)
    assert [(b.start, b.end) for b in result.buckets] == [(0, 16), (16, 32), (32, 48)]
    assert result.windows == (1000 - 1) // 48 and result.beyond_block().start == 16
    assert all(b.low <= b.loss <= b.high for b in result.buckets)
    with pytest.raises(UserError, match="needs at least"):
        extrapolation(model, ids[:40], 48)
