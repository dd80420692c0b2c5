"""`minitx experiment heads` on a tiny config: LM and translation runs per head count, pruning curves, report."""

from __future__ import annotations

import pytest

from minitx.errors import UserError
from minitx.experiments.engine import run_experiment
from minitx.experiments.heads import ATTENTION_KINDS, HeadsExperiment, build_report, loss_at_share, render_markdown

TINY_TRAIN = {"steps": 4, "batch_size": 4, "warmup": 1, "eval_every": 4, "eval_batches": 1, "save_every": 4,
              "optimizer": "adamw", "threads": 1, "device": "cpu", "compile": False}


def tiny(**overrides) -> HeadsExperiment:
    values = dict(heads=[1, 2], seeds=1, train=dict(TINY_TRAIN), vocab_size=300, corpus_bytes=40_000,
                  lm={"arch": "gpt", "n_layers": 1, "dim": 16, "block_size": 32, "pos": "rope"},
                  mt={"arch": "encoder-decoder", "n_layers": 1, "encoder_layers": 1, "dim": 16, "block_size": 64,
                      "pos": "rope"},
                  pairs=12, stories=2, test_pairs=6, align_pairs=3, prune_pairs=4)
    return HeadsExperiment(**{**values, **overrides})


def test_a_head_count_that_does_not_split_the_width_is_refused():
    with pytest.raises(UserError, match="--heads 3"):
        tiny(heads=[3]).validate()
    with pytest.raises(UserError, match="--tasks"):
        tiny(tasks=["vision"]).validate()


def test_the_loss_at_a_share_is_the_first_point_past_it():
    curve = [{"share": 0.0, "loss": 1.0}, {"share": 0.25, "loss": 1.1}, {"share": 0.5, "loss": 1.5},
             {"share": 1.0, "loss": 4.0}]
    assert loss_at_share(curve, 0.5) == 1.5 and loss_at_share(curve, 0.3) == 1.5


@pytest.mark.slow
def test_a_tiny_heads_experiment_measures_both_tasks_and_prunes_every_attention_kind(tmp_path):
    experiment = tiny()
    result = run_experiment(tmp_path / "lab", experiment, show_progress=False)
    variants = [name for name, _, _ in experiment.variants()]
    assert result.finished and [r["variant"] for r in result.runs] == ["lm-h1", "lm-h2", "mt-h1", "mt-h2"]
    lm1, lm2, mt1, mt2 = result.runs
    assert lm1["parameters"] == lm2["parameters"]  # equal width: the head count changes no weight count
    assert {"agreement_local", "agreement_far"} <= set(lm1["minimal_pairs"]["by_phenomenon"])
    for run in (mt1, mt2):
        assert set(run["pruning"]) == set(ATTENTION_KINDS)
        curve = run["pruning"]["cross"]
        assert len(curve) == 1 + run["heads"] and curve[-1]["share"] == 1.0  # 1 layer x H heads
        assert curve[-1]["loss"] != curve[0]["loss"]  # zeroing every cross head changes the loss
    report = build_report(experiment.to_dict(), variants, result.runs, result.seconds, True)
    markdown = render_markdown(report, "minitx experiment heads --quick")
    assert "| lm-h2 |" in markdown and "| mt-h1 |" in markdown and "half cross pruned" in markdown
    assert any(s.startswith("agreement across a relative clause") for s in report["findings"])
