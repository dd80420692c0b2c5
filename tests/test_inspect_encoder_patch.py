"""Encoder-side activation patching on an encoder-decoder: the clean encoder's stream (and so its memory) put
into the corrupt run at chosen source positions. The ends are exact, a batch equals one pass per cell, the
memory is the last point, and sources of different lengths leave the encoder grids out and say so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import random_translator as shared_translator
from helpers import train_pair_run
from minitx.cli import app
from minitx.inspect.contrasts import Contrast, decoder_labels
from minitx.inspect.patching import Place, fractions, patch, patched_differences, residual_places
from minitx.inspect.views.circuits_document import schema
from minitx.model.encoder_decoder import EncoderDecoder

runner = CliRunner()
ENCODER_LAYERS = 2


def random_translator(pos: str = "rope", seed: int = 0) -> EncoderDecoder:
    """The shared random 2 + 2-layer encoder-decoder (helpers.py), with this file's encoder depth."""
    return shared_translator(pos, encoder_layers=ENCODER_LAYERS, seed=seed)


def pairs(n: int = 5, seed: int = 0, *, drop_every: int = 0) -> list[Contrast]:
    """Random sources (4..7 tokens and the end token) whose corrupt twin changes tokens 1 and 2; with
    `drop_every` k, every k-th pair's corrupt source loses a token instead (a different length)."""
    g = torch.Generator().manual_seed(seed)
    made = []
    for i in range(n):
        clean = torch.randint(1, 30, (4 + i % 4,), generator=g).tolist()
        corrupt = list(clean)
        corrupt[1], corrupt[2] = clean[1] % 29 + 1, clean[2] % 29 + 1
        if drop_every and i % drop_every == 0:
            del corrupt[3]
        target = [0, *torch.randint(1, 30, (2 + i % 3,), generator=g).tolist()]
        labels = ["article", "noun", "noun", *(["after"] * (len(clean) - 3)), "end"]
        made.append(Contrast(target, target, 2, 5, decoder_labels(len(target)), clean_source=[*clean, 0],
                             corrupt_source=[*corrupt, 0], source_labels=labels))
    return made


def delta(model: EncoderDecoder, source: list[int], target: list[int], good: int = 2, bad: int = 5) -> float:
    with torch.no_grad():
        logits, _ = model(torch.tensor([source]), torch.tensor([target]), None)
    return float(logits[0, -1, good] - logits[0, -1, bad])


@pytest.mark.parametrize("pos", ["rope", "learned", "alibi"])
def test_every_source_position_patched_is_the_clean_run_and_none_the_corrupt_one(pos) -> None:
    model = random_translator(pos)
    contrasts = pairs()
    points = range(ENCODER_LAYERS + 1)
    places = [Place("none"), *(Place("source", p) for p in points),
              *(Place("source", p, label=label) for p in points for label in ("article", "noun", "after", "end"))]
    got = patched_differences(model, contrasts, places)
    clean = np.array([delta(model, c.clean_source, c.clean) for c in contrasts])
    corrupt = np.array([delta(model, c.corrupt_source, c.corrupt) for c in contrasts])
    assert np.abs(got[:, 0] - corrupt).max() <= 1e-5
    for p in points:  # all positions at any encoder point: the whole encoder, so the memory, is clean
        assert np.abs(got[:, 1 + p] - clean).max() <= 1e-5
    # The fractions as `patch` takes them: the clean and the corrupt run unpatched, each a batch of its own.
    corrupt = got[:, 0]
    clean = patched_differences(model, [replace(c, corrupt_source=c.clean_source) for c in contrasts],
                                [Place("none")])[:, 0]
    mean, _, _, _ = fractions(got, clean, corrupt)
    assert np.allclose(mean[1 : 2 + ENCODER_LAYERS], 1.0, atol=1e-5) and abs(mean[0]) <= 1e-5
    by_label = got[:, 2 + ENCODER_LAYERS :].reshape(len(contrasts), len(points), 4)
    # The embedding differs only at the changed tokens: patching it elsewhere changes nothing, there everything.
    assert np.abs(by_label[:, 0, 0] - corrupt).max() <= 1e-5 and np.abs(by_label[:, 0, 2:] - corrupt[:, None]).max() \
        <= 1e-5
    assert np.abs(by_label[:, 0, 1] - clean).max() <= 1e-5
    assert np.abs(by_label[:, 1:, 0] - corrupt[:, None]).max() > 1e-3  # after a block, other positions know it


def test_the_last_encoder_point_at_a_position_is_the_memory_put_in_by_hand() -> None:
    model = random_translator()
    pair = pairs(1)[0]
    ln_f = model.encoder["ln_f"]
    kept = {}
    handle = ln_f.register_forward_hook(lambda _m, _i, out: kept.update(memory=out.clone()))
    try:
        delta(model, pair.clean_source, pair.clean)
    finally:
        handle.remove()

    def put(_m, _i, out):
        out = out.clone()
        out[:, 1] = kept["memory"][:, 1]  # source position 1 (a "noun" token) of the clean memory
        return out

    handle = ln_f.register_forward_hook(put)
    try:
        expected = delta(model, pair.corrupt_source, pair.corrupt)
    finally:
        handle.remove()
    one = Contrast(pair.clean, pair.corrupt, pair.good, pair.bad, pair.labels, clean_source=pair.clean_source,
                   corrupt_source=pair.corrupt_source, source_labels=["x", "here", "x", "x", "x"])
    got = patched_differences(model, [one], [Place("source", ENCODER_LAYERS, label="here")])[0, 0]
    assert got == pytest.approx(expected, abs=1e-5)


def test_one_batch_equals_one_pass_per_cell_with_decoder_and_encoder_places_and_unequal_pairs() -> None:
    model = random_translator("alibi")
    contrasts = pairs(6, seed=1, drop_every=3)
    places = [Place("none"), Place("resid", 1, label="last"), Place("head", 1, 0, "cross_attn"), Place("mlp", 1),
              *(Place("source", p, label=label) for p in range(ENCODER_LAYERS + 1)
                for label in ("article", "noun", "after", "end")), Place("source", 1)]
    batched = patched_differences(model, contrasts, places)
    one_by_one = np.stack([patched_differences(model, [c], places, chunk_rows=1)[0] for c in contrasts])
    assert np.allclose(batched, one_by_one, atol=1e-5, equal_nan=True)
    unequal = [i for i, c in enumerate(contrasts) if len(c.clean_source) != len(c.corrupt_source)]
    assert unequal == [0, 3]
    assert np.isnan(batched[unequal, 4:]).all() and not np.isnan(batched[unequal, :4]).any()
    assert not np.isnan(batched[[1, 2, 4, 5], 4:]).any()


def test_the_report_adds_the_encoder_grids_and_leaves_the_decoders_alone() -> None:
    model = random_translator()
    contrasts = pairs(6, drop_every=3)
    report = patch(model, contrasts)
    assert [g.title for g in report.grids] == ["residual stream", "heads", "cross-attention heads", "MLPs",
                                               "encoder output (memory)", "encoder stream"]
    stream, memory = report.grid("encoder stream"), report.grid("encoder output (memory)")
    assert stream.rows == ["embed", "block 0", "block 1"] and memory.rows == ["memory"]
    assert stream.columns == memory.columns == ["article", "noun", "after", "end"]
    assert np.array_equal(memory.mean, stream.mean[-1:]) and (stream.counts == 4).all()  # 4 of 6 pairs
    assert np.allclose(stream.mean[0], [0.0, 1.0, 0.0, 0.0], atol=1e-5)
    assert report.notes == ["encoder grids: 4 of 6 pairs (the other pairs' two sources differ in token length, so a "
                            "source position of one is not one of the other)"]
    decoder_only = patch(model, [c for i, c in enumerate(contrasts) if i % 3 == 0])  # only the unequal pairs
    assert [g.title for g in decoder_only.grids] == ["residual stream", "heads", "cross-attention heads", "MLPs"]
    assert "need" in decoder_only.notes[0] and "same token length" in decoder_only.notes[0]
    # The decoder's grids are what the decoder's places alone give, measured without any encoder place.
    decoder_places = [Place("none"), *residual_places(3, ["start", "prefix", "last"]),
                      *(Place("mlp", layer) for layer in range(2))]
    alone = patched_differences(model, contrasts, decoder_places)
    mean, _, _, _ = fractions(alone, report.clean, alone[:, 0])
    assert np.allclose(report.grid("residual stream").mean.ravel(), mean[1:10], atol=1e-6, equal_nan=True)
    assert np.allclose(report.grid("MLPs").mean.ravel(), mean[10:], atol=1e-6)


# -- the command ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encoder-patch") / "run"
    return train_pair_run(out)


def test_inspect_patch_writes_the_encoder_grids_for_sources_of_one_length(pair_run, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "patch.json"
    result = runner.invoke(app, ["inspect-patch", str(pair_run), "--clean", "The big dog sees the red ball.",
                                 "--corrupt", "The big cat sees the red ball.", "--answer", "p", "g", "--prompt",
                                 "El", "--json", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "recovered by patching: encoder output (memory)" in result.output
    assert "recovered by patching: encoder stream" in result.output
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema("inspect-patch"))
    labels = document["pairs"][0]["source_labels"]
    assert labels[:3] == ["0 T", "1 h", "2 e"] and len(labels) == len("The big dog sees the red ball.") + 1
    grids = {g["title"]: g for g in document["grids"]}
    stream = grids["encoder stream"]
    assert stream["rows"] == ["embed", "block 0"] and stream["columns"] == labels
    changed = [i for i, (a, b) in enumerate(zip("The big dog", "The big cat", strict=True)) if a != b]
    embed = stream["recovered"][0]
    assert all(v == pytest.approx(0.0, abs=1e-5) for i, v in enumerate(embed) if i not in changed)
    assert grids["encoder output (memory)"]["recovered"][0] == stream["recovered"][-1]
    assert document["notes"] == []


def test_inspect_patch_explains_why_sources_of_two_lengths_have_no_encoder_grids(pair_run, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "patch.json"
    result = runner.invoke(app, ["inspect-patch", str(pair_run), "--clean", "The big dog sees the red ball.",
                                 "--corrupt", "The big bird sees the red ball.", "--answer", "p", "g", "--prompt",
                                 "El", "--json", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "recovered by patching: cross-attention heads" in result.output
    output = " ".join(result.output.split())  # the console wraps lines
    assert "encoder stream" not in output
    assert "note: no encoder grids: patching a source position needs the two sources to have the same token " \
           "length (31 and 32 tokens)" in output
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema("inspect-patch"))
    assert [g["title"] for g in document["grids"]] == ["residual stream", "heads", "cross-attention heads", "MLPs"]
    assert len(document["notes"]) == 1 and "same token length" in document["notes"][0]


def test_inspect_patch_on_noun_pairs_labels_source_positions_by_role(pair_run, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "patch.json"
    result = runner.invoke(app, ["inspect-patch", str(pair_run), "--pairs", "noun", "--n", "12", "--json", str(path),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema("inspect-patch"))
    # One character a token: most swapped nouns change the length; with seed 0 the 12th pair keeps it.
    assert document["notes"] == ["encoder grids: 1 of 12 pairs (the other pairs' two sources differ in token length, "
                                 "so a source position of one is not one of the other)"]
    grids = {g["title"]: g for g in document["grids"]}
    columns = grids["encoder stream"]["columns"]
    assert "noun" in columns and columns[-1] == "end"
    order = ["before", "article", "adjective", "noun", "after", "end"]
    assert columns == [c for c in order if c in columns]
    for pair in document["pairs"]:
        assert pair["source_labels"][-1] == "end" and "noun" in pair["source_labels"]
