"""The logit lens, direct logit attribution and activation patching on an encoder-decoder: the decoder's
stream read given a source, cross-attention heads as parts, patching between two sources; and the CLI."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import random_translator, train_pair_run
from minitx.cli import app
from minitx.inspect.attribution import attribute
from minitx.inspect.contrasts import (
    Contrast,
    decoder_labels,
    parting,
    source_contrast,
    swap_noun,
    translation_contrasts,
)
from minitx.inspect.lens import lens_logits, logit_lens
from minitx.inspect.patching import Place, patch, patched_differences
from minitx.inspect.residual import decoder_stack, residual_stream
from minitx.inspect.views.circuits_document import schema
from minitx.model.encoder_decoder import EncoderDecoder
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer

runner = CliRunner()
FIXTURE_RUN = Path(__file__).parent / "fixtures" / "run-v1" / "run"  # a decoder-only run
SOURCE = [3, 4, 5, 6, 0]  # the encoder's input ends in the end token (0 here)
TARGET = [0, 7, 8, 9, 10]  # the decoder's: the start token, then the translation so far


def logits_of(model: EncoderDecoder, source: list[int], target: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(torch.tensor([source]), torch.tensor([target]), None)
    return logits[0]


# -- the lens and the attribution read the decoder ----------------------------------------------------

@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope", "alibi", "none"])
def test_the_last_lens_point_is_the_models_own_logits(pos) -> None:
    model = random_translator(pos)
    lens, logits = lens_logits(model, torch.tensor([TARGET]), [SOURCE])
    assert lens.shape[:3] == (model.config.n_layers + 1, 1, len(TARGET))
    assert (lens[-1] - logits).abs().max() <= 1e-5
    assert (logits[0] - logits_of(model, SOURCE, TARGET)).abs().max() <= 1e-5


def test_the_stream_starts_at_the_decoders_embedding_and_depends_on_the_source_only_after_it() -> None:
    model = random_translator("learned")
    stream, _ = residual_stream(model, torch.tensor([TARGET]), [SOURCE])
    embedding = model.decoder["pos"].add_to_embeddings(model.wte(torch.tensor([TARGET])), 0)
    assert (stream[0] - embedding).abs().max() <= 1e-6
    other, _ = residual_stream(model, torch.tensor([TARGET]), [[9, 9, 0]])
    assert (other[0] - stream[0]).abs().max() == 0  # the embedding never sees the source
    assert (other[-1] - stream[-1]).abs().max() > 1e-3  # the blocks do, through cross-attention


def test_sources_of_different_lengths_in_one_batch_read_as_each_alone() -> None:
    model = random_translator()
    sources = [SOURCE, [11, 12, 0]]
    lens, _ = lens_logits(model, torch.tensor([TARGET, TARGET]), sources)
    for row, source in enumerate(sources):
        alone, _ = lens_logits(model, torch.tensor([TARGET]), [source])
        assert (lens[:, row] - alone[:, 0]).abs().max() <= 1e-5


def test_the_report_follows_the_next_target_token_and_the_end_token_after_a_whole_translation() -> None:
    model = random_translator()
    report = logit_lens(model, TARGET, [str(i) for i in TARGET], source=SOURCE, following=0)
    assert report.targets == [*TARGET[1:], 0]
    probs = logits_of(model, SOURCE, TARGET).softmax(-1)
    assert float(report.target_prob[-1, -1]) == pytest.approx(float(probs[-1, 0]), abs=1e-5)


@pytest.mark.parametrize("pos, bias", [("rope", True), ("learned", False), ("alibi", True)])
def test_the_attribution_parts_with_cross_attention_heads_sum_to_the_logit_difference(pos, bias) -> None:
    model = random_translator(pos, bias=bias)
    logits = logits_of(model, SOURCE, TARGET)
    for good, bad in [(4, 5), (1, 29), (7, 8)]:
        report = attribute(model, TARGET, good=good, bad=bad, source=SOURCE)
        assert report.total == pytest.approx(float(logits[-1, good] - logits[-1, bad]), abs=1e-4)
        assert sum(p.value for p in report.parts) == pytest.approx(report.total, abs=1e-4)
    names = [p.name for p in report.parts]
    assert {"L0xH0", "L0xH1", "L1xH0", "L1xH1"} <= set(names) and {"L0H0", "L1H1", "L0 mlp"} <= set(names)
    assert report.heads("cross_attn").shape == (2, 2) and report.heads("attn").shape == (2, 2)
    assert ("L1 cross_attn bias" in names) == bias


def test_a_cross_attention_heads_share_is_its_output_through_the_frozen_final_norm() -> None:
    """By hand: the head's slice of c_proj applied to its own output, centred, divided by σ, times γ, · d."""
    model = random_translator()
    good, bad = 4, 5
    report = attribute(model, TARGET, good=good, bad=bad, source=SOURCE)
    block = decoder_stack(model).blocks[1]
    kept = {}
    handle = block.cross_attn.c_proj.register_forward_pre_hook(lambda _m, i: kept.update(x=i[0][0, -1].double()))
    try:
        logits_of(model, SOURCE, TARGET)
    finally:
        handle.remove()
    hd = model.config.dim // model.config.n_heads
    with torch.no_grad():
        vector = block.cross_attn.c_proj.weight.double()[:, hd:] @ kept["x"][hd:]  # head 1
        direction = model.lm_head.weight.double()[good] - model.lm_head.weight.double()[bad]
        share = float(((vector - vector.mean()) / report.scale * model.decoder["ln_f"].weight.double()) @ direction)
    assert report.heads("cross_attn")[1, 1] == pytest.approx(share, abs=1e-6)


# -- patching between two sources -----------------------------------------------------------------------

def source_pairs(n: int = 5, seed: int = 0) -> list[Contrast]:
    """Random sources (4..7 tokens and the end token); the corrupt one changes a token or drops one."""
    g = torch.Generator().manual_seed(seed)
    made = []
    for i in range(n):
        clean = torch.randint(1, 30, (4 + i % 4,), generator=g).tolist()
        corrupt = list(clean)
        corrupt[1] = clean[1] % 29 + 1
        if i % 2:
            del corrupt[2]  # sources need not be equally long: only the decoder's places are patched
        target = [0, *torch.randint(1, 30, (2 + i % 3,), generator=g).tolist()]
        made.append(Contrast(target, target, 2, 5, decoder_labels(len(target)), clean_source=[*clean, 0],
                             corrupt_source=[*corrupt, 0]))
    return made


def source_delta(model: EncoderDecoder, source: list[int], target: list[int], good: int = 2, bad: int = 5) -> float:
    logits = logits_of(model, source, target)
    return float(logits[-1, good] - logits[-1, bad])


def test_patching_everything_clean_gives_the_clean_run_and_nothing_the_corrupt_one() -> None:
    model = random_translator()
    pairs = source_pairs()
    last = model.config.n_layers
    places = [Place("none"), Place("resid", last), Place("resid", 0), Place("resid", last, label="last")]
    got = patched_differences(model, pairs, places)
    clean = np.array([source_delta(model, c.clean_source, c.clean) for c in pairs])
    corrupt = np.array([source_delta(model, c.corrupt_source, c.corrupt) for c in pairs])
    assert np.abs(got[:, 0] - corrupt).max() <= 1e-5  # nothing patched: the corrupt run
    assert np.abs(got[:, 1] - clean).max() <= 1e-5  # the whole final stream: the clean run
    assert np.abs(got[:, 2] - corrupt).max() <= 1e-5  # the embedding: the same tokens in both runs
    assert np.abs(got[:, 3] - clean).max() <= 1e-5  # the last position's final stream is all Δ reads

    report = patch(model, pairs)
    stream = report.grid("residual stream")
    assert stream.columns == ["start", "prefix", "last"]
    assert np.allclose(stream.mean[-1, -1], 1.0, atol=1e-5) and np.allclose(stream.mean[0], 0.0, atol=1e-5)
    assert np.allclose(report.clean, clean, atol=1e-5) and np.allclose(report.corrupt, corrupt, atol=1e-5)
    titles = [g.title for g in report.grids]
    assert titles[:4] == ["residual stream", "heads", "cross-attention heads", "MLPs"]  # then the encoder's
    assert titles[4:] == ["encoder output (memory)", "encoder stream"]  # (tests/test_inspect_encoder_patch.py)
    assert report.grid("cross-attention heads").mean.shape == (2, 2)


def test_one_batch_equals_one_forward_pass_per_cell_with_padded_sources() -> None:
    model = random_translator("alibi")
    pairs = source_pairs(6, seed=1)
    places = [Place("none"), *(Place("resid", p, label=label) for p in range(3) for label in ("start", "last")),
              *(Place("head", layer, head, name) for layer in range(2) for name in ("attn", "cross_attn")
                for head in range(2)), Place("mlp", 0), Place("mlp", 1)]
    batched = patched_differences(model, pairs, places)
    one_by_one = np.stack([patched_differences(model, [c], places, chunk_rows=1)[0] for c in pairs])
    assert np.allclose(batched, one_by_one, atol=1e-5, equal_nan=True)


def test_a_patched_cross_attention_head_is_the_clean_runs_head_put_in_by_hand() -> None:
    model = random_translator()
    pair = source_pairs(1)[0]
    hd = model.config.dim // model.config.n_heads
    attention = decoder_stack(model).blocks[0].cross_attn
    kept = {}
    handle = attention.c_proj.register_forward_pre_hook(lambda _m, i: kept.update(x=i[0].clone()))
    try:
        logits_of(model, pair.clean_source, pair.clean)
    finally:
        handle.remove()

    def put(_m, inputs):
        x = inputs[0].clone()
        x[..., hd:] = kept["x"][..., hd:]  # head 1 of the clean run
        return (x,)

    handle = attention.c_proj.register_forward_pre_hook(put)
    try:
        expected = source_delta(model, pair.corrupt_source, pair.corrupt)
    finally:
        handle.remove()
    got = patched_differences(model, [pair], [Place("head", 0, 1, "cross_attn")])[0, 0]
    assert got == pytest.approx(expected, abs=1e-5)


# -- contrasts of sources -----------------------------------------------------------------------------

def char_tokenizer() -> Tokenizer:
    text = "The big dog cat sees the red ball. El perro gato grande ve la pelota roja. La chica"
    return Tokenizer.train_char(text + "abcdefghijklmnopqrstuvwxyzáéíóúñ¿¡,.?!")


def test_translations_part_at_the_first_token_that_differs() -> None:
    tokenizer = char_tokenizer()
    end = tokenizer.token_id(DOC_TOKEN)
    prefix, good, bad = parting(tokenizer, "El perro", "El pato")
    assert tokenizer.decode(prefix) == "El p" and tokenizer.decode([good, bad]) == "ea"
    assert parting(tokenizer, "El perro", "El perro") is None
    assert parting(tokenizer, "El", "El perro")[1] == end  # the shorter one ends there
    contrast = source_contrast(tokenizer, "The big dog", "The big cat", prompt=None,
                               translations=("El perro grande", "El gato grande"), good=None, bad=None, block_size=32)
    assert contrast.clean == contrast.corrupt == [end, *tokenizer.encode("El ")]
    assert contrast.clean_source == [*tokenizer.encode("The big dog"), end] and contrast.prompt_text == "El"
    assert tokenizer.decode([contrast.good, contrast.bad]) == "pg"


@pytest.mark.parametrize("phenomenon", ["noun", "gender"])
def test_built_in_source_pairs_swap_one_noun_and_share_the_translation_so_far(phenomenon) -> None:
    import random

    from minitx.corpus import target_lexicon as tl

    swapped = swap_noun("The big dog sees a ball.", phenomenon, random.Random(0))
    assert not isinstance(swapped, str)
    other, noun_word, at = swapped
    assert noun_word == "perro" and at == 2
    words, new = "The big dog sees a ball.".split(), other.split()
    assert [i for i, (a, b) in enumerate(zip(words, new, strict=True)) if a != b] == [2]
    assert (tl.NOUNS[new[2]].gender == "m") == (phenomenon == "noun")

    tokenizer = Tokenizer.train_bpe(["El perro grande ve una pelota. La casa."] * 5, vocab_size=300,
                                    show_progress=False)  # byte-level: any sentence encodes
    contrasts, skipped = translation_contrasts(tokenizer, phenomenon, 6, block_size=64, seed=0)
    assert len(contrasts) == 6, skipped
    for c in contrasts:
        assert c.clean == c.corrupt and c.clean_source != c.corrupt_source and c.good != c.bad
        assert c.labels == decoder_labels(len(c.clean)) and c.labels[-1] == "last"
        differ = [i for i, (a, b) in enumerate(zip(c.clean_text.split(), c.corrupt_text.split(), strict=True))
                  if a != b]
        assert len(differ) == 1


# -- the commands on a tiny trained run -----------------------------------------------------------------

@pytest.fixture(scope="module")
def pair_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encdec-circuits") / "run"
    return train_pair_run(out)


def test_inspect_lens_reads_the_decoder_given_a_source_and_writes_valid_json(pair_run, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "lens.json"
    result = runner.invoke(app, ["inspect-lens", str(pair_run), "--source", "The big dog sees the red ball.",
                                 "--prompt", "El perro grande ve la pelota", "--attribute", "r", "v", "--json",
                                 str(path), "--png", str(tmp_path / "lens.png"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "translation so far (--prompt): El perro grande ve la pelota" in result.output
    assert "cross-attention heads: direct" in result.output
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema("inspect-lens"))
    assert document["source"] == "The big dog sees the red ball."
    assert document["prompt"] == "El perro grande ve la pelota"
    assert document["tokens"][0] == DOC_TOKEN and len(document["tokens"]) == 1 + len("El perro grande ve la pelota")
    attribution = document["attribution"]
    assert sum(p["value"] for p in attribution["parts"]) == pytest.approx(attribution["total"], abs=1e-4)
    assert {p["attention"] for p in attribution["parts"] if p["kind"] == "head"} == {"attn", "cross_attn"}
    png = (tmp_path / "lens.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk, right after the signature
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    assert width > 4 * height  # one column per decoder token (29), one row per stream point (2)


def test_inspect_lens_reads_the_whole_translation_by_default(pair_run, tmp_path) -> None:
    path = tmp_path / "lens.json"
    result = runner.invoke(app, ["inspect-lens", str(pair_run), "--json", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "the built-in corpus's rendering" in result.output
    document = json.loads(path.read_text())
    assert document["prompt"] == "El perro grande ve la pelota roja."
    assert document["targets"][-1] == document["ids"][0]  # after the whole translation: the end token


def test_inspect_patch_between_two_sources_writes_every_grid_and_valid_json(pair_run, tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = tmp_path / "patch.json"
    result = runner.invoke(app, ["inspect-patch", str(pair_run), "--clean", "The big dog sees the red ball.",
                                 "--corrupt", "The big cat sees the red ball.", "--json", str(path), "--device",
                                 "cpu"])
    assert result.exit_code == 0, result.output
    assert "recovered by patching: cross-attention heads" in result.output
    assert "translation so far 'El'" in result.output
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema("inspect-patch"))
    pair = document["pairs"][0]
    assert (pair["clean"], pair["corrupt"], pair["prompt"]) == ("The big dog sees the red ball.",
                                                                "The big cat sees the red ball.", "El")
    assert pair["good"] != pair["bad"]
    stream = document["grids"][0]
    assert stream["recovered"][-1][-1] == pytest.approx(1.0, abs=1e-5)
    assert all(v == pytest.approx(0.0, abs=1e-5) for v in stream["recovered"][0])


def test_inspect_patch_on_built_in_source_pairs(pair_run, tmp_path) -> None:
    path = tmp_path / "patch.json"
    result = runner.invoke(app, ["inspect-patch", str(pair_run), "--pairs", "gender", "--n", "4", "--json",
                                 str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "4 gender pairs" in result.output
    document = json.loads(path.read_text())
    assert document["phenomenon"] == "gender" and len(document["pairs"]) == 4
    assert [g["title"] for g in document["grids"]][:4] == ["residual stream", "heads", "cross-attention heads",
                                                           "MLPs"]


def test_bad_input_is_one_line_and_exit_2(pair_run, tmp_path) -> None:
    gpt_run = shutil.copytree(FIXTURE_RUN, tmp_path / "gpt")
    cases = [
        (["inspect-lens", gpt_run, "--source", "The dog runs."], "--source reads an encoder-decoder"),
        (["inspect-lens", pair_run, "--prompt", "El perro"], "give the sentence it translates with --source"),
        (["inspect-lens", pair_run, "--html", tmp_path / "x.html"], "minitx inspect-attention"),
        (["inspect-lens", pair_run, "--source", "  "], "--source is empty"),
        (["inspect-lens", pair_run, "--source", "The dog runs. " * 8], "reads at most 95 per sentence"),
        (["inspect-patch", gpt_run, "--clean", "The dog", "--corrupt", "The cat", "--prompt", "x"],
         "decoder-only run: the prompts are --clean and --corrupt"),
        (["inspect-patch", pair_run, "--pairs", "agreement_local"], "not a source pair of an encoder-decoder run; "
                                                                    "choose one of: noun, gender"),
        (["inspect-patch", pair_run, "--pairs", "noun", "--prompt", "El"], "the pairs bring their own translation"),
        (["inspect-patch", pair_run, "--clean", "The dog runs.", "--corrupt", "The dog runs."],
         "both sources translate as"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [str(a) for a in args] + ["--device", "cpu"])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, (args, result.output)
