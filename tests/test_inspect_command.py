"""`minitx inspect-attention` with --over, --induction, --ablate, --generate and --json, and its JSON schema."""

from __future__ import annotations

import json
import re

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from helpers import random_model
from minitx.cli import app
from minitx.commands.inspect import run_inspect_attention
from minitx.config import TrainConfig
from minitx.errors import UserError
from minitx.inspect.views.document import VERSION, schema
from minitx.text.tokenizer import Tokenizer

CORPUS = "<|doc|>the cat sat on the mat. a dog ran to the sun.\n" * 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from minitx import rundir

    path = tmp_path_factory.mktemp("run")
    (path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    tokenizer = Tokenizer.train_char(CORPUS)
    model = random_model(vocab_size=tokenizer.vocab_size)
    train_config = TrainConfig(corpus_files=[str(path / "corpus.txt")])  # the validation split comes from here
    rundir.save_config(path, model.config, train_config)
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)
    return path


def console() -> Console:
    return Console(record=True, width=160, color_system=None)


def inspect(run_dir, **flags) -> str:
    out = console()
    run_inspect_attention(run_dir, device="cpu", console=out, threads=torch.get_num_threads(), **flags)
    return out.export_text()


def test_every_measurement_is_printed_and_the_json_validates_against_its_schema(run_dir, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "out" / "inspect.json"
    text = inspect(run_dir, prompt="the cat", over=3, induction=True, ablate=True, generate=4, json_path=path)
    assert "sampled 4 tokens after the prompt (seed 0)" in text
    assert "over 3 validation windows (mean±spread)" in text and re.search(r"\d\.\d\d±\d\.\d\d", text)
    assert "induction on 16 random sequences of 7 tokens, repeated 2×" in text  # (16 - 1) // 2 = 7 per copy
    assert "loss (nats/token) on copy 1: " in text and "induction heads (induction score ≥ 0.4):" in text
    assert "validation loss rise without each head: mean-ablated/zeroed" in text
    assert "most needed (mean-ablated): layer " in text
    assert f"wrote {path}" in text
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema())
    assert document["version"] == VERSION and document["generated"] == 4 and document["prompt"] == "the cat"
    n = len(document["tokens"])
    assert n == len(document["ids"]) == 1 + len("the cat") + 4
    assert torch.tensor(document["weights"]).shape == (2, 2, n, n)
    assert all(len(document[section]["heads"]) == 4 for section in ("over", "induction", "ablation"))


def test_the_schema_rejects_a_document_that_breaks_it(run_dir, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "plain.json"
    inspect(run_dir, prompt="the cat", json_path=path)
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema())
    assert document["over"] is None and document["induction"] is None and document["ablation"] is None
    for broken in ({**document, "version": 99}, {**document, "roles": [{"layer": 0}]},
                   {k: v for k, v in document.items() if k != "weights"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


def test_ablate_with_png_also_draws_the_ablation_grid(run_dir, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "heads.png"
    text = inspect(run_dir, prompt="the cat", ablate=True, png=png)
    drawn = tmp_path / "heads-ablation.png"
    assert f"wrote {drawn}" in text and drawn.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (dict(over=0), "--over must be at least 1"),
        (dict(over=1000), r"holds \d+ windows of 16 tokens; ask for at most \d+ \(--over\)"),
        (dict(length=5), "--length and --repeats shape the --induction test; add --induction"),
        (dict(induction=True, length=9), "need 19 positions but the block holds 16; use --length 7"),
        (dict(induction=True, repeats=1), "--repeats must be at least 2"),
        (dict(generate=-1), "--generate must be 0 or more"),
    ],
)
def test_impossible_measurements_are_user_errors(run_dir, flags, message) -> None:
    with pytest.raises(UserError, match=message):
        inspect(run_dir, prompt="the cat", **flags)


def test_the_cli_takes_the_new_flags(run_dir, tmp_path) -> None:
    result = CliRunner().invoke(app, ["inspect-attention", str(run_dir), "--prompt", "the cat", "--device", "cpu",
                                      "--induction", "--length", "4", "--repeats", "3", "--json",
                                      str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    assert "random sequences of 4 tokens, repeated 3×" in result.output and "copy 3: " in result.output
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["induction"]["repeats"] == 3
    bad = CliRunner().invoke(app, ["inspect-attention", str(run_dir), "--over", "0", "--device", "cpu"])
    assert bad.exit_code == 2 and bad.output.strip() == "minitx: error: --over must be at least 1, got 0"
