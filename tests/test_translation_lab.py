"""The encoder-decoder positions lab on a tiny config: every variant is trained, measured and reported."""

from __future__ import annotations

import json

import pytest

from minitx.experiments.translation_lab import TranslationLab, run_lab
from minitx.experiments.translation_report import build_report, findings, render_markdown


@pytest.mark.slow
def test_the_lab_trains_each_kind_and_its_encoder_without_positions_and_reports_them(tmp_path):
    lab = TranslationLab(kinds=["learned", "none"], seeds=1, model={"arch": "encoder-decoder", "n_layers": 1,
                                                                     "encoder_layers": 1, "n_heads": 2, "dim": 16,
                                                                     "block_size": 64},
                         train={"steps": 3, "batch_size": 4, "warmup": 1, "eval_every": 3, "eval_batches": 1,
                                "save_every": 3, "threads": 1, "device": "cpu", "compile": False},
                         vocab_size=300, test_pairs=6, two_phrase_pairs=3, align_pairs=3)
    variants = ["learned", "none", "learned+enc-none"]  # "none" has no signal to take away: no none+enc-none
    assert [v[0] for v in lab.variants()] == variants
    finished, runs, seconds = run_lab(tmp_path / "lab", lab)
    assert finished and [r["variant"] for r in runs] == variants
    for run, (decoder, encoder) in zip(runs, [("learned", "learned"), ("none", "none"), ("learned", "none")],
                                       strict=True):
        config = json.loads((tmp_path / "lab" / "runs" / f"{run['variant']}-seed0" / "config.json").read_text())
        assert (config["model"]["pos"], config["model"]["encoder_pos"]) == (decoder, encoder)
        assert (run["pos"], run["encoder_pos"]) == (decoder, encoder)
        assert run["eval"]["outputs"]["n"] == 6 and run["two_phrases"]["n"] == 3
        alignment = run["alignment"]
        heads = alignment["heads"]
        assert alignment["pairs"] == 3 and len(heads) == 1 * 2  # every cross-attention head: 1 layer x 2 heads
        assert all(0.0 <= h["aer"] <= 1.0 for h in heads)
        best = min(heads, key=lambda h: h["aer"])  # the best head is the lowest AER, and named as such
        assert (alignment["best_head"]["layer"], alignment["best_head"]["head"], alignment["best_head"]["aer"]) == (
            best["layer"], best["head"], best["aer"])
    report = build_report({"seeds": 1, "train": lab.train, "model": lab.model, "test_pairs": 6,
                           "two_phrase_pairs": 3, "align_pairs": 3}, variants, runs, seconds, finished)
    assert set(report["rows"]) == set(variants)
    assert any("Encoder without positions (learned decoder)" in s for s in report["findings"])
    assert any(s.startswith("No positions on either stack") for s in report["findings"])
    assert report["findings"][0].startswith("Caution")  # three steps teach nothing: the report says so
    markdown = render_markdown(report, "minitx experiment positions --arch encoder-decoder")
    assert all(f"| {variant} |" in markdown for variant in variants)
    again = run_lab(tmp_path / "lab", lab)  # a rerun reuses every measured run
    assert again[1] == runs


def metric(mean, sd=0.0):
    return {"mean": mean, "sd": sd, "n": 2}


def rows_with(two_set_both, two_set_bare, none_em, best_em):
    base = {"chrf": metric(50.0), "em_0": metric(0.9), "em_1": metric(0.9), "em_2": metric(0.9),
            "best_aer": metric(0.1), "random_aer": metric(0.8)}
    return {"rope": {**base, "exact_match": metric(best_em), "em_two_set": metric(two_set_both, 0.01)},
            "none": {**base, "exact_match": metric(none_em, 0.01), "em_two_set": metric(0.1)},
            "rope+enc-none": {**base, "exact_match": metric(0.6), "em_two_set": metric(two_set_bare, 0.01)}}


def test_findings_say_an_encoder_without_positions_fails_on_two_phrases_only_when_the_numbers_show_it():
    failing = findings(rows_with(0.9, 0.3, 0.2, 0.95), seeds=2)
    assert any("it fails there" in s for s in failing)
    assert any("reverses here" in s for s in failing)  # none far behind rope: the decoder-only result reverses
    holding = findings(rows_with(0.9, 0.895, 0.945, 0.95), seeds=2)
    assert any("does not clearly fail there" in s for s in holding)
    assert any("holds here too" in s for s in holding)
    assert not any(s.startswith("Caution") for s in holding)
