"""Evaluating and inspecting an encoder-decoder: eval numbers equal hand computations, a hand-wired
cross-attention head gets the AER its links deserve, and the commands refuse what they cannot do."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import train_pair_run
from minitx.cli import app
from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.evaluation.intervals import wilson
from minitx.evaluation.translation_eval import output_scores, score_with_interval, target_loss, target_order
from minitx.inspect.alignment import PairCapture, alignment_report, capture_pair, parse_alignment
from minitx.model.encoder_decoder import EncoderDecoder
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer

runner = CliRunner()
PAIRS = [
    {"source": "Mia sees the red ball.", "target": "Mia ve la pelota roja."},
    {"source": "The big dog runs.", "target": "El perro grande corre."},
    {"source": "Sam is happy.", "target": "Sam es feliz."},
]


def tiny_model_and_tokenizer(seed: int = 0) -> tuple[EncoderDecoder, Tokenizer]:
    tokenizer = Tokenizer.train_char("".join(p["source"] + p["target"] for p in PAIRS))
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layers=1, n_heads=2, dim=16,
                         arch="encoder-decoder", pos="learned")
    return EncoderDecoder(config).eval(), tokenizer


def test_target_loss_and_bits_per_byte_equal_a_pair_by_pair_hand_computation():
    model, tokenizer = tiny_model_and_tokenizer()
    boundary = tokenizer.token_id(DOC_TOKEN)
    nll, count = 0.0, 0
    with torch.no_grad():
        for pair in PAIRS:  # one pair at a time: no padding anywhere
            source = torch.tensor([tokenizer.encode(pair["source"]) + [boundary]])
            target = tokenizer.encode(pair["target"])
            logits, _ = model(source, torch.tensor([[boundary] + target]))
            log_probs = torch.log_softmax(logits[0].double(), dim=-1)
            wanted = target + [boundary]  # every target token, then the end
            nll -= sum(log_probs[t, w].item() for t, w in enumerate(wanted))
            count += len(wanted)
    score = target_loss(model, tokenizer, PAIRS, batch_size=2)  # a padded batch of two, then one
    n_bytes = sum(len(p["target"].encode()) for p in PAIRS)
    assert (score.pairs, score.tokens, score.bytes) == (3, count, n_bytes)
    assert score.loss == pytest.approx(nll / count, rel=1e-5)
    assert score.bits_per_byte == pytest.approx(nll / count / math.log(2) * count / n_bytes, rel=1e-5)


def test_output_scores_on_a_hand_made_case():
    from sacrebleu.metrics import BLEU, CHRF

    references = [p["target"] for p in PAIRS]
    hypotheses = ["Mia ve la pelota roja.", "El perro corre grande.", "Sam es feliz."]
    scores = output_scores(hypotheses, references, order="svo")
    assert scores["exact_match"]["hits"] == 2 and scores["exact_match"]["share"] == pytest.approx(2 / 3)
    assert (scores["exact_match"]["low"], scores["exact_match"]["high"]) == pytest.approx(wilson(2, 3))
    # the counts summed over sentences give sacrebleu's own corpus scores
    assert scores["chrf"]["score"] == pytest.approx(CHRF().corpus_score(hypotheses, [references]).score)
    assert scores["bleu"]["score"] == pytest.approx(BLEU().corpus_score(hypotheses, [references]).score)
    assert scores["chrf"]["low"] <= scores["chrf"]["score"] <= scores["chrf"]["high"] <= 100
    # the adjective after its verb is not the target grammar: the checker rejects that one output
    assert scores["grammatical"]["hits"] == 2
    assert target_order(references) == "svo"
    assert target_order(["just some words", "not the target language"]) is None


def test_a_perfect_output_set_has_no_spread():
    references = [p["target"] for p in PAIRS]
    chrf = score_with_interval("chrf", references, references)
    assert chrf == {"score": pytest.approx(100.0), "low": pytest.approx(100.0), "high": pytest.approx(100.0)}


def hand_wired_capture(link_source_word: list[int]) -> PairCapture:
    """A pair of 3 source words (2 tokens each, then the end) and 3 target words (1 token each, then the end),
    with cross-attention layer 0 head 0 looking from each target word at source word `link_source_word[t]`,
    head 1 always at the end token."""
    source_words, target_words = [0, 0, 1, 1, 2, 2, -1], [0, 1, 2, -1]
    looking = np.zeros((4, 7))
    for t, s in enumerate(link_source_word):
        looking[t, 2 * s + 1] = 1.0  # the second token of the source word
    looking[3, 6] = 1.0
    at_end = np.zeros((4, 7))
    at_end[:, 6] = 1.0
    cross = [np.stack([looking, at_end])]  # [L=1][H=2, T, S]
    return PairCapture("a b c", "x y z", list("aabbcc") + [DOC_TOKEN], [DOC_TOKEN, "x", "y", "z"],
                       ["x", "y", "z", DOC_TOKEN], source_words, target_words,
                       {"encoder": [np.ones((2, 7, 7)) / 7], "decoder": [np.ones((2, 4, 4)) / 4], "cross": cross},
                       "learned", "learned")


def test_a_head_wired_to_the_gold_links_has_aer_zero_and_is_named_best():
    gold = [(0, 0), (2, 1), (1, 2)]  # a reordering: target word 1 renders source word 2
    capture = hand_wired_capture([0, 2, 1])
    report = alignment_report([capture], [gold])
    by_head = {(h.layer, h.head): h.aer for h in report.heads}
    assert by_head[0, 0] == 0.0
    assert (report.best.layer, report.best.head) == (0, 0)
    # head 1 reads the end token, which belongs to no word: pooled, every word scores 0 and argmax takes word 0
    assert by_head[0, 1] == pytest.approx(1 - 2 * 1 / 6)
    assert report.random_aer > 0.3  # a random head is far from the gold links


def test_a_head_wired_to_wrong_words_gets_the_aer_of_its_links():
    gold = [(0, 0), (2, 1), (1, 2)]
    capture = hand_wired_capture([0, 1, 2])  # monotone: one link of three right
    report = alignment_report([capture], [gold])
    assert report.heads[0].aer == pytest.approx(1 - 2 * 1 / 6)
    assert capture.head_links(0, 0) == [(0, 0), (1, 1), (2, 2)]


def test_capture_pair_gives_every_attention_with_rows_that_sum_to_one():
    model, tokenizer = tiny_model_and_tokenizer()
    capture = capture_pair(model, tokenizer, "Mia sees the red ball.", "Mia ve la pelota roja.")
    s, t = len("Mia sees the red ball.") + 1, len("Mia ve la pelota roja.") + 1
    assert capture.weights["encoder"][0].shape == (2, s, s)
    assert capture.weights["decoder"][0].shape == (2, t, t)
    assert capture.weights["cross"][0].shape == (2, t, s)  # target rows × source columns
    for kind in ("encoder", "decoder", "cross"):
        np.testing.assert_allclose(capture.weights[kind][0].sum(axis=-1), 1.0, rtol=1e-5)
    assert np.triu(capture.weights["decoder"][0][0], 1).max() == 0.0  # masked: no target token sees the future
    assert capture.source_words[-1] == -1 and max(capture.source_words) == 4  # five source words, the end none
    assert capture.written[-1] == DOC_TOKEN and capture.target_tokens[0] == DOC_TOKEN


def test_parse_alignment_reads_pharaoh_links_and_refuses_anything_else():
    assert parse_alignment("0-0 1-2 2-1") == [(0, 0), (1, 2), (2, 1)]
    for bad in ("0-0 1:2", "", "a-b", "1-"):
        with pytest.raises(UserError):
            parse_alignment(bad)


# -- the commands on a tiny trained run -----------------------------------------------------------

@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("encdec") / "run"
    return train_pair_run(out)


def test_eval_json_on_an_encoder_decoder_run_has_every_measure(pair_run):
    result = runner.invoke(app, ["eval", str(pair_run), "--sentences", "12", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["target"]["pairs"] == 12 and data["target"]["bits_per_byte"] > 0
    assert data["order"] == "svo"  # the built-in references are the svo target language
    for key in ("exact_match", "chrf", "bleu", "grammatical"):
        assert key in data["outputs"]
    assert set(data["by_phenomenon"]) == {"adjective_phrases", "movement"}
    assert sum(b["n"] for b in data["by_phenomenon"]["adjective_phrases"].values()) == 12


def test_eval_with_int8_weights_scores_the_same_translations(pair_run):
    runs = {}
    for weights in ("none", "int8"):
        result = runner.invoke(app, ["eval", str(pair_run), "--sentences", "12", "--json", "--device", "cpu",
                                     "--quantize", weights])
        assert result.exit_code == 0, result.output
        runs[weights] = json.loads(result.output)
    assert runs["int8"]["weights"] == "int8" and runs["none"]["weights"] == "none"
    assert runs["int8"]["target"]["pairs"] == 12
    # int8 rows (one scale each) and bf16 activations move the target loss a little, not a lot
    assert runs["int8"]["target"]["bits_per_byte"] == pytest.approx(runs["none"]["target"]["bits_per_byte"], rel=0.05)


@pytest.mark.parametrize("flag", [["--minimal-pairs", "5"], ["--grammar", "2"], ["--order-test"]])
def test_eval_refuses_decoder_only_measures_on_an_encoder_decoder_run_in_one_line(pair_run, flag):
    result = runner.invoke(app, ["eval", str(pair_run), *flag])
    assert result.exit_code == 2
    assert flag[0] in result.output and "encoder-decoder" in result.output
    assert "Traceback" not in result.output


def test_inspect_attention_on_an_encoder_decoder_run_writes_json_and_the_alignment_page(pair_run, tmp_path):
    json_path, html_path = tmp_path / "a.json", tmp_path / "a.html"
    result = runner.invoke(app, ["inspect-attention", str(pair_run), "--source", "The big dog sees the red ball.",
                                 "--json", str(json_path), "--html", str(html_path), "--over", "3",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "best-aligned head" in result.output and "random heads" in result.output
    data = json.loads(json_path.read_text())
    assert data["target_from"].startswith("the built-in corpus")
    assert data["pair"]["target"] == "El perro grande ve la pelota roja."
    assert len(data["alignment"]["heads"]) == 2 and data["over"]["pairs"] == 3
    page = html_path.read_text()
    assert "alignment-data" in page and "http://" not in page and "https://" not in page  # offline: no address
    again = runner.invoke(app, ["inspect-attention", str(pair_run), "--json", str(json_path), "--device", "cpu"])
    assert again.exit_code == 2 and "--force" in again.output  # nothing is overwritten without --force


def test_inspect_attention_takes_a_users_alignment_and_refuses_one_outside_the_pair(pair_run):
    ok = runner.invoke(app, ["inspect-attention", str(pair_run), "--source", "The green apple falls.",
                             "--target", "La manzana verde cae.", "--alignment", "0-0 2-1 1-2 3-3", "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert "alignment error rate" in ok.output
    bad = runner.invoke(app, ["inspect-attention", str(pair_run), "--source", "The green apple falls.",
                              "--target", "La manzana verde cae.", "--alignment", "0-0 9-1", "--device", "cpu"])
    assert bad.exit_code == 2 and "outside the pair" in bad.output
    refused = runner.invoke(app, ["inspect-attention", str(pair_run), "--induction"])
    assert refused.exit_code == 2 and "--induction" in refused.output


def test_eval_scores_a_users_jsonl_pairs_and_says_grammaticality_is_unknown_outside_the_built_in_language(
        pair_run, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"source": s, "target": t}) for s, t in
                               [("a b", "x y"), ("b a", "y x"), ("a a", "x x")]) + "\n")
    result = runner.invoke(app, ["eval", str(pair_run), str(pairs), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["target"]["pairs"] == 3 and data["order"] is None and data["outputs"]["grammatical"] is None
    assert data["by_phenomenon"]["movement"] == {}  # no alignments, so no movement buckets
