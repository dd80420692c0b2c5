"""`--norm pre|post|none` and `--norm-kind layer|rms` (minitx.model.norm) on the GPT and the encoder-decoder."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from minitx.config import NORM_KINDS, NORM_PLACES, ModelConfig
from minitx.model import KVCache, build_model
from minitx.model.encoder_decoder import pad_sources
from minitx.model.norm import PLACES, hf_refusal

torch.set_num_threads(1)

COMBOS = list(itertools.product(NORM_PLACES, NORM_KINDS))
SOURCES = [[3, 4, 5, 6, 7, 8], [7, 8], [9, 10, 11]]


def model(arch: str = "gpt", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    values = dict(vocab_size=30, block_size=12, n_layers=2, n_heads=2, dim=16, pos="rope", arch=arch)
    built = build_model(ModelConfig(**{**values, **overrides}))
    with torch.no_grad():  # gains and biases away from 1 and 0, so a misplaced norm shows
        for name, p in built.named_parameters():
            if "ln" in name:
                p.uniform_(0.5, 1.5)
    return built.eval()


def test_every_norm_choice_has_exactly_one_place_class():
    assert sorted(PLACES) == sorted(NORM_PLACES)


@pytest.mark.parametrize(("norm", "kind"), COMBOS)
def test_gpt_decode_next_and_the_cache_equal_the_full_forward(norm, kind):
    gpt = model(norm=norm, norm_kind=kind)
    idx = torch.randint(30, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, _ = gpt(idx)
        cache = KVCache(gpt.config, 2)
        plan = gpt.decode_plan()
        flat = torch.stack([gpt.decode_next(idx[:, t : t + 1], cache, plan) for t in range(12)], dim=1)
        cached = KVCache(gpt.config, 2)
        chunks = torch.cat([gpt(idx[:, :5], cache=cached)[0], gpt(idx[:, 5:], cache=cached)[0]], dim=1)
    torch.testing.assert_close(flat, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunks, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("norm", "kind"), COMBOS)
def test_encoder_decoder_decode_next_equals_decode(norm, kind):
    ed = model("encoder-decoder", norm=norm, norm_kind=kind)
    source, padding = pad_sources(SOURCES, end_id=0)
    target = torch.randint(1, 30, (3, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = ed(source, target, padding)[0]
        memory = ed.encode(source, padding)
        cache = KVCache(ed.config, 3)
        plan = ed.decode_plan(padding)
        ed.prefill_cross(memory, cache, plan)
        steps = torch.stack([ed.decode_next(target[:, t : t + 1], cache, padding, plan) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)


def test_pre_ln_layer_is_the_gpt2_block_bit_for_bit():
    """The default keeps today's arithmetic and names: x + attn(ln_1(x)), then x + mlp(ln_2(x)), torch.equal."""
    gpt = model()
    assert (gpt.config.norm, gpt.config.norm_kind) == ("pre", "layer")
    block = gpt.transformer.h[0]
    x = torch.randn(2, 12, 16)
    from minitx.model.attention import AttentionMask

    mask = AttentionMask(12, 0, None)
    with torch.no_grad():
        h = x + block.attn(F.layer_norm(x, (16,), block.ln_1.weight, block.ln_1.bias, 1e-5), mask,
                           positions=gpt.positions, cache=None)[0]
        expected = h + block.mlp(F.layer_norm(h, (16,), block.ln_2.weight, block.ln_2.bias, 1e-5))
        assert torch.equal(block(x, mask, gpt.positions, None), expected)
    names = {n for n in gpt.state_dict() if "ln" in n}
    assert names == {f"transformer.h.{i}.ln_{j}.{w}" for i in (0, 1) for j in (1, 2) for w in ("weight", "bias")} | {
        "transformer.ln_f.weight", "transformer.ln_f.bias"}


def test_a_run_saved_before_norm_existed_loads_as_pre_layer_with_the_same_logits():
    gpt = model()
    old = {k: v for k, v in gpt.config.__dict__.items() if k not in ("norm", "norm_kind")}
    again = build_model(ModelConfig(**old))
    again.load_state_dict(gpt.state_dict())
    idx = torch.randint(30, (1, 12))
    with torch.no_grad():
        assert torch.equal(again.eval()(idx)[0], gpt(idx)[0])


def test_post_ln_block_by_hand():
    gpt = model(norm="post")
    block = gpt.transformer.h[0]
    from minitx.model.attention import AttentionMask

    x, mask = torch.randn(2, 12, 16), AttentionMask(12, 0, None)
    with torch.no_grad():
        h = block.ln_1(x + block.attn(x, mask, positions=gpt.positions, cache=None)[0])
        expected = block.ln_2(h + block.mlp(h))
        torch.testing.assert_close(block(x, mask, gpt.positions, None), expected, atol=0, rtol=0)
        # the output of a post-LN block is normalized: every row has mean β and std about γ
        out = F.layer_norm(x + block.mlp(x), (16,))
        torch.testing.assert_close(out.mean(-1), torch.zeros(2, 12), atol=1e-5, rtol=0)
    assert type(gpt.transformer.ln_f).__name__ == "Identity"


def test_rms_norm_blocks_have_no_bias_and_no_norm_has_no_parameters():
    rms = model(norm_kind="rms")
    assert isinstance(rms.transformer.h[0].ln_1, torch.nn.RMSNorm)
    assert "transformer.h.0.ln_1.bias" not in rms.state_dict()
    for arch in ("gpt", "encoder-decoder"):
        bare = model(arch, norm="none")
        assert not [n for n in bare.state_dict() if "ln" in n], arch
        assert sum(p.numel() for p in bare.parameters()) < sum(p.numel() for p in model(arch).parameters())


@pytest.mark.parametrize(("norm", "kind"), COMBOS)
def test_every_norm_trains_a_step_and_reaches_every_parameter(norm, kind):
    ed = model("encoder-decoder", norm=norm, norm_kind=kind).train()
    source, padding = pad_sources(SOURCES, end_id=0)
    target = torch.randint(1, 30, (3, 5))
    _, loss = ed(source, target, padding, target)
    loss.backward()
    assert all(p.grad is not None for p in ed.parameters())


def test_hf_export_is_refused_in_one_line_for_anything_but_pre_layer():
    assert hf_refusal(model().config) == ""
    for norm, kind in COMBOS[1:]:
        message = hf_refusal(model(norm=norm, norm_kind=kind).config)
        assert f"--norm {norm}" in message and "\n" not in message


@pytest.mark.parametrize("norm, kind", [("post", "layer"), ("none", "layer"), ("pre", "rms")])
def test_direct_logit_attribution_refuses_a_stream_it_cannot_split_exactly(norm, kind):
    from minitx.errors import UserError
    from minitx.inspect.attribution import attribute

    with pytest.raises(UserError, match=f"--norm {norm} --norm-kind {kind}"):
        attribute(model(norm=norm, norm_kind=kind), [1, 2, 3], good=4, bad=5)
    report = attribute(model(), [1, 2, 3], good=4, bad=5)  # pre-LN LayerNorm: the parts add up to the gap
    assert sum(part.value for part in report.parts) == pytest.approx(report.total, abs=1e-5)


def test_export_of_a_post_ln_model_is_the_norm_refusal():
    from minitx.errors import UserError
    from minitx.interop.hf_export import hf_architecture

    with pytest.raises(UserError, match="--norm post"):
        hf_architecture(model(norm="post").config)
