"""Int8 weights: the error bound they promise, and that a quantized model still predicts and decodes consistently."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.errors import UserError
from minitx.model import GPT, KVCache, build_model
from minitx.model.quantize import Int8Linear, apply_quantization, linear_maps, quantize_int8
from minitx.model.registry import ARCHITECTURES


def random_model(pos: str = "learned", seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=48, block_size=16, n_layers=2, n_heads=4, dim=64, pos=pos)
    return GPT(config).eval()


def test_each_applied_weight_is_within_half_a_step_of_the_original_on_the_path_that_runs() -> None:
    """The bound of the module docstring, |W - s·q| ≤ s/2, for the s the CPU kernel multiplies by."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 24)
    with torch.no_grad():
        linear.weight[3] = 0.0  # an all-zero row must not divide by zero
        linear.weight[5, 7] = 9.0  # one large weight coarsens its own row only
    q = Int8Linear(linear)
    w = linear.weight.detach()
    # the scale is a bfloat16 number, so the kernel's bfloat16 copy of it is the very same scale
    assert torch.equal(q._scale_bf16.float(), q.scale) and torch.equal(q.scale.bfloat16().float(), q.scale)
    applied = q.qweight.float() * q._scale_bf16.float()[:, None]  # what _weight_int8pack_mm multiplies by
    assert torch.equal(applied, q.dequantized_weight())
    error = (applied - w).abs()
    assert torch.all(error <= q.scale[:, None] / 2)
    # s is the smallest bfloat16 at or above max|w|/127: nothing is clipped, and the step is at most 2^-7 coarser
    step = w.abs().amax(dim=1) / 127
    nonzero = step > 0
    assert torch.all(q.scale[nonzero] >= step[nonzero]) and torch.all(q.scale[nonzero] <= step[nonzero] * (1 + 2**-7))
    assert torch.all(q.qweight[nonzero].abs().amax(dim=1) >= 126)
    assert torch.all(q.dequantized_weight()[3] == 0)
    assert q.qweight.dtype == torch.int8
    assert error[0].max() < error[5].max() / 10  # row 0 kept its fine grid


def test_an_int8_layer_computes_x_times_its_dequantized_weight_plus_bias() -> None:
    torch.manual_seed(1)
    linear = nn.Linear(32, 16)
    q = Int8Linear(linear)
    x = torch.randn(2, 5, 32)
    product = x.bfloat16().float() @ q.dequantized_weight().T  # the kernel reads x in bfloat16
    got = q(x)
    assert got.shape == (2, 5, 16) and got.dtype == torch.float32
    # the kernel returns bfloat16 (8 significant bits): each output within 2^-8 of its own value
    assert torch.all((got - linear.bias.detach() - product).abs() <= 2**-8 * product.abs() + 1e-6)


def test_quantizing_replaces_every_linear_map_and_keeps_the_embedding_table() -> None:
    model = random_model()
    table = model.transformer.wte.weight.detach().clone()
    report = quantize_int8(model)
    assert report["layers"] == 4 * model.config.n_layers + 1  # the blocks' linears and the output layer
    assert report["bytes_after"] < report["bytes_before"] / 3.5
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert isinstance(model.lm_head, Int8Linear)
    bf16_table = model.transformer.wte.weight.float()
    torch.testing.assert_close(bf16_table, table, atol=0, rtol=2**-8)  # each entry rounded to 8 significant bits
    floating = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    assert floating and all(t.dtype == torch.bfloat16 for t in floating)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_registered_architecture_has_all_its_linear_maps_quantized(arch: str) -> None:
    """One walk (`linear_maps`) for every architecture: nothing is left in float, nothing else is touched."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=48, block_size=16, n_layers=2, n_heads=4, dim=64, arch=arch))
    linears = linear_maps(model)
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    report = quantize_int8(model)
    assert report["layers"] == len(linears) > 0 and linear_maps(model) == []
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == len(linears)
    assert [m for m in model.modules() if isinstance(m, nn.Embedding)] == embeddings  # tables stay tables


def test_a_quantized_model_predicts_almost_what_the_original_does() -> None:
    model = random_model(seed=2)
    idx = torch.randint(0, 48, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before, _ = model(idx)
        quantize_int8(model)
        after, loss = model(idx, idx)
    after = after.float()
    assert loss.dtype == torch.float32  # the loss is computed in fp32 even for a bf16 model
    # measured: 0.58% of the largest logit (half-step weights + bfloat16 activations); a wrong scale is far more
    assert (after - before).abs().max() < 0.01 * before.abs().max()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() > 0.95


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_a_quantized_model_decodes_through_the_cache_as_its_full_forward_does(pos: str) -> None:
    model = random_model(pos)
    quantize_int8(model)
    idx = torch.randint(0, 48, (1, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(model.config, batch_size=1, dtype=torch.bfloat16)
        plan = model.decode_plan()
        steps = torch.stack([model.decode_next(idx[:, t : t + 1], cache, plan) for t in range(16)], dim=1)
    assert steps.dtype == full.dtype == torch.bfloat16
    # the same bf16 operations in another grouping: at most one bfloat16 step (2^-7 for values in [1, 2)) apart
    torch.testing.assert_close(steps.float(), full.float(), atol=2**-7 * full.float().abs().max().item(), rtol=0)
    assert (steps.argmax(-1) == full.argmax(-1)).float().mean() >= 0.9


def test_the_quantize_option_accepts_none_and_int8_only() -> None:
    model = random_model()
    assert apply_quantization(model, "none") is None and apply_quantization(model, None) is None
    with pytest.raises(UserError, match="--quantize"):
        apply_quantization(model, "int4")
    assert apply_quantization(model, "int8")["layers"] == 9


def test_a_quantized_model_generates_past_its_block_reproducibly() -> None:
    from minitx.generation.sampling import SamplingConfig, generate_ids

    model = random_model("rope")
    quantize_int8(model)
    cfg = SamplingConfig(max_new_tokens=40, temperature=1.0, seed=7)  # 41 tokens through a 16-token block
    first, second = generate_ids(model, [1, 2, 3], cfg), generate_ids(model, [1, 2, 3], cfg)
    assert first == second and len(first[0]) == 43 and all(0 <= t < model.config.vocab_size for t in first[0])
