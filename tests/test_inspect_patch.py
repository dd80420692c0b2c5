"""Activation patching: exact ends, batched = one pass per cell = a hand-written reference, contrasts, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import reference_gpt
from helpers import random_model
from minitx.cli import app
from minitx.commands.circuits import run_inspect_patch
from minitx.inspect.contrasts import PATCHABLE, Contrast, flip_subject, phenomenon_contrasts
from minitx.inspect.patching import Place, patch, patched_differences
from minitx.inspect.views.circuits_document import schema


def contrasts(n: int = 6, seed: int = 0, vocab: int = 40) -> list[Contrast]:
    """Random clean prompts of 5..8 tokens; the corrupt one changes position 1 (and 3); fixed answers."""
    g = torch.Generator().manual_seed(seed)
    made = []
    for i in range(n):
        length = 5 + i % 4
        clean = torch.randint(vocab, (length,), generator=g).tolist()
        corrupt = list(clean)
        corrupt[1] = (clean[1] + 7) % vocab
        corrupt[3] = (clean[3] + 3) % vocab
        labels = ["start", "subject", "clause", "clause"] + ["clause"] * (length - 5) + ["last"]
        made.append(Contrast(clean, corrupt, good=2, bad=5, labels=labels))
    return made


def delta(model, ids: list[int], good: int = 2, bad: int = 5) -> float:
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    return float(logits[0, -1, good] - logits[0, -1, bad])


@pytest.mark.parametrize("pos", ["learned", "rope", "alibi"])
def test_the_ends_are_exact(pos) -> None:
    model = random_model(pos)
    pairs = contrasts()
    clean = np.array([delta(model, c.clean) for c in pairs])
    corrupt = np.array([delta(model, c.corrupt) for c in pairs])
    every_point = [Place("resid", point) for point in range(model.config.n_layers + 1)]
    got = patched_differences(model, pairs, [Place("none"), *every_point, Place("resid", 2, label="last")])
    assert np.abs(got[:, 0] - corrupt).max() <= 1e-5  # patching nothing: the corrupt run
    for column in range(1, got.shape[1]):  # the whole stream at any point, or the last position of the last: clean
        assert np.abs(got[:, column] - clean).max() <= 1e-5
    report = patch(model, pairs)
    stream = report.grid("residual stream")
    assert np.abs(stream.mean[-1] - [0, 0, 0, 1]).max() <= 1e-5  # only the last position matters at the end
    assert stream.mean[0, 0] == pytest.approx(0.0, abs=1e-5)  # position 0 is the same in both prompts


def test_clean_into_clean_changes_nothing() -> None:
    model = random_model()
    same = [Contrast(c.clean, c.clean, c.good, c.bad, c.labels) for c in contrasts()]
    places = [Place("resid", 1, label="subject"), Place("head", 0, 1), Place("head", 1, 0), Place("mlp", 1),
              Place("resid", 0, label="last")]
    got = patched_differences(model, same, places)
    clean = np.array([delta(model, c.clean) for c in same])
    assert np.abs(got - clean[:, None]).max() <= 1e-5


def test_one_batch_equals_one_forward_pass_per_cell() -> None:
    model = random_model()
    pairs = contrasts()
    places = [Place("resid", p, label=label) for p in range(3) for label in ("start", "subject", "clause", "last")]
    places += [Place("head", layer, head) for layer in range(2) for head in range(2)]
    places += [Place("mlp", layer) for layer in range(2)]
    batched = patched_differences(model, pairs, places)
    one_by_one = np.stack([patched_differences(model, [c], places, chunk_rows=1)[0] for c in pairs])
    assert np.abs(batched - one_by_one).max() <= 1e-5


def test_patching_matches_a_hand_written_reference() -> None:
    model = random_model("learned")
    pairs = contrasts(3)
    places = [Place("resid", 1, label="subject"), Place("resid", 2, label="clause"), Place("head", 1, 1),
              Place("mlp", 0)]
    got = patched_differences(model, pairs, places)
    hd = model.config.head_dim
    for n, c in enumerate(pairs):
        clean = reference_gpt.forward(model, c.clean)
        subject = [t for t, label in enumerate(c.labels) if label == "subject"]
        clause = [t for t, label in enumerate(c.labels) if label == "clause"]
        patches = [{("resid", 1): (subject, clean.stream[1])}, {("resid", 2): (clause, clean.stream[2])},
                   {("head", 1, 1): clean.head_inputs[1][:, hd:2 * hd]}, {("mlp", 0): clean.mlp[0]}]
        for j, one in enumerate(patches):
            logits = reference_gpt.forward(model, c.corrupt, one).logits
            assert got[n, j] == pytest.approx(float(logits[-1, 2] - logits[-1, 5]), abs=1e-4)


def test_fractions_are_a_ratio_of_sums_with_an_interval_around_them() -> None:
    model = random_model()
    report = patch(model, contrasts(8))
    heads = report.grid("heads")
    assert heads.mean.shape == (2, 2) and heads.counts.min() == 8
    assert (heads.low <= heads.mean + 1e-9).all() and (heads.mean <= heads.high + 1e-9).all()
    stream = report.grid("residual stream")
    assert stream.columns == ["start", "subject", "clause", "last"] and stream.rows[0] == "embed"


def test_agreement_contrasts_differ_only_in_the_subjects_number() -> None:
    from minitx.corpus.generate import generate_corpus
    from minitx.text.tokenizer import Tokenizer

    tokenizer = Tokenizer.train_bpe([generate_corpus(60_000, seed=0)], vocab_size=700, show_progress=False)
    assert flip_subject(["A", "dog", "that", "runs"], 1) == ["The", "dogs", "that", "run"]
    for phenomenon in PATCHABLE:
        made, skipped = phenomenon_contrasts(tokenizer, phenomenon, 12, block_size=64)
        assert made, skipped
        for c in made:
            assert len(c.clean) == len(c.corrupt) == len(c.labels) and c.good != c.bad
            changed = [t for t, (a, b) in enumerate(zip(c.clean, c.corrupt, strict=True)) if a != b]
            assert changed and {c.labels[t] for t in changed} <= {"subject", "clause", "last"}
            assert c.labels[-1] == "last" and c.labels[0] == "start"
            assert tokenizer.decode([c.good]).strip() != tokenizer.decode([c.bad]).strip()


# -- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A random model with a BPE tokenizer of the stories, in which most nouns and verbs are one token."""
    from minitx import rundir
    from minitx.config import TrainConfig
    from minitx.corpus.generate import generate_corpus
    from minitx.text.tokenizer import Tokenizer

    path = tmp_path_factory.mktemp("run")
    tokenizer = Tokenizer.train_bpe([generate_corpus(60_000, seed=0)], vocab_size=700, show_progress=False)
    model = random_model(vocab_size=tokenizer.vocab_size, block_size=40)
    rundir.save_config(path, model.config, TrainConfig())
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)
    return path


def patch_output(run_dir, **flags) -> str:
    out = Console(record=True, width=100, color_system=None)
    run_inspect_patch(run_dir, device="cpu", console=out, threads=1, **flags)
    return out.export_text()


def test_the_command_on_agreement_pairs_prints_every_grid_and_valid_json(run_dir, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    text = patch_output(run_dir, pairs="agreement_far", n=4, json_path=tmp_path / "patch.json")
    assert "4 agreement_far pairs" in text
    for title in ("residual stream", "heads", "MLPs"):
        assert f"recovered by patching: {title}" in text
    document = json.loads((tmp_path / "patch.json").read_text())
    jsonschema.validate(document, schema("inspect-patch"))
    assert len(document["pairs"]) == 4 and document["phenomenon"] == "agreement_far"
    stream = document["grids"][0]
    assert stream["recovered"][-1][-1] == pytest.approx(1.0, abs=1e-5)


def test_clean_and_corrupt_text_with_answers(run_dir) -> None:
    text = patch_output(run_dir, clean="The dog sees the", corrupt="The cat sees the", answer=("the", "a"))
    assert "logit(' the') − logit(' a')" in text and "1 The" in text


def test_bad_input_is_one_line_and_exit_2(run_dir) -> None:
    runner = CliRunner()
    cases = {
        ("--pairs", "agreement_middle"): "is not a minimal-pair phenomenon; choose one of: agreement_local, "
                                         "agreement_far",
        ("--pairs", "article"): "'article' cannot be patched; choose one of",
        ("--clean", "The dog sees", "--corrupt", "The dog sees the big"): "patching needs prompts of the same token",
        ("--clean", "The dog sees the ball. " * 6, "--corrupt", "The cat sees the ball. " * 6): "reads at most 40",
        ("--clean", "The dog sees the", "--corrupt", "The cat sees the", "--answer", "zyzzyva", "the"):
            "'zyzzyva' is not one token: this tokenizer splits it as",
        ("--clean", "The dog sees the"): "--clean and --corrupt go together",
        (): "give either --pairs PHENOMENON or --clean TEXT --corrupt TEXT",
    }
    for args, message in cases.items():
        result = runner.invoke(app, ["inspect-patch", str(run_dir), "--device", "cpu", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_the_html_page_gains_the_patching_heatmaps(run_dir, tmp_path) -> None:
    patch_output(run_dir, pairs="agreement_local", n=4, html=tmp_path / "patch.html")
    page = (tmp_path / "patch.html").read_text()
    assert 'id="patching"' in page and 'id="patch-0"' in page and 'id="patch-1"' in page
