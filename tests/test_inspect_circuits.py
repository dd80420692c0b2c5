"""Tests for induction heads, head ablation and roles over data, on a model whose circuit is wired by hand.

The hand-wired model has 2 layers of 2 heads, learned positions and no MLPs (all their weights 0);
its vocabulary is 8 ordinary tokens and a document marker (id 8) that starts every window.
Its residual stream is split into three subspaces, each feature written as e_2i - e_2i+1 (so every
vector has mean 0 and LayerNorm only rescales it):

    TOKEN     which token sits here              (token embedding)
    POSITION  where it sits (one feature per position)   (learned position table)
    PREVIOUS  which token sat just before            (written by layer 0 head 0)

layer 0 head 0  previous-token head: query at p matches key at p - 1 by position; copies TOKEN into PREVIOUS
layer 1 head 0  induction head: query TOKEN = a matches keys whose PREVIOUS = a; copies their TOKEN, strongly,
                into TOKEN, where the tied output layer reads it as "predict this token". A query with no
                match falls back on the document marker (a "sink" at position 0), whose value is 0.
layer 0 head 1, layer 1 head 1   unused: every weight 0, so they output exactly 0
"""

from __future__ import annotations

import json

import pytest
import torch

from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.inspect.ablation import ablate_heads, head_means, head_replaced
from minitx.inspect.capture import attention_weights
from minitx.inspect.induction import INDUCTION_THRESHOLD, measure_induction, repeat_scores, repeated_random_tokens
from minitx.inspect.over_data import evenly_spaced_windows, roles_over_windows, spread_of
from minitx.inspect.roles import head_scores
from minitx.model import GPT

VOCAB = 9
DOC = 8  # starts every window, as <|doc|> does, so no position 0 is mistaken for a repeat
ORDINARY = range(8)
LENGTH = 8  # random tokens per copy: a permutation of the ordinary tokens
BLOCK = 1 + 2 * LENGTH  # the marker, then exactly two copies
SHARP = 30.0  # how peaked the wired attention is
COPY_GAIN = 4.0  # how much louder the induction head's copy is than the current token


def features(n: int, start: int, dim: int) -> torch.Tensor:
    """[n, dim]: feature i is e_(start+2i) - e_(start+2i+1)."""
    vectors = torch.zeros(n, dim)
    for i in range(n):
        vectors[i, start + 2 * i] = 1.0
        vectors[i, start + 2 * i + 1] = -1.0
    return vectors


def hand_wired_model() -> GPT:
    token_at, position_at, previous_at = 0, 2 * VOCAB, 2 * VOCAB + 2 * BLOCK
    dim = previous_at + 2 * VOCAB  # 18 + 34 + 18 = 70
    config = ModelConfig(vocab_size=VOCAB, block_size=BLOCK, n_layers=2, n_heads=2, dim=dim, pos="learned",
                         dropout=0.0, bias=True)
    model = GPT(config).eval()
    head_dim = config.head_dim  # 35: room for a one-hot of the 17 positions
    token, position = features(VOCAB, token_at, dim), features(BLOCK, position_at, dim)  # [V, C], [T, C]
    previous = features(VOCAB, previous_at, dim)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for block in model.transformer.h:
            block.ln_1.weight.fill_(1.0)
            block.ln_2.weight.fill_(1.0)
        model.transformer.ln_f.weight.fill_(1.0)
        model.transformer.wte.weight.copy_(token)
        model.transformer.wpe.weight.copy_(position)
        # LayerNorm turns a stream of norm √(2·features) into one of norm √dim: map features back to unit size
        scale = 1.0 / (dim / 4) ** 0.5

        def qkv(layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            weight = model.transformer.h[layer].attn.c_attn.weight  # [3C, C]: rows q, k, v of head 0 first
            return weight[:head_dim], weight[dim : dim + head_dim], weight[2 * dim : 2 * dim + head_dim]

        # layer 0 head 0: q_p = SHARP·u_(p-1), k_p' = u_p' (u: the position one-hot in head space)
        q, k, v = qkv(0)
        for p in range(1, BLOCK):
            q[p - 1] = SHARP * position[p] * scale
        for p in range(BLOCK):
            k[p] = position[p] * scale
        for a in range(VOCAB):
            v[a] = token[a] * scale  # the head's output slot a: "the token read was a"
        out = model.transformer.h[0].attn.c_proj.weight  # [C, C]: column j reads head slot j
        for a in range(VOCAB):
            out[:, a] = previous[a]
        # layer 1 head 0: q = SHARP·TOKEN, k = PREVIOUS, v = TOKEN, written back into TOKEN loudly;
        # the last head dimension is the sink: every ordinary query half-matches the key at position 0
        q, k, v = qkv(1)
        for a in range(VOCAB):
            q[a] = SHARP * token[a] * scale
            k[a] = previous[a] * scale
        for a in ORDINARY:
            v[a] = token[a] * scale
            q[head_dim - 1] += 0.5 * SHARP * token[a] * scale
        k[head_dim - 1] = position[0] * scale
        out = model.transformer.h[1].attn.c_proj.weight
        for a in range(VOCAB):
            out[:, a] = COPY_GAIN * token[a]
    return model


@pytest.fixture(scope="module")
def wired() -> GPT:
    return hand_wired_model()


def repeated_windows(n: int = 6, seed: int = 0) -> torch.Tensor:
    return repeated_random_tokens(ORDINARY, LENGTH, 2, n, seed=seed, first_id=DOC)  # [n, 17]


def loss_on(model: GPT, ids: torch.Tensor) -> float:
    from minitx.evaluation.scoring import score_ids

    return score_ids(model, ids, len(ids)).loss


def flat(windows: torch.Tensor) -> torch.Tensor:
    """Windows laid end to end plus one token, so `score_ids` cuts exactly these windows back out."""
    return torch.cat([windows.flatten(), windows[0, :1]])


# --------------------------------------------------------------------------------------------
# the circuit works as wired


def test_the_hand_wired_heads_attend_where_they_were_wired_to(wired) -> None:
    weights = attention_weights(wired, repeated_windows(1))[0]  # [L, H, T, T]
    previous = torch.arange(1, BLOCK)
    assert weights[0, 0, previous, previous - 1].min() > 0.9  # layer 0 head 0 reads the previous token
    second_copy = torch.arange(1 + LENGTH, BLOCK)
    assert weights[1, 0, second_copy, second_copy - LENGTH + 1].min() > 0.9  # after the earlier copy


def test_the_model_predicts_the_second_copy_and_not_the_first(wired) -> None:
    report = measure_induction(wired, ORDINARY, length=LENGTH, sequences=8, first_id=DOC)
    first, second = report.copy_losses
    assert first > 1.5 and second < 0.1  # random tokens are unknowable; their repeat is known


# --------------------------------------------------------------------------------------------
# induction


def test_the_induction_head_is_named_induction_and_the_wrong_heads_are_not(wired) -> None:
    report = measure_induction(wired, ORDINARY, length=LENGTH, sequences=8, first_id=DOC)
    assert [(h.layer, h.head) for h in report.induction_heads] == [(1, 0)]
    by_place = {(h.layer, h.head): h for h in report.heads}
    assert by_place[1, 0].induction > 0.9
    assert by_place[0, 0].previous_token > 0.9 and by_place[0, 0].induction < INDUCTION_THRESHOLD / 4
    for unused in [(0, 1), (1, 1)]:  # uniform attention: about 1/(position + 1) on the right key
        assert by_place[unused].induction < INDUCTION_THRESHOLD / 2


def test_a_duplicate_token_head_scores_on_duplicates_not_on_induction() -> None:
    n = 1 + 2 * 4
    weights = torch.zeros(n, n)
    weights[:, 0] = 1.0
    for p in range(5, n):  # position p repeats p - 4: read that earlier copy itself
        weights[p] = 0.0
        weights[p, p - 4] = 1.0
    scores = repeat_scores(weights[None, None, None], length=4, repeats=2, offset=1)
    assert scores["duplicate token"].item() == 1.0 and scores["induction"].item() == 0.0


def test_three_copies_report_a_loss_per_copy_and_too_many_is_a_user_error(wired) -> None:
    model = wired
    with pytest.raises(UserError, match="need 25 positions but the block holds 17; use --length 5"):
        measure_induction(model, ORDINARY, length=LENGTH, repeats=3, first_id=DOC)
    report = measure_induction(model, ORDINARY, length=5, repeats=3, sequences=4, first_id=DOC)
    assert len(report.copy_losses) == 3 and report.copy_losses[2] < report.copy_losses[0]


# --------------------------------------------------------------------------------------------
# ablation


def test_zeroing_a_head_the_circuit_uses_raises_the_loss_and_an_unused_head_does_not(wired) -> None:
    ids = flat(repeated_windows(6))
    report = ablate_heads(wired, ids)
    rise = {(h.layer, h.head): h for h in report.heads}
    assert report.base_loss == pytest.approx(loss_on(wired, ids))
    assert rise[1, 0].zero_rise > 0.5 and rise[0, 0].zero_rise > 0.5  # both halves of the circuit matter
    assert rise[1, 0].mean_rise > 0.5 and rise[0, 0].mean_rise > 0.5
    for unused in [(0, 1), (1, 1)]:
        assert abs(rise[unused].zero_rise) < 1e-6 and abs(rise[unused].mean_rise) < 1e-6
    assert [(h.layer, h.head) for h in report.most_needed(2)] in ([(0, 0), (1, 0)], [(1, 0), (0, 0)])


def test_head_replaced_sets_exactly_one_heads_slice_and_removes_its_hook(wired) -> None:
    ids = repeated_windows(2)
    seen = []
    c_proj = wired.transformer.h[1].attn.c_proj
    handle = c_proj.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].clone()))  # after pre-hooks
    try:
        wired(ids)
        intact = seen.pop()
        with head_replaced(wired, 1, 0, torch.full((wired.config.head_dim,), 7.0)):
            wired(ids)
    finally:
        handle.remove()
    replaced = seen.pop()
    hd = wired.config.head_dim
    assert torch.all(replaced[..., :hd] == 7.0) and torch.equal(replaced[..., hd:], intact[..., hd:])
    assert not any(point.active for point in wired.hook_points().values())
    means = head_means(wired, flat(ids))
    assert means.shape == (2, 2, hd) and torch.all(means[:, 1] == 0)  # the unused heads output 0


# --------------------------------------------------------------------------------------------
# roles over data


def test_over_scores_equal_the_mean_of_single_window_scores(wired) -> None:
    windows = torch.cat([repeated_windows(3, seed=1), torch.randint(VOCAB, (2, BLOCK))])
    spreads = roles_over_windows(wired, windows)
    for spread in spreads:
        singles = []
        for window in windows:
            weights = attention_weights(wired, window[None])[0, spread.layer, spread.head]  # [T, T]
            singles.append(head_scores(weights, window.tolist()))
        for role, mean in spread.mean.items():
            values = [scores[role] for scores in singles if role in scores]
            assert mean == pytest.approx(sum(values) / len(values), abs=1e-9)
            assert spread.windows[role] == len(values)
    by_place = {(s.layer, s.head): s for s in spreads}
    assert by_place[0, 0].role == "previous token" and by_place[0, 0].spread["previous token"] < 0.05


def test_a_role_that_holds_on_one_window_only_names_no_head() -> None:
    exact = torch.zeros(4, 4)
    exact[0, 0] = 1.0
    exact[torch.arange(1, 4), torch.arange(0, 3)] = 1.0  # previous token, exactly
    uniform = torch.ones(4, 4).tril()
    uniform = uniform / uniform.sum(dim=-1, keepdim=True)
    one_of_four = spread_of([[exact]] + [[uniform]] * 3, 1, 1, ids=None)[0]
    assert one_of_four.holds["previous token"] == 0.25 and one_of_four.role != "previous token"
    assert spread_of([[exact]] * 4, 1, 1, ids=None)[0].role == "previous token"


def test_windows_are_evenly_spread_and_too_many_is_a_user_error() -> None:
    windows = evenly_spaced_windows(torch.arange(100), 3, 16)
    assert windows[:, 0].tolist() == [0, 33, 66] and windows.shape == (3, 16)
    with pytest.raises(UserError, match="holds 6 windows of 16 tokens; ask for at most 6"):
        evenly_spaced_windows(torch.arange(100), 7, 16)


def test_the_json_of_a_scored_model_round_trips(wired) -> None:
    report = measure_induction(wired, ORDINARY, length=LENGTH, sequences=2, first_id=DOC)
    assert json.loads(json.dumps([h.__dict__ for h in report.heads]))[2]["induction"] > 0.9
