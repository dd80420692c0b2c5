"""The encoder-decoder model: what flows where (gradients, the causal mask, cross-attention, the cache)."""

from __future__ import annotations

import pytest
import torch

from minitx.config import POSITIONAL_ENCODINGS, ModelConfig
from minitx.model import KVCache, build_model
from minitx.model.encoder_decoder import EncoderDecoder

torch.set_num_threads(1)


def tiny(pos: str = "learned", **overrides) -> EncoderDecoder:
    torch.manual_seed(0)
    values = dict(vocab_size=40, block_size=16, n_layers=2, n_heads=2, dim=16, pos=pos, arch="encoder-decoder")
    return build_model(ModelConfig(**{**values, **overrides})).eval()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(1, 40, (3, 9), generator=g)
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[1, 6:] = True  # the second sentence has 6 real tokens
    padding[2, 4:] = True
    target = torch.randint(1, 40, (3, 7), generator=g)
    return source, padding, target


def test_registry_builds_the_encoder_decoder_with_its_own_encoder_depth_and_positions():
    model = tiny(pos="rope", encoder_layers=3, encoder_pos="none")
    assert isinstance(model, EncoderDecoder)
    assert len(model.encoder["blocks"]) == 3 and len(model.decoder["blocks"]) == 2
    assert model.encoder_positions.kind == "none" and model.positions.kind == "rope"
    assert model.lm_head.weight is model.wte.weight  # tied


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_gradients_reach_every_encoder_parameter(pos):
    model = tiny(pos).train()
    source, padding, target = batch()
    _, loss = model(source, target, padding, target)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_decoder_output_at_t_ignores_later_target_tokens(pos):
    model = tiny(pos)
    source, padding, target = batch()
    changed = target.clone()
    changed[:, 4:] = (changed[:, 4:] + 7) % 40
    before, _ = model(source, target, padding)
    after, _ = model(source, changed, padding)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_source_reaches_the_output_through_cross_attention_only():
    model = tiny("rope")
    source, padding, target = batch()
    other = (source + 5) % 40
    assert not torch.allclose(model(source, target, padding)[0], model(other, target, padding)[0])
    # silence every cross-attention: then the source cannot matter any more
    hooks = [block.cross_attn.register_forward_hook(lambda m, i, out: (torch.zeros_like(out[0]), out[1]))
             for block in model.decoder["blocks"]]
    try:
        torch.testing.assert_close(model(source, target, padding)[0], model(other, target, padding)[0])
    finally:
        for hook in hooks:
            hook.remove()


def test_padding_hides_the_padded_source_tokens():
    model = tiny("alibi")
    source, padding, target = batch()
    junk = source.clone()
    junk[padding] = 3  # different ids under the padding
    torch.testing.assert_close(model(source, target, padding)[0], model(junk, target, padding)[0])
    # and one sentence alone, unpadded, gives what it gives in the padded batch
    alone, _ = model(source[1:2, :6], target[1:2])
    torch.testing.assert_close(alone, model(source, target, padding)[0][1:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_cached_decoding_equals_the_full_forward(pos):
    model = tiny(pos)
    source, padding, target = batch()
    full, _ = model(source, target, padding)
    memory = model.encode(source, padding)
    cache = KVCache(model.config, batch_size=3)
    steps = [model.decode(target[:, :3], memory, padding, cache=cache)]  # a prefill of three tokens
    for t in range(3, target.shape[1]):
        steps.append(model.decode(target[:, t : t + 1], None, padding, cache=cache))  # the cached cross k/v
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert all(kv is not None for kv in cache.cross)


def test_textbook_and_fused_paths_agree_and_weights_are_captured_by_hook_name():
    model = tiny("alibi", encoder_layers=1)
    source, padding, target = batch()
    fused, _ = model(source, target, padding)
    copy_patterns = [(lambda name: name.endswith("hook_pattern"), lambda weights, _name: weights.clone())]
    textbook = model.run_with_hooks(source, target, padding, fwd_hooks=copy_patterns)  # values mixed with α itself
    torch.testing.assert_close(fused, textbook, atol=1e-5, rtol=1e-5)
    read, cache = model.run_with_cache(source, target, padding)
    assert torch.equal(read, fused)  # reading every activation leaves the output as it is
    cross = cache["decoder.blocks.1.cross_attn.hook_pattern"]
    assert cross.shape == (3, 2, 7, 9)  # [B, H, T, S]: a non-square matrix
    torch.testing.assert_close(cross.sum(-1), torch.ones(3, 2, 7))
    assert (cross[1, :, :, 6:] == 0).all()  # padding gets no weight
    assert cache["encoder.blocks.0.attn.hook_pattern"].shape == (3, 2, 9, 9)
    assert cache["decoder.blocks.0.attn.hook_pattern"].shape == (3, 2, 7, 7)
    assert cache["encoder.blocks.0.hook_resid_post"].shape == (3, 9, 16)
    torch.testing.assert_close(cache["encoder.hook_memory"], model.encode(source, padding), atol=0, rtol=0)


def test_loss_counts_target_tokens_only():
    model = tiny()
    source, padding, target = batch()
    targets = target.clone()
    targets[:, 5:] = -1
    logits, loss = model(source, target, padding, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, :5].reshape(-1, 40), target[:, :5].reshape(-1))
    torch.testing.assert_close(loss, expected)
