"""The model's promises, checked on tiny networks for every positional encoding."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

from minitx.config import POSITIONAL_ENCODINGS
from minitx.errors import UserError
from minitx.model import GPT, AttentionMask, KVCache, MultiHeadAttention, alibi_slopes, build_positional_encoding
from minitx.model.positions import sinusoidal_table

ALL_POS = list(POSITIONAL_ENCODINGS)
PATHS = ["sdpa", "textbook"]


def random_ids(config, batch: int = 2, length: int | None = None, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, length or config.block_size), generator=generator)


def is_pattern(name: str) -> bool:
    return name.endswith("attn.hook_pattern")


def on_path(model: GPT, path: str):
    """Every layer on the fused path ("sdpa") or, through a hook that hands back a copy of every pattern α, on the
    textbook path (values mixed with α itself)."""
    return nullcontext() if path == "sdpa" else model.hooks([(is_pattern, lambda weights, _name: weights.clone())])


# --- causality and the two attention paths -------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pos", ALL_POS)
def test_future_tokens_never_change_past_outputs(make_tiny_model, pos, path):
    model = make_tiny_model(pos)
    idx = random_ids(model.config)
    j = 9
    changed = idx.clone()
    changed[:, j] = (idx[:, j] + 1) % model.config.vocab_size
    with torch.no_grad(), on_path(model, path):
        before, _ = model(idx)
        after, _ = model(changed)
    torch.testing.assert_close(after[:, :j], before[:, :j], atol=1e-6, rtol=0)
    for t in range(j, model.config.block_size):  # the change must reach every later position
        assert (after[:, t] - before[:, t]).abs().max() > 1e-5, f"position {t} ignored token {j}"


@pytest.mark.parametrize("pos", ALL_POS)
def test_textbook_and_sdpa_paths_give_the_same_logits(make_tiny_model, pos):
    model = make_tiny_model(pos)
    idx = random_ids(model.config)
    with torch.no_grad():
        fast, _ = model(idx)
        with on_path(model, "textbook"):
            slow, _ = model(idx)
        read, cache = model.run_with_cache(idx, names=is_pattern)  # reading α leaves the fused output
    assert len(cache) == model.config.n_layers
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    assert torch.equal(fast, read)


@pytest.mark.parametrize("pos", ALL_POS)
def test_sdpa_attention_output_equals_the_textbook_formula(tiny_config, pos):
    config = tiny_config(pos)
    torch.manual_seed(0)
    attention = MultiHeadAttention(config).eval()
    positions = build_positional_encoding(config)
    x = torch.randn(3, 11, config.dim)
    with torch.no_grad():
        fast, no_weights = attention(x, positions=positions)
        slow, weights = attention(x, positions=positions, textbook=True)
    assert no_weights is None and weights.shape == (3, config.n_heads, 11, 11)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos", ALL_POS)
def test_attention_weights_sum_to_one_and_are_zero_above_the_diagonal(make_tiny_model, pos):
    model = make_tiny_model(pos)
    config = model.config
    t = 12
    _, cache = model.run_with_cache(random_ids(config, batch=2, length=t), names=is_pattern)
    assert list(cache) == [f"blocks.{layer}.attn.hook_pattern" for layer in range(config.n_layers)]
    for weights in cache.values():
        assert weights.shape == (2, config.n_heads, t, t)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, config.n_heads, t), atol=1e-6, rtol=0)
        above = torch.ones(t, t, dtype=torch.bool).triu(1)
        assert torch.all(weights[..., above] == 0)
        assert torch.all(weights[..., ~above] > 0)  # and the past is really attended to


def test_attention_mask_hides_exactly_the_future_of_each_query():
    mask = AttentionMask(t_q=3, start_pos=2)
    expected = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask.future, expected)
    assert not mask.sdpa_is_causal and torch.isinf(mask.sdpa_mask).sum() == 3
    assert AttentionMask(t_q=1, start_pos=7).sdpa_mask is None  # one new token sees every stored key


# --- the KV cache ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pos", ALL_POS)
def test_kv_cache_prefill_then_single_steps_equals_a_full_forward(make_tiny_model, pos, path):
    model = make_tiny_model(pos)
    config = model.config
    idx = random_ids(config)  # exactly block_size tokens
    prefix = 5
    with torch.no_grad(), on_path(model, path):
        full, _ = model(idx)
        cache = KVCache(config, batch_size=2)
        prefill, _ = model(idx[:, :prefix], cache=cache)
        steps = [model(idx[:, t : t + 1], cache=cache)[0] for t in range(prefix, config.block_size)]
    assert cache.length == config.block_size and cache.remaining == 0
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pos", ALL_POS)
def test_kv_cache_chunks_after_a_prefix_match_a_full_forward(make_tiny_model, pos, path):
    model = make_tiny_model(pos)
    config = model.config
    idx = random_ids(config)
    with torch.no_grad(), on_path(model, path):
        full, _ = model(idx)
        cache = KVCache(config, batch_size=2)
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in [(0, 4), (4, 9), (9, 10), (10, 16)]]
        cache.crop(9)  # forget the last 7 tokens and feed them again, last logits only
        last, _ = model(idx[:, 9:], cache=cache, last_only=True)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    assert last.shape == (2, 1, config.vocab_size)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos", ALL_POS)
def test_the_flat_decode_step_equals_a_full_forward_at_every_position(make_tiny_model, pos):
    model = make_tiny_model(pos)
    config = model.config
    idx = random_ids(config, batch=3)  # three different sequences decoded side by side
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(config, batch_size=3)
        plan = model.decode_plan()
        steps = [model.decode_next(idx[:, t : t + 1], cache, plan) for t in range(config.block_size)]
    assert cache.length == config.block_size
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", [{"activation": "gelu_tanh"}, {"tie_embeddings": False}])
def test_the_flat_decode_step_honours_the_activation_and_an_untied_head(make_tiny_model, variant):
    model = make_tiny_model("rope", **variant)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)  # large pre-activations, where tanh-GELU and exact GELU differ by ~1e-3
    config = model.config
    idx = random_ids(config, batch=2)
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(config, batch_size=2)
        steps = [model.decode_next(idx[:, t : t + 1], cache) for t in range(config.block_size)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=0)


def test_the_activation_field_chooses_exact_or_tanh_gelu(make_tiny_model):
    import torch.nn.functional as F

    x = torch.randn(3, 32) * 3
    exact, tanh = make_tiny_model(), make_tiny_model(activation="gelu_tanh")
    assert exact.config.activation == "gelu"  # the default
    for model, approximate in ((exact, "none"), (tanh, "tanh")):
        mlp = model.transformer.h[0].mlp
        expected = mlp.c_proj(F.gelu(mlp.c_fc(x), approximate=approximate))
        torch.testing.assert_close(mlp(x), expected, atol=0, rtol=0)
    gap = (F.gelu(x) - F.gelu(x, approximate="tanh")).abs().max()
    assert gap > 1e-4  # the two really differ, so a model built with the wrong one would be caught
    with pytest.raises(UserError, match="activation"):
        make_tiny_model(activation="relu")


def test_an_untied_head_has_its_own_matrix_and_a_tied_one_shares_wte(make_tiny_model):
    tied, untied = make_tiny_model(), make_tiny_model(tie_embeddings=False)
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    vocab, dim = untied.config.vocab_size, untied.config.dim
    assert untied.num_parameters() == tied.num_parameters() + vocab * dim


def test_the_flat_decode_step_takes_one_token_and_respects_the_block(tiny_model):
    cache = KVCache(tiny_model.config, batch_size=1)
    with pytest.raises(ValueError, match="exactly one token"):
        tiny_model.decode_next(torch.zeros(1, 2, dtype=torch.long), cache)
    cache.length = tiny_model.config.block_size
    with pytest.raises(UserError, match="block_size 16"):
        tiny_model.decode_next(torch.zeros(1, 1, dtype=torch.long), cache)


def test_textbook_weights_with_a_cache_cover_all_stored_keys(tiny_model):
    cache = KVCache(tiny_model.config, batch_size=1)
    idx = random_ids(tiny_model.config, batch=1, length=6)
    with torch.no_grad():
        tiny_model(idx[:, :5], cache=cache)
    _, seen = tiny_model.run_with_cache(idx[:, 5:], names=is_pattern, cache=cache)
    assert seen["blocks.0.attn.hook_pattern"].shape == (1, tiny_model.config.n_heads, 1, 6)
    assert cache.length == 6


def test_a_full_cache_refuses_more_tokens(tiny_model):
    cache = KVCache(tiny_model.config, batch_size=1)
    with torch.no_grad():
        tiny_model(random_ids(tiny_model.config, batch=1), cache=cache)
        with pytest.raises(UserError, match="block_size"):
            tiny_model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


# --- positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_positions_beyond_the_block_raise(make_tiny_model, pos):
    model = make_tiny_model(pos)
    too_long = torch.zeros(1, model.config.block_size + 1, dtype=torch.long)
    with pytest.raises(UserError, match="block_size 16"):
        model(too_long)
    x = torch.zeros(1, 8, model.config.dim)
    with pytest.raises(UserError):
        model.positions.add_to_embeddings(x, start_pos=9)  # positions 9..16, and 16 does not exist
    assert model.positions.add_to_embeddings(x, start_pos=8).shape == x.shape  # 8..15 is fine


def test_sinusoidal_table_follows_the_formula():
    table = sinusoidal_table(20, 8)
    p, i = 7, 2
    assert table[p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 8)), abs=1e-6)


def test_rope_score_depends_only_on_relative_distance(tiny_config):
    rope = build_positional_encoding(tiny_config("rope"))
    torch.manual_seed(0)
    head_dim = rope.head_dim
    # The same query and the same key vector at every position: any change in the score is position.
    q = torch.randn(head_dim).expand(1, 1, 16, head_dim)
    k = torch.randn(head_dim).expand(1, 1, 16, head_dim)
    q_rot, k_rot = rope.rotate_qk(q, k, start_pos=0)
    scores = (q_rot @ k_rot.transpose(-2, -1))[0, 0]  # [16, 16]
    for i in range(15):
        for j in range(15):
            assert scores[i + 1, j + 1].item() == pytest.approx(scores[i, j].item(), abs=1e-4)
    assert scores[5, 0].item() != pytest.approx(scores[5, 4].item(), abs=1e-3)  # distance does matter
    # With a cache offset, rotating positions 3.. gives the rows of a full rotation from 3 on.
    q_late, k_late = rope.rotate_qk(q[:, :, :4], k[:, :, :4], start_pos=3)
    torch.testing.assert_close(q_late, q_rot[:, :, 3:7])
    torch.testing.assert_close(k_late, k_rot[:, :, 3:7])


def test_alibi_slopes_for_4_and_6_heads():
    assert alibi_slopes(4).tolist() == [2**-2, 2**-4, 2**-6, 2**-8]
    assert alibi_slopes(8).tolist() == [2.0**-h for h in range(1, 9)]
    assert alibi_slopes(6).tolist() == [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]


def test_alibi_bias_is_minus_slope_times_distance(tiny_config):
    alibi = build_positional_encoding(tiny_config("alibi"))
    bias = alibi.score_bias(t_q=2, t_k=6, start_pos=4)  # queries at positions 4 and 5
    assert bias.shape == (4, 2, 6)
    assert bias[1, 0, 1].item() == pytest.approx(-(2**-4) * 3)  # head 1, query 4, key 1
    assert bias[0, 1, 5].item() == 0.0  # a token looking at itself pays nothing
    assert build_positional_encoding(tiny_config("learned")).score_bias(2, 6, 4) is None


# --- structure, init, optimizer ----------------------------------------------------------------


@pytest.mark.parametrize("pos", ALL_POS)
def test_structure_follows_gpt2_and_the_checkpoint_holds_only_parameters(make_tiny_model, pos):
    model = make_tiny_model(pos)
    assert model.lm_head.weight is model.transformer.wte.weight
    names = {name for name, _ in model.named_parameters()}
    for suffix in ["ln_1.weight", "attn.c_attn.weight", "attn.c_proj.weight", "ln_2.weight"]:
        assert f"transformer.h.1.{suffix}" in names
    for suffix in ["mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]:
        assert f"transformer.h.0.{suffix}" in names
    assert {"transformer.wte.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"} <= names
    assert ("transformer.wpe.weight" in names) == (pos == "learned")
    assert hasattr(model.transformer, "wpe") == (pos == "learned")
    # Tied: named_parameters lists the shared matrix once, the state dict under both names.
    assert set(model.state_dict()) == names | {"lm_head.weight"}


@pytest.mark.parametrize("pos", ALL_POS)
def test_loss_at_init_is_about_ln_vocab_size_and_every_parameter_gets_a_gradient(make_tiny_model, pos):
    model = make_tiny_model(pos).train()
    idx, targets = random_ids(model.config, batch=8, seed=2), random_ids(model.config, batch=8, seed=3)
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(model.config.vocab_size)) < 0.3
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_targets_of_minus_one_are_ignored(tiny_model):
    idx = random_ids(tiny_model.config, batch=1)
    targets = random_ids(tiny_model.config, batch=1, seed=4)
    masked = targets.clone()
    masked[:, 8:] = -1
    with torch.no_grad():
        logits, loss = tiny_model(idx, masked)
        expected = torch.nn.functional.cross_entropy(logits[0, :8], targets[0, :8])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_residual_projections_start_smaller_than_other_weights(tiny_model):
    block = tiny_model.transformer.h[0]
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(4), rel=0.15)
    assert torch.all(block.attn.c_attn.bias == 0)


def test_parameter_count_counts_the_tied_matrix_once(tiny_model):
    config = tiny_model.config
    d = config.dim  # c_attn 3d² + 3d, c_proj d² + d, c_fc 4d² + 4d, c_proj 4d² + d, two LayerNorms 4d
    per_block = 12 * d * d + 13 * d
    embeddings = config.vocab_size * config.dim + config.block_size * config.dim
    assert tiny_model.num_parameters() == config.n_layers * per_block + 2 * d + embeddings
    assert tiny_model.num_parameters(exclude_embeddings=True) == tiny_model.num_parameters() - embeddings


def test_dropout_is_active_in_training_only(make_tiny_model):
    model = make_tiny_model("learned", dropout=0.5)
    idx = random_ids(model.config, batch=1)
    with torch.no_grad():
        assert torch.equal(model(idx)[0], model(idx)[0])
        model.train()
        assert not torch.equal(model(idx)[0], model(idx)[0])


def test_positions_describe_themselves_and_only_additive_kinds_have_a_matrix(tiny_config):
    model = GPT(tiny_config("alibi"))
    assert "alibi" in model.positions.describe()
    assert model.positions.encoding_matrix(4) is None
    assert build_positional_encoding(tiny_config("sinusoidal")).encoding_matrix(4).shape == (4, 32)


def test_every_pos_choice_has_exactly_one_encoding_class():
    from minitx.model.positions import ENCODINGS

    assert sorted(ENCODINGS) == sorted(POSITIONAL_ENCODINGS)


@pytest.mark.parametrize("kind", ALL_POS)
def test_every_registered_kind_answers_every_question_itself(kind):
    from minitx.model.positions import ENCODINGS, PositionalEncoding

    encoding = ENCODINGS[kind]
    own = {name for klass in encoding.__mro__ if klass is not PositionalEncoding for name in vars(klass)}
    missing = [name for name in PositionalEncoding.REQUIRED_ANSWERS if name not in own]
    assert not missing, f"{encoding.__name__} must set {missing}"
    assert encoding.kind == kind
    assert encoding.view in PositionalEncoding.VIEWS
    assert encoding.hf_architecture is not None or encoding.hf_refusal, "a kind with no export target says why"
    assert encoding.extrapolates or encoding.stretch_refusal, "a kind that cannot stretch says why"
    assert encoding.view != "similarity" or encoding.view_meaning, "a similarity view says what its matrix holds"
    assert encoding.has_signal or encoding.view_notes, "a kind without a signal says what the model has instead"
    assert not encoding.trained or encoding.has_table, "a trained table is a table"


def test_a_kind_that_forgets_an_answer_is_caught():
    from minitx.model.positions import PositionalEncoding

    class Forgetful(PositionalEncoding):
        kind = "forgetful"
        view = "nothing"

    own = set(vars(Forgetful))
    assert {"extrapolates", "hf_architecture"} <= set(PositionalEncoding.REQUIRED_ANSWERS) - own
    with pytest.raises(AttributeError):
        Forgetful.extrapolates  # noqa: B018 - no default to fall back on


@pytest.mark.parametrize(("kind", "dim", "heads", "message"), [("rope", 6, 2, "even head size"),
                                                                ("sinusoidal", 9, 3, "even dim")])
def test_a_kind_refuses_a_shape_it_cannot_take_before_any_work(kind, dim, heads, message):
    from minitx.config import ModelConfig
    from minitx.errors import UserError
    from minitx.model import check_model_config

    config = ModelConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=heads, dim=dim, pos=kind)
    with pytest.raises(UserError, match=message):
        check_model_config(config)
    with pytest.raises(UserError, match=message):
        GPT(config)
