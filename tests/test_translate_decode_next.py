"""The encoder-decoder's flat decoding step: `decode_next` = `decode(cache, last_only)`, and translations keep."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.generation.translate import beam_search, greedy
from minitx.model import KVCache, build_model
from minitx.model.encoder_decoder import EncoderDecoder, pad_sources
from minitx.model.quantize import Int8Linear

torch.set_num_threads(1)

#: sources of different lengths, so the padded batch has rows with 0, 3, 6 and 7 padding tokens
SOURCES = [[3, 4, 5, 6, 7, 8, 9, 10], [7, 8], [9, 10, 11, 12, 13], [5]]


def translator(pos: str, seed: int = 0, **overrides) -> EncoderDecoder:
    """A random encoder-decoder with large weights, so that its choices differ from step to step."""
    torch.manual_seed(seed)
    values = dict(vocab_size=30, block_size=14, n_layers=2, n_heads=2, dim=16, pos=pos, arch="encoder-decoder")
    model = build_model(ModelConfig(**{**values, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def both_ways(model: EncoderDecoder, steps: int, atol: float = 1e-5) -> None:
    """Feed the same target tokens to `decode(cache, last_only)` and to `decode_next`; every step's logits agree."""
    source, padding = pad_sources(SOURCES, end_id=0)
    g = torch.Generator().manual_seed(2)
    target = torch.randint(1, model.config.vocab_size, (len(SOURCES), steps), generator=g)
    with torch.no_grad():
        memory = model.encode(source, padding)
        reference = KVCache(model.config, len(SOURCES), dtype=memory.dtype)
        flat = KVCache(model.config, len(SOURCES), dtype=memory.dtype)
        plan = model.decode_plan(padding)
        model.prefill_cross(memory, flat, plan)
        for t in range(steps):
            expected = model.decode(target[:, t : t + 1], memory if t == 0 else None, padding, cache=reference,
                                    last_only=True)
            got = model.decode_next(target[:, t : t + 1], flat, padding, plan)
            assert got.shape == (len(SOURCES), model.config.vocab_size)
            torch.testing.assert_close(got.float(), expected[:, 0].float(), atol=atol, rtol=0, msg=f"step {t}")
    assert flat.length == reference.length == steps


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_decode_next_equals_cached_decode_at_every_step_with_padded_sources(pos):
    both_ways(translator(pos), steps=14)  # the whole block


def test_decode_next_with_encoder_positions_of_another_kind_and_no_biases():
    both_ways(translator("alibi", encoder_pos="sinusoidal", bias=False, activation="gelu_tanh"), steps=6)


def test_decode_next_without_padding_needs_no_mask():
    model = translator("rope")
    source = torch.randint(1, 30, (2, 5))
    padding = torch.zeros(2, 5, dtype=torch.bool)
    plan = model.decode_plan(padding)
    assert plan.cross_mask is None
    with torch.no_grad():
        memory = model.encode(source, padding)
        masked, flat = KVCache(model.config, 2), KVCache(model.config, 2)
        expected = model.decode(torch.tensor([[0], [0]]), memory, padding, cache=masked, last_only=True)[:, 0]
        model.prefill_cross(memory, flat, plan)
        torch.testing.assert_close(model.decode_next(torch.tensor([[0], [0]]), flat, padding, plan), expected,
                                   atol=1e-5, rtol=0)


def test_decode_next_refuses_a_cache_without_the_source_and_a_plan_of_another_batch():
    model = translator("learned")
    source, padding = pad_sources(SOURCES, end_id=0)
    cache = KVCache(model.config, len(SOURCES))
    with pytest.raises(ValueError, match="prefill_cross"):
        model.decode_next(torch.zeros(len(SOURCES), 1, dtype=torch.long), cache, padding)
    model.prefill_cross(model.encode(source, padding).detach(), cache)
    with pytest.raises(ValueError, match="another source_padding"):
        model.decode_next(torch.zeros(len(SOURCES), 1, dtype=torch.long), cache, padding, model.decode_plan(None))
    with pytest.raises(ValueError, match="exactly one token"):
        model.decode_next(torch.zeros(len(SOURCES), 2, dtype=torch.long), cache, padding)


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_greedy_and_beam_search_with_decode_next_equal_rerunning_the_whole_decoder(pos):
    for seed in range(2):
        model = translator(pos, seed=seed)
        assert greedy(model, SOURCES, boundary_id=0) == greedy(model, SOURCES, boundary_id=0, use_cache=False)
        for beam in (2, 3):
            cached = beam_search(model, SOURCES, boundary_id=0, beam=beam)
            assert cached == beam_search(model, SOURCES, boundary_id=0, beam=beam, use_cache=False)


def test_greedy_stops_at_max_new_tokens_and_at_the_end():
    model = translator("rope", seed=3)
    short = greedy(model, SOURCES, boundary_id=0, max_new_tokens=3)
    assert all(len(row) <= 3 for row in short)
    full = greedy(model, SOURCES, boundary_id=0)
    assert all(0 not in row for row in full)  # the end token is never part of a translation
    assert [row[:3] for row in full] == [row[:3] for row in short]


def test_int8_decoder_layers_run_through_their_own_function_in_decode_next():
    """Int8 layers (quantize.py) in the decoder: `decode_plan` takes their `as_function`, same logits as `decode`."""
    model = translator("rope")
    for block in model.decoder["blocks"]:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Int8Linear(child))
    model.lm_head = Int8Linear(model.lm_head)
    model.to(torch.bfloat16)  # as quantize_int8 leaves a model: the CPU kernel's fast function
    plan = model.decode_plan()
    if hasattr(torch, "_weight_int8pack_mm"):
        assert plan.head is not model.lm_head.forward  # the int8 kernel itself, not the module's forward
    both_ways(model, steps=5)  # the same kernels in the same order: equal even in bfloat16
    assert greedy(model, SOURCES, boundary_id=0, max_new_tokens=5) == greedy(
        model, SOURCES, boundary_id=0, max_new_tokens=5, use_cache=False)
