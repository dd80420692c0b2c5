"""`minitx eval`: loss, perplexity and bits per byte equal a computation by hand; grammar sampling counts
sentences right; int8 weights score close to fp32."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from helpers import random_model
from minitx.cli import app
from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

runner = CliRunner()
TINY = ["--tokenizer", "char", "--preset", "tiny", "--layers", "1", "--heads", "2", "--dim", "32",
        "--block-size", "16", "--batch-size", "8", "--warmup", "5", "--eval-every", "30", "--eval-batches", "2",
        "--seed", "4", "--threads", "1", "--device", "cpu", "--no-compile", "--quiet"]


def hand_loss(model, ids: list[int]) -> tuple[float, int]:
    """Mean -log p(next token), window by window, with nothing but the logits and a log-softmax."""
    block = model.config.block_size
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - block, block):  # windows of block + 1 tokens, overlapping by one
            window = torch.tensor(ids[start : start + block + 1])
            logits, _ = model(window[None, :-1])
            log_probs = torch.log_softmax(logits[0].double(), dim=-1)  # [T, V]
            nll -= sum(log_probs[t, int(window[t + 1])].item() for t in range(block))
            count += block
    return nll / count, count


@pytest.mark.parametrize("n_tokens", [16 * 5 + 1, 16 * 5 + 9, 17])
def test_loss_perplexity_and_bits_per_byte_equal_a_hand_computation(n_tokens):
    model = random_model(vocab_size=40, block_size=16)
    ids = torch.randint(0, 40, (n_tokens,), generator=torch.Generator().manual_seed(n_tokens)).tolist()
    n_bytes = 3 * n_tokens + 1  # as if each token were 3 bytes of text, plus one
    score = score_ids(model, torch.tensor(ids), n_bytes, batch_size=2)  # batches of 2 windows: a split batch too
    loss, count = hand_loss(model, ids)
    assert score.tokens == count == (n_tokens - 1) // 16 * 16  # a tail shorter than a window is not scored
    assert score.loss == pytest.approx(loss, rel=1e-6)
    assert score.perplexity == pytest.approx(math.exp(loss), rel=1e-6)
    # bits per byte: nats -> bits, over the bytes the scored tokens stand for (n_bytes · count / n_tokens)
    assert score.bits_per_byte == pytest.approx(loss / math.log(2) * count / (n_bytes * count / n_tokens), rel=1e-6)
    assert score.bytes == n_bytes


def test_text_shorter_than_a_window_is_a_user_error():
    from minitx.errors import UserError

    with pytest.raises(UserError, match="at least block size"):
        score_ids(random_model(block_size=16), torch.arange(16), 16)


def test_grammar_score_counts_documents_sentences_and_rejections():
    stories = [
        "The dog runs. The dogs runs.",  # 2 sentences, 1 rejected (agreement)
        "Tom sees the ball.",  # 1 sentence
        "A red ball is big. The cat sits. The big little dog runs.",  # 3 sentences, 1 rejected (adjectives)
    ]
    report = grammar_score(stories)
    assert (report.documents, report.total, report.accepted) == (3, 6, 4)
    assert [(r.document, r.sentence) for r in report.rejected] == [(0, "The dogs runs."),
                                                                   (2, "The big little dog runs.")]


def test_sample_stories_returns_n_stories_without_markers_reproducibly():
    from minitx.text.tokenizer import DOC_TOKEN, Tokenizer

    tokenizer = Tokenizer.train_char("<|doc|>The dog runs. A cat sits.\n")
    model = random_model(vocab_size=tokenizer.vocab_size, block_size=16)
    first = sample_stories(model, tokenizer, 27, seed=3, temperature=1.0)  # 27: a batch of 25, then one of 2
    assert len(first) == 27 and not any(DOC_TOKEN in s for s in first)
    assert sample_stories(model, tokenizer, 27, seed=3, temperature=1.0) == first
    assert sample_stories(model, tokenizer, 27, seed=4, temperature=1.0) != first


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from minitx.corpus import generate_corpus

    root = tmp_path_factory.mktemp("eval")
    corpus = root / "stories.txt"
    corpus.write_text(generate_corpus(20000, seed=7), encoding="utf-8")
    out = root / "run"
    result = runner.invoke(app, ["train", str(corpus), "--out", str(out), "--steps", "60", *TINY])
    assert result.exit_code == 0, result.output + result.stderr
    return out


def eval_json(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_eval_reports_the_validation_loss_computed_by_hand(run_dir):
    from minitx.rundir import load_model

    result = eval_json(str(run_dir))
    model, run = load_model(run_dir)
    ids, n_bytes, _ = validation_ids(run)
    loss, count = hand_loss(model, ids.tolist())
    assert result["tokens"] == count and result["bytes"] == n_bytes
    assert result["loss"] == pytest.approx(loss, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(loss), rel=1e-6)
    assert result["bits_per_byte"] == pytest.approx(loss / math.log(2) * len(ids) / n_bytes, rel=1e-6)
    assert result["loss"] < math.log(run.tokenizer.vocab_size) - 0.5  # the model did learn something


def test_eval_on_a_file_scores_that_file_and_prints_the_same_figures_as_a_table(run_dir, tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text("<|doc|>The dog runs. The cat sits on the mat. Tom sees the ball.\n" * 4, encoding="utf-8")
    result = eval_json(str(run_dir), str(text))
    assert result["source"] == str(text) and result["bytes"] == len(text.read_bytes())
    table = runner.invoke(app, ["eval", str(run_dir), str(text), "--device", "cpu"])
    assert table.exit_code == 0, table.output + table.stderr
    assert f"{result['loss']:.4f}" in table.output and f"{result['bits_per_byte']:.4f}" in table.output
    assert f"{result['perplexity']:.3f}" in table.output


def test_int8_weights_score_close_to_fp32(run_dir):
    fp32, int8 = eval_json(str(run_dir)), eval_json(str(run_dir), "--quantize", "int8")
    assert int8["weights"] == "int8" and int8["tokens"] == fp32["tokens"]
    assert int8["loss"] != fp32["loss"]  # it really ran with other weights
    assert abs(int8["loss"] - fp32["loss"]) < 0.01 * fp32["loss"]


def test_eval_grammar_samples_n_stories_and_counts_their_sentences(run_dir):
    result = eval_json(str(run_dir), "--grammar", "7", "--seed", "1")
    grammar = result["grammar"]
    assert grammar["documents"] == 7 and grammar["seed"] == 1
    assert grammar["accepted"] + len(grammar["rejected"]) == grammar["total"]
    # the same stories, sampled again with the same seed, give the same counts
    again = eval_json(str(run_dir), "--grammar", "7", "--seed", "1")["grammar"]
    assert again == grammar
