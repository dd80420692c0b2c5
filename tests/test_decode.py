"""minitx.model.decode, the one-token step: the GPT's and the encoder-decoder's `decode_next` built from it equal
the forward pass with a KV cache (1e-5), for every positional encoding, batch 1 and 2, with and without biases.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.model import GPT, KVCache, build_model, decode
from minitx.model.encoder_decoder import pad_sources


def _gpt(pos: str, **overrides) -> GPT:
    torch.manual_seed(0)
    values = dict(vocab_size=40, block_size=12, n_layers=2, n_heads=2, dim=16, pos=pos)
    model = GPT(ModelConfig(**{**values, **overrides}))
    with torch.no_grad():  # large weights: every step's logits differ clearly
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_the_gpt_step_equals_forward_with_a_cache_at_every_position(pos, batch):
    model = _gpt(pos)
    idx = torch.randint(0, 40, (batch, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference, flat = KVCache(model.config, batch), KVCache(model.config, batch)
        plan = model.decode_plan()
        assert isinstance(plan.layers[0], decode.DecodeLayer)
        for t in range(12):  # the whole block
            expected, _ = model(idx[:, t : t + 1], cache=reference, last_only=True)
            got = model.decode_next(idx[:, t : t + 1], flat, plan)
            torch.testing.assert_close(got, expected[:, 0], atol=1e-5, rtol=0, msg=f"{pos}, step {t}")
    assert flat.length == reference.length == 12


def test_the_step_without_biases_and_with_gelu_tanh_equals_forward():
    model = _gpt("rope", bias=False, activation="gelu_tanh")
    idx = torch.randint(0, 40, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = model(idx)  # no cache at all: one pass over the 8 tokens
        cache = KVCache(model.config, 1)
        plan = model.decode_plan()
        steps = torch.stack([model.decode_next(idx[:, t : t + 1], cache, plan) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_the_encoder_decoder_step_equals_cached_decode(pos):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=30, block_size=10, n_layers=2, n_heads=2, dim=16, pos=pos,
                                    arch="encoder-decoder")).eval()
    source, padding = pad_sources([[3, 4, 5, 6, 7], [8, 9]], end_id=0)
    target = torch.randint(1, 30, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        memory = model.encode(source, padding)
        reference, flat = KVCache(model.config, 2), KVCache(model.config, 2)
        plan = model.decode_plan(padding)
        model.prefill_cross(memory, flat, plan)
        for t in range(10):
            expected = model.decode(target[:, t : t + 1], memory if t == 0 else None, padding, cache=reference,
                                    last_only=True)
            got = model.decode_next(target[:, t : t + 1], flat, padding, plan)
            torch.testing.assert_close(got, expected[:, 0], atol=1e-5, rtol=0, msg=f"{pos}, step {t}")


@pytest.mark.parametrize("bias", [True, False])
def test_a_cpu_linear_runs_on_its_transposed_copy_and_equals_f_linear(bias):
    torch.manual_seed(0)
    layer = nn.Linear(24, 40, bias=bias)
    step = decode.linear_function(layer)
    x = torch.randn(3, 24)
    torch.testing.assert_close(step(x), F.linear(x, layer.weight, layer.bias), atol=1e-6, rtol=0)
    mat2 = step.keywords["mat2"]  # the copy [in, out], contiguous: the layout the product streams fastest
    assert mat2.shape == (24, 40) and mat2.is_contiguous() and mat2.data_ptr() != layer.weight.data_ptr()
    assert step.func is (torch.addmm if bias else torch.mm)


def test_other_layers_keep_their_own_function():
    class Doubler(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    doubler = Doubler()
    assert decode.linear_function(doubler)(torch.ones(1, 2)).tolist() == [[2.0, 2.0]]
