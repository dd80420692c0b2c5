"""`minitx experiment norm` on a tiny config: every norm trains, its block inputs are measured, the report reads."""

from __future__ import annotations

import json

import pytest
import torch

from minitx.errors import UserError
from minitx.experiments.engine import run_experiment
from minitx.experiments.norm import (
    NormExperiment,
    build_report,
    covariate_shift,
    parse_norm,
    render_markdown,
    shifting_noise,
)


def test_norm_labels_parse_and_a_bad_one_is_refused():
    assert parse_norm("pre") == ("pre", "layer", False)
    assert parse_norm("post-rms+noise") == ("post", "rms", True)
    with pytest.raises(UserError, match="PLACE"):
        parse_norm("sandwich")


def test_covariate_shift_is_zero_for_a_stationary_input_and_grows_with_movement():
    still = [{"step": s, "blocks": [{"mean": 0.0, "std": 1.0}]} for s in (1, 2, 3)]
    moving = [{"step": s, "blocks": [{"mean": float(s), "std": 2.0 ** s}]} for s in (1, 2, 3)]
    assert covariate_shift(still) == 0.0
    assert covariate_shift(moving) > 1.0 and covariate_shift(still[:1]) is None


def test_shifting_noise_moves_norm_outputs_in_training_only():
    norm = torch.nn.LayerNorm(8)
    x = torch.randn(4, 8)
    with shifting_noise(1.0, seed=0):
        noisy = norm(x)
        norm.eval()
        clean = norm(x)
    assert not torch.allclose(noisy, clean) and torch.equal(clean, torch.nn.functional.layer_norm(x, (8,)))
    norm.train()
    torch.testing.assert_close(norm(x), clean)  # the hook is gone after the block


@pytest.mark.slow
def test_a_tiny_norm_experiment_trains_measures_and_reports(tmp_path):
    experiment = NormExperiment(
        norms=["pre", "post", "none", "pre+noise"], warmups=[0], lrs=[3e-3], depths=[2], seeds=1,
        model={"n_heads": 2, "dim": 32, "block_size": 32},
        train={"steps": 10, "batch_size": 4, "eval_every": 5, "eval_batches": 1, "save_every": 5, "keep": 100,
               "optimizer": "adamw", "threads": 1, "device": "cpu", "compile": False},
        vocab_size=300, corpus_bytes=40_000, init_depths=[2, 4], shift_windows=2)
    result = run_experiment(tmp_path / "lab", experiment, show_progress=False)
    variants = [name for name, _ in experiment.variants()]
    assert result.finished and [r["variant"] for r in result.runs] == variants
    by_name = {r["variant"].split("-wu")[0]: r for r in result.runs}
    for run in result.runs:
        assert [s["step"] for s in run["block_inputs"]] == [5, 10] and len(run["block_inputs"][0]["blocks"]) == 2
        assert run["shift"] is not None and len(run["curve"]) == 2
    config = json.loads((tmp_path / "lab" / "runs" / f"{variants[2]}-seed0" / "config.json").read_text())
    assert config["model"]["norm"] == "none"
    assert by_name["pre+noise"]["curve"][-1]["train_loss"] != by_name["pre"]["curve"][-1]["train_loss"]
    grads = json.loads((tmp_path / "lab" / "init_gradients.json").read_text())
    assert set(grads) == {"pre", "post", "none"} and [len(grads["post"][d]) for d in ("2", "4")] == [2, 4]
    report = build_report(experiment.to_dict(), variants, result.runs, result.seconds, True, grads)
    assert report["target_loss"] is not None and set(report["rows"]) == set(variants)
    markdown = render_markdown(report, "minitx experiment norm --quick")
    assert "Santurkar's test" in markdown and "Post-LN without warmup" in markdown and "Fig. 3" in markdown
