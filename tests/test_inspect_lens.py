"""The logit lens and direct logit attribution: exact against the model, a hand-written reference, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import reference_gpt
from helpers import random_model
from minitx.cli import app
from minitx.commands.circuits import run_inspect_lens
from minitx.inspect.attribution import attribute
from minitx.inspect.lens import lens_logits, logit_lens
from minitx.inspect.residual import residual_stream
from minitx.inspect.views.circuits_document import VERSION, schema
from minitx.inspect.views.lens import shown_points
from minitx.text.tokenizer import Tokenizer

IDS = [0, 5, 9, 3, 3, 7, 1, 12, 5, 9]
CORPUS = "<|doc|>the cat sat on the mat. a dog ran to the sun.\n" * 40


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope", "alibi", "none"])
def test_the_last_lens_row_is_the_models_own_logits(pos) -> None:
    model = random_model(pos)
    lens, logits = lens_logits(model, torch.tensor([IDS, IDS[::-1]]))
    assert lens.shape[0] == model.config.n_layers + 1
    assert (lens[-1] - logits).abs().max() <= 1e-5


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "none"])
def test_every_stream_point_matches_a_hand_written_forward_pass(pos) -> None:
    model = random_model(pos)
    stream, _ = residual_stream(model, torch.tensor([IDS]))
    trace = reference_gpt.forward(model, IDS)
    for point, expected in enumerate(trace.stream):
        assert (stream[point, 0].double() - expected).abs().max() <= 1e-4, point


def test_the_report_follows_the_next_token_or_the_target() -> None:
    model = random_model()
    report = logit_lens(model, IDS, [str(i) for i in IDS])
    assert report.targets == [*IDS[1:], None]
    assert report.points == ["embed", "block 0", "block 1"]
    probs = lens_logits(model, torch.tensor([IDS]))[0][:, 0].softmax(-1)
    for point in range(3):
        for t in range(len(IDS) - 1):
            p = probs[point, t]
            assert report.target_prob[point, t] == pytest.approx(float(p[IDS[t + 1]]), abs=1e-6)
            assert report.target_rank[point, t] == int((p > p[IDS[t + 1]]).sum()) + 1
    assert torch.isnan(report.target_prob[:, -1]).all() and (report.target_rank[:, -1] == 0).all()
    wanted = int(probs[-1, 4].argmax())
    fixed = logit_lens(model, IDS, [str(i) for i in IDS], target=wanted)
    assert fixed.targets == [wanted] * len(IDS) and fixed.target_rank[-1, 4] == 1


@pytest.mark.parametrize("pos,bias", [("learned", True), ("learned", False), ("rope", True), ("alibi", False),
                                      ("none", True)])
def test_the_attribution_parts_sum_to_the_logit_difference(pos, bias) -> None:
    model = random_model(pos)
    if not bias:
        model = _without_biases(model)
    report = attribute(model, IDS, good=4, bad=11)
    with torch.no_grad():
        logits, _ = model(torch.tensor([IDS]))
    assert report.total == pytest.approx(float(logits[0, -1, 4] - logits[0, -1, 11]), abs=1e-5)
    assert abs(sum(p.value for p in report.parts) - report.total) <= 1e-4
    kinds = [p.kind for p in report.parts]
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    assert kinds.count("head") == n_layers * n_heads and kinds.count("mlp") == n_layers
    assert kinds.count("attn bias") == (n_layers if bias else 0)
    assert report.heads().shape == (n_layers, n_heads)


def test_each_heads_share_matches_the_hand_written_reference() -> None:
    model = random_model("learned")
    report = attribute(model, IDS, good=4, bad=11)
    trace = reference_gpt.forward(model, IDS)
    final = trace.stream[-1][-1]
    scale = torch.sqrt(final.var(unbiased=False) + model.transformer.ln_f.eps)
    direction = (model.lm_head.weight[4] - model.lm_head.weight[11]).detach().double() * \
        model.transformer.ln_f.weight.detach().double()

    def share(vector):
        return float((vector - vector.mean()) / scale @ direction)

    grid = report.heads()
    for layer in range(2):
        for head in range(2):
            assert grid[layer, head] == pytest.approx(share(trace.heads[layer][head, -1]), abs=1e-5)
        mlp = next(p for p in report.parts if p.kind == "mlp" and p.layer == layer)
        assert mlp.value == pytest.approx(share(trace.mlp[layer][-1]), abs=1e-5)
    assert report.parts[0].value == pytest.approx(share(trace.stream[0][-1]), abs=1e-5)


def test_shown_points_keep_the_first_and_last_when_they_do_not_fit() -> None:
    assert shown_points(5, 80) == [0, 1, 2, 3, 4]
    many = shown_points(25, 80)
    assert many[0] == 0 and many[-1] == 24 and len(many) < 25


def _without_biases(model):
    from minitx.model import GPT

    config = model.config
    config = type(config)(**{**config.__dict__, "bias": False})
    torch.manual_seed(0)
    plain = GPT(config)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    return plain.eval()


# -- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from minitx import rundir
    from minitx.config import TrainConfig

    path = tmp_path_factory.mktemp("run")
    tokenizer = Tokenizer.train_char(CORPUS)
    model = random_model(vocab_size=tokenizer.vocab_size, block_size=32)
    rundir.save_config(path, model.config, TrainConfig())
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)
    return path


def lens_output(run_dir, **flags) -> str:
    out = Console(record=True, width=80, color_system=None)
    run_inspect_lens(run_dir, device="cpu", console=out, threads=1, **flags)
    return out.export_text()


def test_the_command_prints_a_grid_that_fits_80_columns_and_the_attribution(run_dir, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    text = lens_output(run_dir, prompt="the cat sat on", attribute=("t", "m"), json_path=tmp_path / "lens.json")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "logit lens" in text and "embed" in text and "blk 1" in text
    assert "ln_f's scale frozen" in text and "top contributors" in text and "L1H1" in text
    document = json.loads((tmp_path / "lens.json").read_text())
    jsonschema.validate(document, schema("inspect-lens"))
    assert document["version"] == VERSION and document["points"] == ["embed", "block 0", "block 1"]
    parts = document["attribution"]["parts"]
    assert abs(sum(p["value"] for p in parts) - document["attribution"]["total"]) <= 1e-4
    assert len(document["lens"]) == 3 and len(document["lens"][0]) == len(document["tokens"])


def test_bad_input_is_one_line_and_exit_2(run_dir) -> None:
    runner = CliRunner()
    cases = {
        ("--prompt", "the cat", "--target", "cat"): "'cat' is not one token: this tokenizer splits it as ' ' + 'c'",
        ("--prompt", "the cat", "--attribute", "t", "sat"): "'sat' is not one token",
        ("--prompt", "the cat sat on the mat " * 3): "reads at most 32; shorten it",
    }
    for args, message in cases.items():
        result = runner.invoke(app, ["inspect-lens", str(run_dir), "--device", "cpu", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_the_html_page_gains_a_lens_tab(run_dir, tmp_path) -> None:
    lens_output(run_dir, prompt="the cat", html=tmp_path / "lens.html", png=None)
    page = (tmp_path / "lens.html").read_text()
    assert 'id="tab-lens"' in page and 'id="lens"' in page and "logit lens" in page
