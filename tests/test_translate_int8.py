"""Int8 weights for the encoder-decoder: close to fp32, the flat decoding step still exact, and `translate --quantize`.

The int8 model is `quantize_int8` applied to an `EncoderDecoder` (model/quantize.py): every linear map of
encoder and decoder becomes an `Int8Linear`, everything else bfloat16.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minitx.commands.translate import run_translate
from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.errors import UserError
from minitx.generation.translate import beam_search, greedy
from minitx.model import KVCache, build_model
from minitx.model.encoder_decoder import EncoderDecoder, pad_sources
from minitx.model.quantize import Int8Linear, quantize_int8
from test_translate import copy_run, run_cli  # noqa: F401 - copy_run is a fixture: a tiny trained run

torch.set_num_threads(1)

#: sources of different lengths, so the padded batch has rows with 0, 3, 6 and 7 padding tokens
SOURCES = [[3, 4, 5, 6, 7, 8, 9, 10], [7, 8], [9, 10, 11, 12, 13], [5]]


def small_translator(pos: str = "rope", seed: int = 0, **overrides) -> EncoderDecoder:
    """A random encoder-decoder as training starts it (GPT-2 initialisation), 64 wide: realistic weight rows."""
    torch.manual_seed(seed)
    values = dict(vocab_size=48, block_size=16, n_layers=2, encoder_layers=2, n_heads=4, dim=64, pos=pos,
                  arch="encoder-decoder")
    return build_model(ModelConfig(**{**values, **overrides})).eval()


def large_translator(pos: str = "rope", seed: int = 0) -> EncoderDecoder:
    """A random encoder-decoder with large weights, so that its choices differ from step to step."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=30, block_size=14, n_layers=2, n_heads=2, dim=16, pos=pos, arch="encoder-decoder")
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def test_quantizing_an_encoder_decoder_replaces_every_linear_map_and_keeps_the_embedding_table():
    model = small_translator(encoder_layers=3)
    table = model.wte.weight.detach().clone()
    report = quantize_int8(model)
    # 4 per encoder block (c_attn, c_proj, c_fc, c_proj), 7 per decoder block (+ c_q, c_kv, c_proj), lm_head
    assert report["layers"] == 4 * 3 + 7 * 2 + 1
    assert report["bytes_after"] < report["bytes_before"] / 3.5
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    for block in model.decoder["blocks"]:
        assert isinstance(block.cross_attn.c_q, Int8Linear) and isinstance(block.cross_attn.c_kv, Int8Linear)
    assert isinstance(model.lm_head, Int8Linear) and isinstance(model.wte, nn.Embedding)
    torch.testing.assert_close(model.wte.weight.float(), table, atol=0, rtol=2**-8)  # rounded to 8 significant bits
    floating = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    assert floating and all(t.dtype == torch.bfloat16 for t in floating)
    assert not model.training


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_quantized_logits_are_close_to_fp32(pos):
    """Tolerance: 1% of the largest |logit|, as for the GPT (tests/test_quantize.py).

    Each weight is off by at most half a step, s_i/2 ≈ max_j|W_ij|/254 (0.4% of its row's largest
    weight), and activations are bfloat16 (8 significant bits, 2^-9 relative rounding) through
    2 encoder + 2 decoder blocks; measured on these models: 0.50-0.65% of the largest logit. A
    wrong scale, a transposed matrix or a layer left out of the int8/bfloat16 conversion is far off.
    """
    model = small_translator(pos)
    source, padding = pad_sources(SOURCES, end_id=0)
    target = torch.randint(1, 48, (len(SOURCES), 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before, _ = model(source, target, padding)
        quantize_int8(model)
        after, loss = model(source, target, padding, target)
    assert after.dtype == torch.bfloat16 and loss.dtype == torch.float32  # the loss is fp32 even so
    after = after.float()
    assert (after - before).abs().max() < 0.01 * before.abs().max()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.95


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_int8_decode_next_equals_cached_and_uncached_decode_at_every_step(pos):
    model = large_translator(pos)
    quantize_int8(model)
    source, padding = pad_sources(SOURCES, end_id=0)
    steps = model.config.block_size  # the whole block
    target = torch.randint(1, 30, (len(SOURCES), steps), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        memory = model.encode(source, padding)
        assert memory.dtype == torch.bfloat16
        reference, flat = KVCache(model.config, len(SOURCES), dtype=memory.dtype), KVCache(
            model.config, len(SOURCES), dtype=memory.dtype)
        plan = model.decode_plan(padding)
        model.prefill_cross(memory, flat, plan)
        for t in range(steps):
            got = model.decode_next(target[:, t : t + 1], flat, padding, plan).float()  # [B, V]
            cached = model.decode(target[:, t : t + 1], memory if t == 0 else None, padding, cache=reference,
                                  last_only=True)[:, 0].float()
            uncached = model.decode(target[:, : t + 1], memory, padding, last_only=True)[:, 0].float()
            # the same int8 and bfloat16 kernels in the same order as the cached decode: equal
            torch.testing.assert_close(got, cached, atol=1e-5, rtol=0, msg=f"step {t}")
            # the whole target again groups the same operations differently: within one bfloat16 step
            # (2^-7 of the largest logit); measured here: equal too
            torch.testing.assert_close(got, uncached, atol=2**-7 * uncached.abs().max().item(), rtol=0,
                                       msg=f"step {t}")


@pytest.mark.parametrize("pos", ["rope", "alibi", "learned"])
def test_int8_greedy_and_beam_search_run_on_the_flat_step_and_equal_the_uncached_decoder(pos, monkeypatch):
    model = large_translator(pos, seed=1)
    quantize_int8(model)
    plan = model.decode_plan()
    if hasattr(torch, "_weight_int8pack_mm"):  # each linear map of the step is the int8 kernel itself
        assert plan.head is not model.lm_head.forward
        assert plan.cross[0].kv is not model.decoder["blocks"][0].cross_attn.c_kv.forward
    uncached = {
        "greedy": greedy(model, SOURCES, boundary_id=0, use_cache=False),
        "beam 3": beam_search(model, SOURCES, boundary_id=0, beam=3, use_cache=False),
    }

    def no_decode(*args, **kwargs):
        raise AssertionError("the cached translation must step with decode_next, not decode")

    monkeypatch.setattr(model, "decode", no_decode)
    cached = {
        "greedy": greedy(model, SOURCES, boundary_id=0),
        "beam 3": beam_search(model, SOURCES, boundary_id=0, beam=3),
    }
    assert cached == uncached
    assert any(cached["greedy"]) and all(0 not in row for row in cached["greedy"])


def test_translate_command_with_int8_weights(copy_run):  # noqa: F811 - the imported fixture
    for beam in ("1", "2"):
        result = run_cli("translate", str(copy_run), "abc", "ba", "cab", "--beam", beam, "--quantize", "int8",
                         "--device", "cpu")
        assert result.exit_code == 0, result.output + result.stderr
        assert len(result.stdout.splitlines()) == 3
        assert "sentences/s" in result.stderr and "int8 weights" in result.stderr
    fp32 = run_cli("translate", str(copy_run), "abc", "--quantize", "none", "--quiet")
    assert fp32.exit_code == 0 and fp32.stdout == run_cli("translate", str(copy_run), "abc", "--quiet").stdout


def test_an_unknown_quantize_kind_is_one_line_and_exit_2(copy_run):  # noqa: F811 - the imported fixture
    result = run_cli("translate", str(copy_run), "abc", "--quantize", "int4")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--quantize" in lines[0] and "int8" in lines[0] and "Traceback" not in result.output


def test_the_library_refuses_an_unknown_kind_before_reading_anything(tmp_path):
    with pytest.raises(UserError, match="--quantize must be one of none, int8"):  # not "no such file"
        run_translate(tmp_path / "no-run", [], file=tmp_path / "missing.txt", beam=1, batch_size=32,
                      max_new_tokens=None, device="cpu", quiet=True, quantize="int4")
