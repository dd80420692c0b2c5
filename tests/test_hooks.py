"""Hook points: every name where docs/hooks.md says, with its shape; reading changes nothing; rewriting does what
a by-hand computation says; nothing is left behind (after an early stop or an error); checkpoints are unchanged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.model import GPT, AttentionMask, build_model
from minitx.model.encoder_decoder import EncoderDecoder
from minitx.model.hooks import HookPoint

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "run-v1" / "run"  # a decoder-only run of the first format
B, T, S, C, H, HD, L = 2, 5, 6, 16, 2, 8, 2  # batch, target length, source length, width, heads, head size, layers


def gpt(pos: str = "learned") -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=30, block_size=16, n_layers=L, n_heads=H, dim=C, pos=pos)).eval()


def encoder_decoder(pos: str = "learned") -> EncoderDecoder:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=30, block_size=16, n_layers=L, n_heads=H, dim=C, pos=pos, encoder_layers=3,
                         arch="encoder-decoder")
    return build_model(config).eval()


def ids(length: int = T, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, 30, (B, length), generator=torch.Generator().manual_seed(seed))


def source_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[1, 4:] = True
    return ids(S, seed=2), ids(), padding


def block_shapes(prefix: str, t: int, keys: int, cross_keys: int | None = None) -> dict[str, tuple[int, ...]]:
    """docs/hooks.md's table for one block: [B, T, C] on the stream, [B, T, H, hd] for q k v z, α [B, H, Tq, Tk]."""
    shapes = {"hook_resid_pre": (B, t, C)}
    attentions = [("attn", keys)] + ([("cross_attn", cross_keys)] if cross_keys is not None else [])
    for name, k in attentions:
        shapes.update({f"{name}.hook_q": (B, t, H, HD), f"{name}.hook_k": (B, k, H, HD),
                       f"{name}.hook_v": (B, k, H, HD), f"{name}.hook_pattern": (B, H, t, k),
                       f"{name}.hook_z": (B, t, H, HD)})
        shapes.update({"hook_attn_out": (B, t, C), "hook_resid_mid": (B, t, C)} if name == "attn" else
                      {"hook_cross_attn_out": (B, t, C), "hook_resid_cross": (B, t, C)})
    shapes.update({"mlp.hook_pre": (B, t, 4 * C), "mlp.hook_post": (B, t, 4 * C), "hook_mlp_out": (B, t, C),
                   "hook_resid_post": (B, t, C)})
    return {prefix + name: shape for name, shape in shapes.items()}


def test_every_documented_gpt_hook_point_exists_in_forward_order_with_its_shape():
    model = gpt()
    expected = {"hook_embed": (B, T, C)}
    for layer in range(L):
        expected.update(block_shapes(f"blocks.{layer}.", T, T))
    expected["hook_final"] = (B, T, C)
    logits, cache = model.run_with_cache(ids())
    assert list(model.hook_points()) == list(expected)  # and no other, in this order
    assert list(cache) == list(expected)  # every point fired once, in that order
    assert {name: tuple(t.shape) for name, t in cache.items()} == expected
    assert logits.shape == (B, T, 30)
    assert not any(t.requires_grad for t in cache.values())


def test_every_documented_encoder_decoder_hook_point_exists_with_its_shape():
    model = encoder_decoder()
    expected = {"encoder.hook_embed": (B, S, C)}
    for layer in range(3):
        expected.update(block_shapes(f"encoder.blocks.{layer}.", S, S))
    expected.update({"encoder.hook_memory": (B, S, C), "decoder.hook_embed": (B, T, C)})
    for layer in range(L):
        expected.update(block_shapes(f"decoder.blocks.{layer}.", T, T, cross_keys=S))
    expected["decoder.hook_final"] = (B, T, C)
    _, cache = model.run_with_cache(*source_inputs())
    assert list(model.hook_points()) == list(expected) == list(cache)
    assert {name: tuple(t.shape) for name, t in cache.items()} == expected


@pytest.mark.parametrize("build", [gpt, encoder_decoder])
def test_hook_points_are_every_hook_point_module_and_hold_no_state(build):
    model = build()
    modules = [m for m in model.modules() if isinstance(m, HookPoint)]
    assert sorted(map(id, modules)) == sorted(map(id, model.hook_points().values()))
    assert all(not list(m.parameters()) and not list(m.buffers()) for m in modules)


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_run_with_cache_gives_exactly_the_forward_logits(pos):
    model = gpt(pos)
    logits, _ = model(ids())
    cached, cache = model.run_with_cache(ids())
    assert torch.equal(cached, logits)  # reading every point (patterns included) leaves the output to the bit
    torch.testing.assert_close(model.lm_head(cache["hook_final"]), logits, atol=0, rtol=0)
    source, target, padding = source_inputs()
    model = encoder_decoder(pos)
    logits, _ = model(source, target, padding)
    assert torch.equal(model.run_with_cache(source, target, padding)[0], logits)


def test_a_replaced_stream_before_block_1_gives_the_logits_computed_by_hand():
    model = gpt("alibi")
    replacement = torch.randn(B, T, C, generator=torch.Generator().manual_seed(3))
    hooked = model.run_with_hooks(ids(), fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, name: replacement)])
    with torch.no_grad():  # by hand: block 1 on the replacement, then the final norm and the output layer
        mask = AttentionMask(T, 0, model.positions.score_bias(T, T, 0))
        x = model.transformer.h[1](replacement, mask, model.positions, None)
        by_hand = model.lm_head(model.transformer.ln_f(x))
        assert not torch.allclose(model(ids())[0], by_hand, atol=1e-3)  # the replacement matters
    torch.testing.assert_close(hooked, by_hand, atol=1e-6, rtol=0)


def test_zero_ablating_a_head_through_hook_z_equals_zeroing_its_columns_of_w_o():
    model = gpt()
    layer, head = 1, 1

    def zero_head(z, _name):
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    hooked = model.run_with_hooks(ids(), fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head)])
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        by_hand.transformer.h[layer].attn.c_proj.weight[:, head * HD : (head + 1) * HD] = 0.0
        expected, _ = by_hand(ids())
        assert not torch.allclose(model(ids())[0], expected, atol=1e-4)
    torch.testing.assert_close(hooked, expected, atol=1e-6, rtol=0)


def test_head_results_sum_with_the_bias_to_the_attention_output():
    model = gpt()
    _, cache = model.run_with_cache(ids(), names=["blocks.0.attn.hook_z", "blocks.0.hook_attn_out"])
    attention = model.transformer.h[0].attn
    per_head = attention.head_results(cache["blocks.0.attn.hook_z"])  # [B, T, H, C]
    assert per_head.shape == (B, T, H, C)
    torch.testing.assert_close(per_head.sum(2) + attention.c_proj.bias, cache["blocks.0.hook_attn_out"],
                               atol=1e-6, rtol=0)


def test_stop_at_returns_no_logits_runs_nothing_after_and_leaves_no_hook():
    model = gpt()
    seen = []
    logits, cache = model.run_with_cache(ids(), names=lambda name: name.startswith("blocks.0."),
                                         stop_at="blocks.0.hook_resid_mid")
    assert logits is None
    assert list(cache)[-1] == "blocks.0.hook_resid_mid" and "blocks.0.mlp.hook_pre" not in cache
    out = model.run_with_hooks(ids(), fwd_hooks=[("hook_final", lambda x, name: seen.append(name))],
                               stop_at="blocks.1.hook_resid_pre")
    assert out is None and seen == []
    assert not any(point.active for point in model.hook_points().values())
    assert torch.equal(model(ids())[0], model.run_with_cache(ids())[0])


def test_hooks_are_removed_after_an_exception_and_unknown_names_are_refused():
    model = gpt()

    def fail(x, name):
        raise RuntimeError("in the hook")

    with pytest.raises(RuntimeError, match="in the hook"):
        model.run_with_hooks(ids(), fwd_hooks=[("blocks.0.attn.hook_pattern", fail)])
    with pytest.raises(KeyError), model.hooks([(lambda name: "hook_z" in name, lambda x, name: x * 0)]):
        raise KeyError("in the block")
    assert not any(point.active for point in model.hook_points().values())
    with pytest.raises(ValueError, match="close names: blocks.0.hook_resid_pre"):
        model.run_with_cache(ids(), names=["blocks.0.hook_resid_pr"])
    with pytest.raises(ValueError, match="no hook point"):
        model.run_with_hooks(ids(), stop_at="blocks.9.hook_resid_pre")


def test_nested_hooks_run_in_the_order_they_were_set_and_each_leaves_with_its_block():
    model = gpt()
    order = []
    with model.hooks([("hook_embed", lambda x, name: order.append("outer"))]):
        with model.hooks([("hook_embed", lambda x, name: order.append("inner"))]):
            model(ids())
        model(ids())
    model(ids())
    assert order == ["outer", "inner", "outer"]


def test_run_with_cache_keeps_the_graph_when_asked():
    model = gpt()
    logits, cache = model.run_with_cache(ids(), names=["blocks.1.hook_resid_pre"], grad=True)
    (grad,) = torch.autograd.grad(logits[:, -1, 3].sum(), cache["blocks.1.hook_resid_pre"])
    assert grad.shape == (B, T, C) and grad[:, -1].abs().sum() > 0


def test_the_state_dict_keys_are_those_of_a_first_format_checkpoint():
    from safetensors.torch import load_file

    config = json.loads((FIXTURE_RUN / "config.json").read_text(encoding="utf-8"))
    model = build_model(ModelConfig(**config["model"]))
    saved = load_file(str(FIXTURE_RUN / "checkpoints" / "step-000025" / "model.safetensors"))
    assert set(model.state_dict()) == set(saved) | {"lm_head.weight"}  # the tied lm_head is stored once, as wte
    model.load_state_dict({**saved, "lm_head.weight": saved["transformer.wte.weight"]})
