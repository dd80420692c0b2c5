"""minitx.model.decode, the one-token step: the GPT's and the encoder-decoder's `decode_next` built from it equal
the forward pass with a KV cache (1e-5), for every positional encoding, batch 1 and 2, with and without biases;
at two threads on an x86 CPU each product is oneDNN's (the suite runs at one thread, where it is MKL's addmm).
"""

from __future__ import annotations

import functools
import platform

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


@pytest.fixture
def two_threads(monkeypatch):
    """Torch at two threads for one test (the suite runs at one), where the step picks oneDNN's product -- for
    every matrix, however small (these models are tiny; ONEDNN_MIN_ELEMENTS has its own test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(decode, "ONEDNN_MIN_ELEMENTS", 0)
    yield
    torch.set_num_threads(before)


ON_X86 = torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")
needs_onednn = pytest.mark.skipif(not ON_X86, reason="oneDNN's product is used on x86 CPUs only")


def test_at_one_thread_a_cpu_linear_keeps_the_transposed_copy():
    assert torch.get_num_threads() == 1  # the suite's setting (conftest)
    assert not decode.uses_onednn(nn.Linear(4, 4).weight)
    assert isinstance(decode.linear_function(nn.Linear(4, 4)), functools.partial)


@needs_onednn
@pytest.mark.parametrize("gelu", [None, "none", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_at_two_threads_a_cpu_linear_is_onednn_s_product_and_equals_f_linear(two_threads, bias, gelu):
    torch.manual_seed(0)
    layer = nn.Linear(24, 40, bias=bias)
    assert decode.uses_onednn(layer.weight)
    step = decode.linear_function(layer, gelu=gelu)
    assert step.__qualname__.startswith("onednn_linear")  # the packed product, not the transposed copy
    for rows in (1, 3):
        x = torch.randn(rows, 24)
        expected = F.linear(x, layer.weight, layer.bias)
        if gelu is not None:
            expected = F.gelu(expected, approximate=gelu)
        torch.testing.assert_close(step(x), expected, atol=1e-6, rtol=1e-6)
    assert not decode.uses_onednn(layer.weight.bfloat16())  # bf16 weights keep addmm


@needs_onednn
def test_at_two_threads_only_large_matrices_take_onednn():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        big, small = nn.Linear(384, 384), nn.Linear(128, 512)  # 147,456 and 65,536 weights
        assert decode.uses_onednn(big.weight) and not decode.uses_onednn(small.weight)
        assert isinstance(decode.linear_function(small), functools.partial)  # addmm on the transposed copy
        x = torch.randn(1, 384)
        torch.testing.assert_close(decode.linear_function(big)(x), F.linear(x, big.weight, big.bias),
                                   atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(before)


@needs_onednn
@pytest.mark.parametrize("pos", ["learned", "rope", "alibi"])
def test_at_two_threads_the_gpt_step_still_equals_forward(two_threads, pos):
    test_the_gpt_step_equals_forward_with_a_cache_at_every_position(pos, 2)
    test_the_step_without_biases_and_with_gelu_tanh_equals_forward()


@needs_onednn
def test_at_two_threads_the_encoder_decoder_step_still_equals_cached_decode(two_threads):
    test_the_encoder_decoder_step_equals_cached_decode("rope")
