"""The Python API (`minitx.load`, `minitx.train`, the verbs of `LoadedRun`) answers as the commands do.

One tiny GPT run trained through `minitx.train` and one encoder-decoder run trained through the CLI are
shared by the module. Each inspect verb's `to_dict()` is compared with the document its command writes
with --json; generate, translate and evaluate with what their commands print.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import minitx
from helpers import train_pair_run
from minitx.api import LoadedRun, random_run
from minitx.cli import app
from minitx.errors import UserError
from minitx.model import GPT

runner = CliRunner()


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def as_json(data: object) -> object:
    """What the same data reads back as from a JSON file (tuples become lists)."""
    return json.loads(json.dumps(data, ensure_ascii=False))


@pytest.fixture(scope="module")
def story_run(tmp_path_factory: pytest.TempPathFactory) -> LoadedRun:
    """A 2-layer GPT trained for 80 steps on 60 KB of the built-in stories, through minitx.train."""
    from minitx.corpus.generate import generate_corpus

    root = tmp_path_factory.mktemp("api")
    corpus = root / "stories.txt"
    corpus.write_text(generate_corpus(60_000, seed=0), encoding="utf-8")
    return minitx.train(root / "story", preset="tiny", steps=80, files=[corpus], threads=1, batch_size=16, warmup=10,
                        eval_every=80, eval_batches=2, n_layers=2, n_heads=2, dim=32, block_size=48, vocab_size=700,
                        device="cpu")


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory: pytest.TempPathFactory) -> LoadedRun:
    return minitx.load(train_pair_run(tmp_path_factory.mktemp("api-pair") / "pair"), device="cpu", threads=1)


# -- import minitx -------------------------------------------------------------------------------------------


def test_import_minitx_imports_no_torch_and_the_api_on_first_use() -> None:
    code = ("import sys, minitx; assert 'torch' not in sys.modules, 'import minitx loaded torch'; "
            "assert 'load' in minitx.__all__ and 'load' in dir(minitx); minitx.load; "
            "assert 'minitx.api' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_unknown_name_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'lode'"):
        minitx.lode  # noqa: B018


def test_the_done_when_line_prints_the_lens(story_run: LoadedRun) -> None:
    code = f"import minitx; r = minitx.load({str(story_run.path)!r}); print(r.lens('The dogs run.'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("LensResult(3 points × ") and "block 1:" in done.stdout


# -- a run in Python -------------------------------------------------------------------------------------------


def test_train_returns_the_run_loaded_with_what_training_measured(story_run: LoadedRun) -> None:
    assert isinstance(story_run.model, GPT) and not story_run.model.training
    assert story_run.architecture == "gpt" and story_run.config.model.dim == 32 and story_run.config.train.steps == 80
    assert story_run.training is not None and story_run.training.step == 80
    assert story_run.tokenizer.vocab_size == 700
    assert "gpt, 2 layers × 2 heads × 32 wide" in repr(story_run)


def test_train_refuses_a_flag_no_configuration_has_and_suggests_the_near_one(tmp_path) -> None:
    with pytest.raises(UserError, match="no flag 'n_layer' .*did you mean n_layers"):
        minitx.train(tmp_path / "x", n_layer=2)
    assert not (tmp_path / "x").exists()


def test_generate_writes_what_minitx_generate_prints(story_run: LoadedRun) -> None:
    made = story_run.generate("The dog", max_new_tokens=20, seed=3)
    printed = cli("generate", story_run.path, "--prompt", "The dog", "--max-new-tokens", 20, "--seed", 3, "--quiet",
                  "--no-stream", "--device", "cpu")
    assert printed == made.text + ("" if made.text.endswith("\n") else "\n")
    assert made.to_dict()["seed"] == 3 and repr(made).startswith("Generation(seed 3)")
    assert made._repr_html_().count('class="minitx-sample"') == 1
    assert len(story_run.generate(num_samples=3, max_new_tokens=5, seed=0).texts) == 3


def test_evaluate_is_what_minitx_eval_json_prints(story_run: LoadedRun) -> None:
    printed = json.loads(cli("eval", story_run.path, "--json", "--device", "cpu"))
    assert as_json(story_run.evaluate().to_dict()) == printed
    assert story_run.evaluate().loss == pytest.approx(printed["loss"])


def test_evaluate_on_a_given_text_scores_that_text(story_run: LoadedRun) -> None:
    text = "The dog sees the red ball. The cat runs to the box. " * 8
    found = story_run.evaluate(text)
    assert found.data["source"] == "the text given" and found.data["bytes"] == len(text)
    assert found.bits_per_byte > 0


def test_translate_prints_what_minitx_translate_prints(pair_run: LoadedRun) -> None:
    sentences = ["The dog runs.", "The big cat sees the ball."]
    made = pair_run.translate(sentences)
    assert cli("translate", pair_run.path, *sentences, "--quiet", "--device", "cpu") == "".join(
        f"{line}\n" for line in made)
    assert len(made) == 2 and made.to_dict()["translations"][0]["source"] == "The dog runs."
    assert pair_run.translate("The dog runs.").outputs == made.outputs[:1]


@pytest.mark.parametrize(("which", "verb", "words"), [
    ("story", lambda run: run.translate("The dog runs."), ("decoder-only", "run.translate", "run.generate")),
    ("pair", lambda run: run.generate("The dog"), ("encoder-decoder", "run.generate", "run.translate")),
    ("story", lambda run: run.lens("The dog", source="The dog runs."), ("source=", "decoder-only")),
    ("pair", lambda run: run.lens("El perro"), ("source=",)),
    ("story", lambda run: run.evaluate(beam=2), ("decoder-only",)),
    ("pair", lambda run: run.evaluate(grammar=5), ("encoder-decoder",)),
    ("story", lambda run: run.patch(clean="The dog", corrupt="The cat", prompt="El"), ("prompt=", "decoder-only")),
])
def test_a_verb_the_architecture_cannot_answer_is_a_one_line_user_error(story_run, pair_run, which, verb,
                                                                       words) -> None:
    run = story_run if which == "story" else pair_run
    with pytest.raises(UserError) as refused:
        verb(run)
    message = str(refused.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# -- looking inside: the same documents as the commands' --json --------------------------------------------------


def test_attention_is_what_inspect_attention_json_writes(story_run: LoadedRun, tmp_path) -> None:
    text = "The dog sees the dog."
    cli("inspect-attention", story_run.path, "--prompt", text, "--json", tmp_path / "a.json", "--device", "cpu")
    found = story_run.attention(text)
    assert as_json(found.to_dict()) == json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert found.tokens[0] == "<|doc|>" and found.weights.shape == (2, 2, len(found.tokens), len(found.tokens))
    assert torch.equal(found.head(1, 0), found.weights[1, 0])
    page = found._repr_html_()
    assert page.count('class="minitx-head"') == 4 and "<script" not in page
    assert repr(found).startswith("AttentionResult(2 layers × 2 heads over ")


def test_lens_is_what_inspect_lens_json_writes(story_run: LoadedRun, tmp_path) -> None:
    text = "The dogs run."
    cli("inspect-lens", story_run.path, "--prompt", text, "--attribute", "is", "are", "--json", tmp_path / "l.json",
        "--device", "cpu")
    found = story_run.lens(text, attribute=("is", "are"))
    assert as_json(found.to_dict()) == json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))
    page = found._repr_html_()
    n_points, n_tokens = len(found.points), len(found.tokens)
    table = page.split('class="minitx-heat"')[1].split("</table>")[0]
    assert table.count("<td ") == n_points * n_tokens
    assert page.count('class="minitx-bar"') == len(found.attribution.report.parts)


def test_attribute_alone_is_the_attribution_section_of_the_lens(story_run: LoadedRun) -> None:
    alone = story_run.attribute("The dogs", "is", "are")
    with_lens = story_run.lens("The dogs", attribute=("is", "are")).to_dict()["attribution"]
    assert as_json(alone.to_dict()) == as_json(with_lens)
    assert sum(p["value"] for p in with_lens["parts"]) == pytest.approx(alone.total, abs=1e-4)
    assert repr(alone).startswith("AttributionResult(logit[' is'] − logit[' are'] = ")


def test_a_word_of_several_tokens_is_refused_in_one_line(story_run: LoadedRun) -> None:
    with pytest.raises(UserError, match="is not one token"):
        story_run.lens("The dogs", target="xylophone")


def test_patch_is_what_inspect_patch_json_writes(story_run: LoadedRun, tmp_path) -> None:
    cli("inspect-patch", story_run.path, "--pairs", "agreement_far", "--n", 6, "--json", tmp_path / "p.json",
        "--device", "cpu")
    found = story_run.patch("agreement_far", n=6)
    assert as_json(found.to_dict()) == json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    page = found._repr_html_()
    assert page.count('class="minitx-heat"') == len(found.grids) == 3
    first = found.grids[0]
    table = page.split('class="minitx-heat"')[1].split("</table>")[0]
    assert table.count("<td ") == len(first.rows) * len(first.columns)
    assert 1 <= found.report.n_pairs == len(found.contrasts) <= 6
    assert repr(found).startswith(f"PatchResult({found.report.n_pairs} pairs")


def test_patch_of_one_pair_with_answers_given(story_run: LoadedRun) -> None:
    found = story_run.patch(clean="The dog sees the cat. The dog", corrupt="The cat sees the dog. The cat",
                            answer=("runs", "sees"))
    assert found.report.n_pairs == 1 and found.to_dict()["pairs"][0]["good"] == " runs"
    assert found.grids[0].mean[-1, -1] == pytest.approx(1.0, abs=1e-5)  # the last point at the last position: all
    with pytest.raises(UserError, match="either --pairs"):
        story_run.patch()


def test_the_encoder_decoder_lens_and_attention_are_their_commands_json(pair_run: LoadedRun, tmp_path) -> None:
    source = "The big dog sees the red ball."
    cli("inspect-lens", pair_run.path, "--source", source, "--json", tmp_path / "l.json", "--device", "cpu")
    assert as_json(pair_run.lens(source=source).to_dict()) == json.loads((tmp_path / "l.json").read_text("utf-8"))
    cli("inspect-attention", pair_run.path, "--source", source, "--json", tmp_path / "a.json", "--device", "cpu")
    found = pair_run.attention(source=source)
    assert as_json(found.to_dict()) == json.loads((tmp_path / "a.json").read_text("utf-8"))
    assert found._repr_html_().count('class="minitx-head"') == 3 * 2  # encoder, decoder, cross: 1 layer × 2 heads


def test_the_encoder_decoder_patch_is_the_commands_json(pair_run: LoadedRun, tmp_path) -> None:
    cli("inspect-patch", pair_run.path, "--pairs", "noun", "--n", 3, "--json", tmp_path / "p.json", "--device", "cpu")
    found = pair_run.patch("noun", n=3)
    assert as_json(found.to_dict()) == json.loads((tmp_path / "p.json").read_text("utf-8"))


# -- run_with_cache ----------------------------------------------------------------------------------------------


def test_run_with_cache_keeps_the_named_activations_of_the_text_as_inspect_reads_it(story_run: LoadedRun) -> None:
    found = story_run.run_with_cache("The dog sees the dog.")
    assert found.tokens == story_run.attention("The dog sees the dog.").tokens
    assert torch.allclose(found["blocks.0.attn.hook_pattern"][0], story_run.attention("The dog sees the dog.")
                          .weights[0], atol=1e-5)
    only = story_run.run_with_cache("The dog", names=["hook_embed"])
    assert only.keys() == ["hook_embed"] and only["hook_embed"].shape[:2] == (1, len(only.tokens))


# -- a random run --------------------------------------------------------------------------------------------------


def test_a_random_run_answers_every_inspect_verb_in_memory() -> None:
    run = random_run(seed=1)
    assert run.path is None and run.architecture == "gpt"
    assert run.attention("The dog sees the dog.").weights.shape[:2] == (2, 2)
    assert re.match(r"LensResult\(3 points × 8 tokens", repr(run.lens("The dog")))
    assert len(run.attribute("The do", "g", "t").report.parts) == 2 * 2 + 2 + 2 + 2
    pair = random_run("encoder-decoder", seed=1)
    assert pair.architecture == "encoder-decoder" and len(pair.translate(["The dog runs."], max_new_tokens=4)) == 1


# -- the commands are thin callers: what they write is what the verbs return ------------------------------------


def test_inspect_attention_with_every_measurement_is_the_verbs_document(story_run: LoadedRun, tmp_path) -> None:
    import dataclasses

    text = "The dog sees the"
    cli("inspect-attention", story_run.path, "--prompt", text, "--generate", 4, "--seed", 2, "--over", 2,
        "--induction", "--length", 5, "--ablate", "--json", tmp_path / "a.json", "--device", "cpu")
    found = story_run.attention(text, generate=4, seed=2)
    assert len(found.generated) == 4 and len(found.tokens) == len(story_run.token_ids(text)) + 4
    found = dataclasses.replace(found, over=story_run.roles_over(2), n_windows=2,
                                induction=story_run.induction(length=5, seed=2), ablation=story_run.ablate(2))
    written = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert as_json(found.to_dict()) == written
    assert written["generated"] == 4 and {"over", "induction", "ablation"} <= set(written)


def test_the_encoder_decoder_attention_over_pairs_and_a_chosen_head_is_the_verbs_document(pair_run: LoadedRun,
                                                                                         tmp_path) -> None:
    import dataclasses

    source = "The big dog sees the red ball."
    cli("inspect-attention", pair_run.path, "--source", source, "--over", 2, "--head", 1, "--json",
        tmp_path / "a.json", "--device", "cpu")
    found = pair_run.attention(source=source)
    found = dataclasses.replace(found, shown=(found.shown[0], 1), over=pair_run.alignment_over(2))
    assert as_json(found.to_dict()) == json.loads((tmp_path / "a.json").read_text("utf-8"))
    assert found.to_dict()["over"]["pairs"] == 2


def test_eval_with_minimal_pairs_and_the_order_test_is_the_verbs_evaluation(story_run: LoadedRun) -> None:
    printed = json.loads(cli("eval", story_run.path, "--minimal-pairs", 12, "--order-test", "--seed", 1, "--json",
                             "--device", "cpu"))
    found = story_run.evaluate(minimal_pairs=12, order_test=True, seed=1)
    assert as_json(found.to_dict()) == printed
    assert {"score", "minimal_pairs", "order_test"} <= set(found.reports) and printed["minimal_pairs"]["total"] == 12


def test_eval_of_a_translator_is_the_verbs_evaluation(pair_run: LoadedRun) -> None:
    printed = json.loads(cli("eval", pair_run.path, "--sentences", 4, "--json", "--device", "cpu"))
    found = pair_run.evaluate(sentences=4)
    assert as_json(found.to_dict()) == printed and found.reports["translation"].loss.pairs == 4


def test_generate_streams_through_on_text_what_the_verb_returns(story_run: LoadedRun) -> None:
    pieces: list[str] = []
    made = story_run.generate("The dog", max_new_tokens=25, seed=5, on_text=lambda _, piece: pieces.append(piece))
    assert "".join(pieces) == made.texts[0] and made.steps >= 1
    streamed = cli("generate", story_run.path, "--prompt", "The dog", "--max-new-tokens", 25, "--seed", 5, "--quiet",
                   "--device", "cpu")
    assert streamed == made.text + ("" if made.text.endswith("\n") else "\n")


def test_a_run_loaded_with_int8_weights_generates_as_the_command_does(story_run: LoadedRun) -> None:
    run = minitx.load(story_run.path, device="cpu", threads=1, quantize="int8")
    assert run.quantize == "int8" and "int8 weights" in repr(run)
    made = run.generate("The dog", max_new_tokens=15, seed=0)
    printed = cli("generate", story_run.path, "--prompt", "The dog", "--max-new-tokens", 15, "--seed", 0, "--quiet",
                  "--quantize", "int8", "--device", "cpu")
    assert printed == made.text + ("" if made.text.endswith("\n") else "\n")
    assert run.evaluate().to_dict()["weights"] == "int8"
    with pytest.raises(UserError, match="--quantize must be one of"):
        minitx.load(story_run.path, device="cpu", quantize="int4")


def test_the_measurements_of_one_architecture_are_refused_on_the_other(story_run, pair_run) -> None:
    with pytest.raises(UserError, match="run.alignment_over works on an encoder-decoder, an RNN"):
        story_run.alignment_over(2)
    for verb in (lambda: pair_run.roles_over(2), pair_run.induction, pair_run.ablate):
        with pytest.raises(UserError, match="works on a decoder-only"):
            verb()
