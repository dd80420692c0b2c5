"""The RNN encoder-decoders: c⟨t⟩ = Σ α a by hand, masking, gradients, the cached step, learning, LSTM."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.model.encoder_decoder import pad_sources
from minitx.model.rnn import RNNEncoderDecoder, RNNSearch

VOCAB, END = 30, 1
MODELS = {"rnn": RNNEncoderDecoder, "rnn-attention": RNNSearch}


def rnn_config(cell: str = "gru", attention: str = "additive", **overrides) -> ModelConfig:
    """A tiny config of two layers each side; `cell` and `attention` are ModelConfig's fields (--cell, --attention)."""
    shape = {"vocab_size": VOCAB, "block_size": 24, "n_layers": 2, "n_heads": 1, "dim": 16,
             "pos": "none"} | overrides
    config = ModelConfig(**shape)
    object.__setattr__(config, "cell", cell)  # past validation: the model's own check is tested too
    object.__setattr__(config, "attention", attention)
    return config


def make(arch: str, cell: str = "gru", attention: str = "additive", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS[arch](rnn_config(cell, attention, **overrides)).eval()


def ragged_sources() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sources of 6, 3 and 1 tokens with the end token, right-padded: ids [3, 7], padding [3, 7]."""
    return pad_sources([[5, 6, 7, 8, 9, 10], [11, 12, 13], [14]], END)


ALL = [(arch, cell) for arch in MODELS for cell in ("gru", "lstm")]


# -- attention: the notes' formula, by hand ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_the_context_is_the_attention_weighted_sum_of_the_annotations_computed_by_hand(kind):
    model = make("rnn-attention", attention=kind)
    source, padding = ragged_sources()
    a = model.encode(source, padding)  # a⟨t'⟩ [B, S, C]
    s = torch.randn(3, 16)  # a decoder state s⟨t-1⟩
    attention = model.decoder.cross_attn
    with torch.no_grad():
        context, alpha = attention(s, attention.keys(a), a, padding)
        e = torch.empty(3, a.shape[1])
        for b in range(3):
            for t in range(a.shape[1]):
                if kind == "additive":  # e = vᵀ tanh(W s + U a + b_U)
                    hidden = attention.W.weight @ s[b] + attention.U.weight @ a[b, t] + attention.U.bias
                    e[b, t] = attention.v.weight[0] @ torch.tanh(hidden)
                elif kind == "dot":  # e = s · a
                    e[b, t] = s[b] @ a[b, t]
                else:  # e = sᵀ W_a a
                    e[b, t] = s[b] @ (attention.W_a.weight @ a[b, t])
        expected_alpha = torch.zeros_like(e)
        for b in range(3):
            real = ~padding[b]
            expected_alpha[b, real] = torch.exp(e[b, real]) / torch.exp(e[b, real]).sum()
        expected_context = torch.stack([sum(expected_alpha[b, t] * a[b, t] for t in range(a.shape[1]))
                                        for b in range(3)])
    torch.testing.assert_close(alpha, expected_alpha, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(context, expected_context, rtol=1e-5, atol=1e-6)


def test_the_first_step_of_the_decoder_reads_the_hand_made_context():
    """α⟨1,·⟩ is the softmax of e⟨1,t'⟩ = vᵀ tanh(W s⟨0⟩ + U a⟨t'⟩), with s⟨0⟩ = tanh(W_init ←a⟨1⟩)."""
    model = make("rnn-attention")
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3, 4], [END, 5, 6], [END, 7, 8]])
    with torch.no_grad():
        a = model.encode(source, padding)
        backward_first = a[:, 0, 8:]  # ←a⟨1⟩: the backward half at the first token
        s0 = torch.tanh(model.init_state(backward_first)).view(3, 2, 16)[:, -1]  # the top layer's s⟨0⟩
        att = model.decoder.cross_attn
        e = (torch.tanh(att.W(s0)[:, None] + att.U(a)) @ att.v.weight[0]).masked_fill(padding, float("-inf"))
        alpha = model.attention_map(source, target, padding)  # [B, T, S]
    torch.testing.assert_close(alpha[:, 0], torch.softmax(e, dim=-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_rows_sum_to_one_and_padding_gets_exactly_zero(kind):
    model = make("rnn-attention", attention=kind)
    source, padding = ragged_sources()
    alpha = model.attention_map(source, torch.tensor([[END, 3, 4, 5]] * 3), padding)
    assert alpha.shape == (3, 4, 7)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 4))
    assert bool((alpha[padding.unsqueeze(1).expand_as(alpha)] == 0).all())
    assert bool((alpha[~padding.unsqueeze(1).expand_as(alpha)] > 0).all())


PATTERN = "decoder.cross_attn.hook_pattern"


def test_the_hook_points_are_named_as_the_encoder_decoders_and_reading_them_changes_nothing():
    model = make("rnn-attention")
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3]] * 3)
    assert list(model.hook_points()) == ["encoder.hook_embed", "encoder.hook_memory", "decoder.hook_embed", PATTERN,
                                         "decoder.hook_final"]
    assert list(make("rnn").hook_points()) == ["encoder.hook_embed", "encoder.hook_memory", "decoder.hook_embed",
                                               "decoder.hook_final"]
    plain, _ = model(source, target, padding)
    logits, cache = model.run_with_cache(source, target, padding)
    assert torch.equal(logits, plain)
    assert cache[PATTERN].shape == (3, 1, 2, 7)  # [B, heads=1, T, S], as a cross-attention head
    assert cache["encoder.hook_memory"].shape == (3, 7, 16) and cache["decoder.hook_final"].shape == (3, 2, 16)
    torch.testing.assert_close(cache[PATTERN][:, 0], model.attention_map(source, target, padding))


def test_patching_the_attention_pattern_reruns_the_decoder_with_the_given_weights():
    """A hook that gives α' makes every c⟨t⟩ = Σ α' a: the logits are those of the decoder fed those contexts."""
    model = make("rnn-attention")
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3, 4]] * 3)
    plain, _ = model(source, target, padding)
    first = (~padding).float().cumsum(1).eq(1) & ~padding  # all weight on the first source token
    forced = first.float()[:, None, None, :].expand(3, 1, 3, 7)
    patched = model.run_with_hooks(source, target, padding, fwd_hooks=[(PATTERN, lambda alpha, name: forced)])
    assert not torch.allclose(patched, plain, atol=1e-3)
    with torch.no_grad():  # by hand: the step with α given, at every position
        memory = model.encode(source, padding)
        states, context, _ = model._teacher_forced(model.wte(target), memory, padding, forced[:, 0])
        torch.testing.assert_close(context, memory[:, :1].expand(3, 3, 16))  # c⟨t⟩ = a⟨1⟩
        expected = model._output(states, context, model.wte(target))
    torch.testing.assert_close(patched, expected)

    def zero_in_place(alpha: torch.Tensor, name: str) -> None:  # an edit in place counts as a replacement too
        alpha.zero_()

    zeroed = model.run_with_hooks(source, target, padding, fwd_hooks=[(PATTERN, zero_in_place)])
    assert not torch.allclose(zeroed, plain, atol=1e-3)


# -- masking and gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "cell"), ALL)
def test_padding_a_source_does_not_change_the_logits(arch, cell):
    model = make(arch, cell)
    target = torch.tensor([[END, 3, 4, 5]])
    short, short_padding = pad_sources([[11, 12, 13]], END)  # alone: no padding
    alone, _ = model(short, target, short_padding)
    batch, padding = pad_sources([[11, 12, 13], [5, 6, 7, 8, 9, 10, 11, 12]], END)
    batch[0, 4:] = torch.tensor([20, 21, 22, 23, 24])  # junk in the padded slots: must be ignored too
    padded, _ = model(batch, target.expand(2, -1), padding)
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("arch", "cell"), ALL)
def test_gradients_reach_every_parameter_of_the_encoder_and_the_decoder(arch, cell):
    model = make(arch, cell).train()
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3, 4], [END, 5, 6], [END, 7, 8]])
    _, loss = model(source, target, padding, torch.tensor([[3, 4, END], [5, 6, END], [7, 8, -1]]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert any(name.startswith("encoder.layers.") and "reverse" in name for name, _ in model.named_parameters()) == (
        arch == "rnn-attention")  # the bidirectional encoder's backward direction is among them


# -- decoding one token at a time ---------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "cell"), ALL)
def test_the_cached_step_equals_the_teacher_forced_decoder_at_every_greedy_step(arch, cell):
    model = make(arch, cell)
    source, padding = ragged_sources()
    memory = model.encode(source, padding)
    cache, plan = model.new_cache(3), model.decode_plan(padding)
    model.prefill_cross(memory, cache, plan)
    written = torch.full((3, 1), END)
    for _ in range(8):
        stepped = model.decode_next(written[:, -1:], cache, padding, plan)  # [B, V]
        with torch.no_grad():
            whole = model.decode(written, memory, padding, last_only=True)[:, -1]
        torch.testing.assert_close(stepped, whole, rtol=0, atol=1e-5)
        written = torch.cat([written, stepped.argmax(-1, keepdim=True)], dim=1)
    assert cache.length == 8


@pytest.mark.parametrize("arch", list(MODELS))
def test_reordering_the_state_makes_a_row_continue_another_rows_translation(arch):
    """Beam search's move: after reorder(rows), row i steps on as row rows[i] would have."""
    model = make(arch)
    source, padding = pad_sources([[5, 6, 7], [5, 6, 7]], END)  # one sentence, two beams
    memory = model.encode(source, padding)
    cache, plan = model.new_cache(2), model.decode_plan(padding)
    model.prefill_cross(memory, cache, plan)
    model.decode_next(torch.tensor([[END], [END]]), cache, padding, plan)
    model.decode_next(torch.tensor([[3], [4]]), cache, padding, plan)  # the beams part
    cache.reorder(torch.tensor([1, 1]))  # both continue beam 1: "4"
    stepped = model.decode_next(torch.tensor([[9], [9]]), cache, padding, plan)
    with torch.no_grad():
        whole = model.decode(torch.tensor([[END, 4, 9]] * 2), memory, padding, last_only=True)[:, -1]
    torch.testing.assert_close(stepped, whole, rtol=0, atol=1e-5)


def test_decode_next_refuses_an_empty_state_and_more_than_one_token():
    model = make("rnn-attention")
    source, padding = ragged_sources()
    with pytest.raises(ValueError, match="prefill_cross"):
        model.decode_next(torch.tensor([[END]] * 3), model.new_cache(3), padding)
    cache = model.new_cache(3)
    model.prefill_cross(model.encode(source, padding), cache)
    with pytest.raises(ValueError, match="exactly one token"):
        model.decode_next(torch.tensor([[END, 3]] * 3), cache, padding)


# -- the model as a whole ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "cell"), ALL)
def test_the_loss_is_the_mean_cross_entropy_of_the_logits_and_the_table_starts_at_unit_scale(arch, cell):
    model = make(arch, cell)
    source, padding = ragged_sources()
    target = torch.randint(2, VOCAB, (3, 6))
    targets = target.clone()
    targets[0, 4:] = -1  # no loss there
    logits, loss = model(source, target, padding, targets)
    assert loss.dtype == torch.float32
    real = targets.reshape(-1) >= 0
    by_hand = -torch.log_softmax(logits.reshape(-1, VOCAB).float()[real], -1).gather(1, targets.reshape(-1, 1)[real])
    torch.testing.assert_close(loss, by_hand.mean())
    # E x of order 1, so that a GRU's gates (weights ±1/√H) feel the words from the first step (EMBEDDING_STD)
    assert abs(float(model.wte.weight.detach().std()) - 1.0) < 0.1


@functools.cache
def reversal_model(arch: str, cell: str) -> tuple[torch.nn.Module, list[list[int]], float]:
    """A tiny model trained 300 steps on 8 pairs whose target is the source reversed: (model, sources, last loss).

    Reversal needs every source token at the right step, so neither model can get it from the target alone.
    Cached: the learning test and the translation test share one training (deterministic, so order-free).
    """
    from minitx.dataset.pairs import collate

    generator = torch.Generator().manual_seed(1)
    sources = [torch.randint(2, VOCAB, (int(n),), generator=generator).numpy()
               for n in torch.randint(3, 8, (8,), generator=generator)]
    targets = [s[::-1].copy() for s in sources]
    source, target_in, padding, wanted = collate(sources, targets, END)
    model = make(arch, cell, n_layers=1, dim=32).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        _, loss = model(source, target_in, padding, wanted)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), [s.tolist() for s in sources], float(loss.detach())


@pytest.mark.parametrize(("arch", "cell"), [("rnn", "gru"), ("rnn-attention", "gru"), ("rnn-attention", "lstm")])
def test_a_tiny_model_learns_eight_pairs_by_heart(arch, cell):
    _, _, loss = reversal_model(arch, cell)
    assert loss < 0.05


@pytest.mark.parametrize("arch", list(MODELS))
def test_a_state_dict_round_trip_gives_the_same_logits(arch, tmp_path):
    from safetensors.torch import load_model, save_model

    model = make(arch, "lstm")
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3, 4]] * 3)
    before, _ = model(source, target, padding)
    save_model(model, str(tmp_path / "model.safetensors"))  # tied tables: saved once, as a run saves them
    torch.manual_seed(5)
    again = MODELS[arch](model.config).eval()
    load_model(again, str(tmp_path / "model.safetensors"))
    after, _ = again(source, target, padding)
    assert torch.equal(before, after)


@pytest.mark.parametrize("arch", list(MODELS))
def test_the_output_layer_is_the_token_table_and_positions_are_none(arch):
    model = make(arch)
    assert model.lm_head.weight is model.wte.weight
    assert model.positions.kind == "none" and not list(model.positions.parameters())
    untied = MODELS[arch](rnn_config(tie_embeddings=False))
    assert untied.num_parameters() == model.num_parameters() + VOCAB * 16


def test_the_fixed_vector_model_hands_the_decoder_one_vector_per_sentence():
    model = make("rnn")
    source, padding = ragged_sources()
    memory = model.encode(source, padding)
    assert memory.shape == (3, 1, 16)
    alone = model.encode(*pad_sources([[14]], END))
    torch.testing.assert_close(memory[2], alone[0], rtol=0, atol=1e-6)  # the state after the real last token


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="even --dim"):
        RNNSearch(rnn_config(dim=15))
    with pytest.raises(UserError, match="recurrent cell 'rnn'"):
        RNNEncoderDecoder(rnn_config(cell="rnn"))
    with pytest.raises(UserError, match="attention score 'cosine'"):
        RNNSearch(rnn_config(attention="cosine"))
    with pytest.raises(UserError, match="at most 24"):
        make("rnn")(torch.zeros(1, 25, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))


def test_the_loss_ignores_positions_marked_minus_one():
    model = make("rnn-attention")
    source, padding = ragged_sources()
    target = torch.tensor([[END, 3, 4]] * 3)
    wanted = torch.tensor([[3, 4, END], [3, -1, -1], [-1, -1, -1]])
    logits, loss = model(source, target, padding, wanted)
    expected = F.cross_entropy(logits[:2].reshape(-1, VOCAB)[[0, 1, 2, 3]], torch.tensor([3, 4, END, 3]))
    torch.testing.assert_close(loss, expected)



# -- the same search code as the transformer's (generation/translate.py) -------------------------------------

@pytest.mark.parametrize(("arch", "cell"), [("rnn", "gru"), ("rnn-attention", "gru"), ("rnn-attention", "lstm")])
def test_greedy_and_beam_search_translate_with_the_cached_state_as_by_rerunning_the_decoder(arch, cell):
    from minitx.generation.translate import beam_search, greedy

    model, sources, _ = reversal_model(arch, cell)
    cached = greedy(model, sources, END, max_new_tokens=12)
    assert cached == [source[::-1] for source in sources]  # it learned them, and the search code finds them
    assert cached == greedy(model, sources, END, max_new_tokens=12, use_cache=False)
    assert beam_search(model, sources, END, beam=1, max_new_tokens=12) == cached  # beam 1 is greedy
    novel = [[5, 6, 7, 8, 9, 10, 11], [12, 3, 4], [25]]  # not learned: the beams disagree along the way
    beams = beam_search(model, novel, END, beam=3, max_new_tokens=12)
    assert beams == beam_search(model, novel, END, beam=3, max_new_tokens=12, use_cache=False)
