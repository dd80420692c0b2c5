"""The model registry and the two-input attention: old runs load and train exactly as before; cross-attention works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from minitx.config import ARCHITECTURES, ModelConfig
from minitx.errors import UserError
from minitx.model import ARCHITECTURES as REGISTERED
from minitx.model import GPT, AttentionMask, KVCache, MultiHeadAttention, build_model, model_class
from minitx.model.positions import build_positional_encoding

FIXTURE = Path(__file__).parent / "fixtures" / "run-v1"


def _fixture_copy(tmp_path: Path) -> Path:
    """The run made before the registry, copied, with its corpus path pointing at the copy."""
    root = tmp_path / "v1"
    shutil.copytree(FIXTURE, root)
    config_path = root / "run" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["train"]["corpus_files"] = [str(root / "corpus.txt")]
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return root


def _fixture_flags() -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_run_v1", FIXTURE.parent / "make_run_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # made when `--dtype auto` meant float32 on every CPU; today it may pick bfloat16 (training/precision.py)
    return {**module.FLAGS, "dtype": "float32"}


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / "model.safetensors"))


def test_every_architecture_choice_has_a_registered_class_and_no_other():
    assert set(REGISTERED) == set(ARCHITECTURES)
    for arch in ARCHITECTURES:
        assert model_class(arch) is REGISTERED[arch].model_class


def tiny_config(arch: str) -> ModelConfig:
    return ModelConfig(vocab_size=20, block_size=8, n_layers=2, n_heads=2, dim=16, arch=arch)


def cli_commands() -> set[str]:
    """Every command `minitx` has, groups' as "group command" ("experiment positions")."""
    import typer

    from minitx.cli import app

    names = {c.name for c in app.registered_commands}
    for group in app.registered_groups:
        names |= {f"{group.name} {c.name}" for c in group.typer_instance.registered_commands}
    assert all(isinstance(name, str) for name in names), "every command is registered with its name"
    assert isinstance(app, typer.Typer)
    return names


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_registered_architecture_answers_every_question_itself(name):
    from minitx.config import PRESETS
    from minitx.model.architecture import RUN_COMMANDS, Architecture

    arch = REGISTERED[name]
    own = {attr for klass in type(arch).__mro__ if klass is not Architecture for attr in vars(klass)}
    missing = [attr for attr in Architecture.REQUIRED_ANSWERS if attr not in own]
    assert not missing, f"{type(arch).__name__} must set {missing}"
    assert arch.name == name
    assert arch.label.split(" ", 1)[0] in ("a", "an") and arch.noun.split(" ", 1)[0] in ("a", "an")
    assert arch.commands and arch.commands <= set(RUN_COMMANDS) <= cli_commands()
    assert ("export" in arch.commands) == bool(arch.hf_families), "export serves exactly what has an HF target"
    assert arch.hf_families or arch.hf_refusal, "an architecture with no export target says why"
    assert "{run}" in arch.next_steps and arch.use_instead.startswith("minitx ")
    assert arch.preset is None or PRESETS[arch.preset]["model"].get("arch") == name, "its preset builds it"
    model = arch.model_class(tiny_config(name))
    assert arch.readout.name == "decoder" and len({s.name for s in arch.stacks}) == len(arch.stacks)
    for stack in arch.stacks:  # every named part is where the answer says
        assert isinstance(model.get_submodule(stack.blocks), torch.nn.ModuleList)
        blocks, final_norm = stack.modules(model)
        assert blocks and (final_norm is None) == (stack.final_norm is None)
        assert all(isinstance(getattr(block, part), torch.nn.Module) for block in blocks for part in stack.attention)
    assert model.get_submodule(arch.unembed).out_features == 20
    assert arch.shape(tiny_config(name)).count("16 wide") == 1


def test_every_command_that_reads_a_run_serves_some_architecture():
    from minitx.model.architecture import RUN_COMMANDS

    served = {command for arch in REGISTERED.values() for command in arch.commands}
    assert served == set(RUN_COMMANDS)


def test_an_architecture_that_forgets_an_answer_is_caught():
    from minitx.model.architecture import Architecture

    class Forgetful(Architecture):
        name = "forgetful"
        reads_source = False

    own = set(vars(Forgetful))
    assert {"commands", "stacks", "preset"} <= set(Architecture.REQUIRED_ANSWERS) - own
    with pytest.raises(AttributeError):
        _ = Forgetful().commands  # no default to fall back on


@pytest.mark.parametrize("arch, command, refusal", [
    ("gpt", "minitx translate", "runs/x is a decoder-only (gpt) run and minitx translate works on an encoder-decoder, "
                                "an RNN encoder-decoder (rnn) or an RNN with attention (rnn-attention) run only; "
                                "use minitx generate RUN"),
    ("rnn", "minitx generate", "runs/x is an RNN encoder-decoder (rnn) run and minitx generate works on a "
                               "decoder-only (gpt) run only; use minitx translate RUN"),
    ("rnn-attention", "minitx inspect-lens", "runs/x is an RNN with attention (rnn-attention) run and minitx "
                                             "inspect-lens works on a decoder-only (gpt) or an encoder-decoder run "
                                             "only; use minitx translate RUN"),
    ("encoder-decoder", "minitx generate", "runs/x is an encoder-decoder run and minitx generate works on a "
                                           "decoder-only (gpt) run only; use minitx translate RUN"),
])
def test_a_command_that_does_not_serve_an_architecture_refuses_in_one_line_generated_from_its_answers(
        arch, command, refusal):
    from minitx.model.registry import require_command

    with pytest.raises(UserError) as refused:
        require_command(arch, command, "runs/x")
    assert str(refused.value).startswith(refusal) and "\n" not in str(refused.value)
    assert require_command(arch, "minitx eval", "runs/x") is REGISTERED[arch]  # eval serves both


def test_an_unknown_architecture_is_one_user_error_naming_the_choices():
    with pytest.raises(UserError, match="unknown architecture 'mamba'; choose one of gpt"):
        ModelConfig(vocab_size=10, arch="mamba")
    with pytest.raises(UserError, match="choose one of gpt"):
        model_class("mamba")


def test_a_config_without_arch_loads_as_the_decoder_only_gpt():
    saved = json.loads((FIXTURE / "run" / "config.json").read_text(encoding="utf-8"))["model"]
    assert "arch" not in saved  # made before the field existed
    config = ModelConfig.from_dict(saved)
    assert config.arch == "gpt" and isinstance(build_model(config), GPT)


def test_a_run_made_before_the_registry_loads_with_the_same_logits(tmp_path):
    from minitx.rundir import load_model

    root = _fixture_copy(tmp_path)
    reference = json.loads((root / "reference.json").read_text(encoding="utf-8"))
    model, run = load_model(root / "run")
    with torch.no_grad():
        logits, _ = model(torch.tensor([run.tokenizer.encode(reference["probe"])]))
    # to rounding: the fixture was made on another CPU, whose matmul kernels may sum in another order
    assert logits[0, -1].tolist() == pytest.approx(reference["logits_last"], rel=1e-5, abs=1e-6)
    assert float(logits.double().sum()) == pytest.approx(reference["logits_sum"], rel=1e-5, abs=1e-4)


def test_the_same_recipe_follows_the_same_training_curve(tmp_path):
    from minitx.rundir import read_metrics
    from minitx.training.setup import run_training

    root = _fixture_copy(tmp_path)
    run_training([root / "corpus.txt"], tmp_path / "again", flags=_fixture_flags(), show_progress=False)
    before, after = read_metrics(root / "run"), read_metrics(tmp_path / "again")
    assert len(after) == 10
    # bit for bit on the CPU that made the fixture; to rounding on another (its kernels sum in another order)
    for old, new in zip(before, after, strict=True):
        assert new["step"] == old["step"]
        assert (new["train_loss"], new["val_loss"]) == pytest.approx((old["train_loss"], old["val_loss"]), rel=1e-5)
    old_weights, new_weights = _weights(root / "run", 50), _weights(tmp_path / "again", 50)
    assert all(torch.allclose(old_weights[name], new_weights[name], rtol=1e-4, atol=1e-5) for name in old_weights)


def test_resuming_a_checkpoint_made_before_the_registry_ends_on_the_same_weights(tmp_path):
    from minitx.training.setup import run_training

    root = _fixture_copy(tmp_path)
    reference = _weights(root / "run", 50)
    shutil.rmtree(root / "run" / "checkpoints" / "step-000050")
    run_training([root / "corpus.txt"], root / "run", flags={"steps": 50, "threads": 1}, resume=True,
                 show_progress=False)
    resumed = _weights(root / "run", 50)  # to rounding: the fixture's CPU may not be this one (see above)
    assert all(torch.allclose(reference[name], resumed[name], rtol=1e-4, atol=1e-5) for name in reference)


# -- two-input attention -------------------------------------------------------------------------

CONFIG = ModelConfig(vocab_size=20, block_size=16, n_layers=1, n_heads=2, dim=16)


def test_cross_attention_reads_the_context_and_caches_its_keys_once():
    torch.manual_seed(0)
    attention = MultiHeadAttention(CONFIG, cross=True).eval()
    x, context = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    full, weights = attention(x, context=context, textbook=True)
    assert weights.shape == (2, 2, 3, 5)  # every target query over every source key
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 3))
    fused, _ = attention(x, context=context)
    assert torch.allclose(full, fused, atol=1e-6)
    cache = KVCache(CONFIG, batch_size=2)
    steps = [attention(x[:, i : i + 1], context=context if i == 0 else None, cache=cache)[0] for i in range(3)]
    assert cache.cross[0] is not None
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-6)  # later steps reuse the stored keys
    changed, _ = attention(x, context=context + 1.0)
    assert not torch.allclose(changed, full)


def test_positional_encodings_are_refused_in_cross_attention():
    attention = MultiHeadAttention(CONFIG, cross=True)
    positions = build_positional_encoding(ModelConfig(vocab_size=20, block_size=16, n_heads=2, dim=16, pos="rope"))
    with pytest.raises(ValueError, match="self-attention only"):
        attention(torch.randn(1, 2, 16), context=torch.randn(1, 3, 16), positions=positions)


@pytest.mark.parametrize("textbook", [True, False])
def test_a_padding_key_gets_zero_weight_and_changes_nothing(textbook):
    torch.manual_seed(0)
    attention = MultiHeadAttention(CONFIG).eval()
    x = torch.randn(2, 4, 16)
    padding = torch.tensor([[False, False, False, True], [False, False, False, False]])
    mask = AttentionMask(4, causal=False, key_padding=padding)
    out, _ = attention(x, mask, textbook=textbook)
    _, weights = attention(x, mask, textbook=True)
    assert torch.all(weights[0, :, :, 3] == 0) and torch.all(weights[1, :, :, 3] > 0)
    garbage = x.clone()
    garbage[0, 3] = 100.0  # what stands in a padding slot does not reach the real tokens
    again, _ = attention(garbage, mask, textbook=textbook)
    assert torch.allclose(again[0, :3], out[0, :3], atol=1e-6)


def test_bidirectional_self_attention_sees_the_future():
    torch.manual_seed(0)
    attention = MultiHeadAttention(CONFIG).eval()
    x = torch.randn(1, 4, 16)
    _, weights = attention(x, AttentionMask(4, causal=False), textbook=True)
    assert torch.all(weights[0, :, 0, 1:] > 0)  # the first token reads the ones after it
    _, causal = attention(x, AttentionMask(4), textbook=True)
    assert torch.all(causal[0, :, 0, 1:] == 0)


def test_alibi_in_an_encoder_penalises_distance_both_ways():
    alibi = build_positional_encoding(ModelConfig(vocab_size=20, block_size=16, n_heads=2, dim=16, pos="alibi"))
    bias = alibi.score_bias(4, 4, bidirectional=True)
    assert torch.equal(bias, bias.transpose(1, 2))
    assert torch.equal(torch.tril(bias), torch.tril(alibi.score_bias(4, 4)))
