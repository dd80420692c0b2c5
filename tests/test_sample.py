"""Tests for decoding: KV cache == full forward, sliding window, sampling filters, stop strings, streaming."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import random_model
from minitx.commands.generate import run_generate
from minitx.config import POSITIONAL_ENCODINGS, ModelConfig, TrainConfig
from minitx.errors import UserError
from minitx.generation.sampling import (
    SamplingConfig,
    SlidingWindowDecoder,
    filter_logits,
    generate_ids,
    generate_text,
    sample_next,
    slide_window,
)
from minitx.generation.streaming import REPLACEMENT_CHAR, StopAndStream, find_stop, stable_length
from minitx.model import GPT
from minitx.text.tokenizer import DOC_TOKEN, Tokenizer

BLOCK = 16
STORY_TEXT = "<|doc|>the cat sat on the mat.\n<|doc|>a dog ran to the sun.\n" * 3


@pytest.fixture(scope="module")
def char_tokenizer() -> Tokenizer:
    return Tokenizer.train_char(STORY_TEXT)


@pytest.fixture(scope="module")
def emoji_bpe() -> Tokenizer:
    """Byte-level BPE that has learned a few merges; emoji mostly stay as 4 separate byte tokens."""
    text = "hello world, hello there 🙂 nice 🎉 day. " * 20 + "é à ü 中文 "
    return Tokenizer.train_bpe([text], vocab_size=300, show_progress=False)


def reference_window_start(start: int, n_tokens: int, block_size: int, shift: int) -> int:
    """The window policy restated: past block_size, keep block_size - shift old tokens + the new one."""
    return start if n_tokens - start <= block_size else n_tokens - (block_size - shift + 1)


# --------------------------------------------------------------------------------------------
# the KV cache and the sliding window


@pytest.mark.parametrize("shift", [None, 1])
@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_cached_logits_equal_a_full_forward_over_the_same_window(pos: str, shift: int | None) -> None:
    model = random_model(pos)
    prompt_len, new_tokens = 5, 40  # 45 tokens through a 16-token block: the window slides several times
    stream = torch.randint(0, 40, (1, prompt_len + new_tokens), generator=torch.Generator().manual_seed(1))
    decoder = SlidingWindowDecoder(model, stream[:, :prompt_len], new_tokens, window_shift=shift)
    shift_used = shift or BLOCK // 4
    start = 0
    with torch.inference_mode():
        for n in range(prompt_len, prompt_len + new_tokens):
            if n > prompt_len:
                decoder.append(stream[:, n - 1])
            cached = decoder.next_logits()
            start = reference_window_start(start, n, BLOCK, shift_used)
            full, _ = model(stream[:, start:n])  # no cache: every position recomputed
            assert torch.equal(decoder.context, stream[:, start:n])
            torch.testing.assert_close(cached, full[:, -1], atol=1e-5, rtol=1e-5)
    assert decoder.slides >= 2


@pytest.mark.parametrize("pos", POSITIONAL_ENCODINGS)
def test_greedy_generation_equals_the_naive_full_forward_loop(pos: str) -> None:
    model = random_model(pos, seed=3)
    prompt = [3, 1, 4, 1, 5, 9, 2]
    tokens, start = list(prompt), 0
    with torch.inference_mode():
        for _ in range(40):
            start = reference_window_start(start, len(tokens), BLOCK, BLOCK // 4)
            logits, _ = model(torch.tensor([tokens[start:]]))
            tokens.append(int(logits[0, -1].argmax()))
    generated = generate_ids(model, prompt, SamplingConfig(max_new_tokens=40, temperature=0))
    assert generated == [tokens]


def test_window_shift_one_keeps_exactly_the_last_block_size_tokens() -> None:
    model = random_model()
    decoder = SlidingWindowDecoder(model, torch.arange(BLOCK).unsqueeze(0), 10, window_shift=1)
    with torch.inference_mode():
        decoder.next_logits()
        for step in range(10):
            decoder.append(torch.tensor([step]))
            decoder.next_logits()
            assert decoder.context.shape[1] == BLOCK
            assert torch.equal(decoder.context, decoder.tokens[:, decoder.length - BLOCK : decoder.length])
    assert decoder.slides == 10


def test_slide_window_examples_from_its_docstring() -> None:
    assert slide_window(0, 8, 8, 2) == 0
    assert slide_window(0, 9, 8, 2) == 2
    assert slide_window(0, 9, 8, 1) == 1
    assert slide_window(0, 20, 8, 2) == 13
    assert slide_window(2, 10, 8, 2) == 2  # 8 tokens: fits again after a slide


def test_a_prompt_longer_than_the_block_is_cut_to_the_window() -> None:
    model = random_model(block_size=8)
    out = generate_ids(model, list(range(30)), SamplingConfig(max_new_tokens=5, temperature=0))
    assert out[0][:30] == list(range(30)) and len(out[0]) == 35


# --------------------------------------------------------------------------------------------
# randomness


def test_the_same_seed_gives_the_same_samples_and_another_seed_others() -> None:
    model = random_model()
    cfg = SamplingConfig(max_new_tokens=30, temperature=1.0, seed=7, num_samples=3)
    first = generate_ids(model, [1, 2], cfg)
    assert generate_ids(model, [1, 2], cfg) == first
    other = generate_ids(model, [1, 2], replace(cfg, seed=8))
    assert other != first
    assert len(first) == 3 and all(row[:2] == [1, 2] and len(row) == 32 for row in first)
    assert len({tuple(row) for row in first}) == 3  # the samples of one batch are independent draws


def test_sampling_never_touches_the_global_rng() -> None:
    model = random_model()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    generate_ids(model, [1], SamplingConfig(max_new_tokens=5, temperature=1.0, seed=1))
    generate_ids(model, [1], SamplingConfig(max_new_tokens=5, temperature=1.0, seed=None))
    assert torch.equal(torch.get_rng_state(), state)


def test_generation_runs_in_eval_mode_and_restores_training_mode() -> None:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=40, block_size=BLOCK, n_layers=1, n_heads=2, dim=16, dropout=0.5)
    model = GPT(config).train()
    cfg = SamplingConfig(max_new_tokens=10, temperature=0)
    assert generate_ids(model, [1, 2], cfg) == generate_ids(model, [1, 2], cfg)  # no dropout noise
    assert model.training


# --------------------------------------------------------------------------------------------
# temperature, top-k, top-p

PROBS = torch.tensor([0.05, 0.5, 0.15, 0.3])  # tokens by likelihood: 1, 3, 2, 0


def draws(top_k: int | None = None, top_p: float | None = None, n: int = 4000) -> set[int]:
    logits = PROBS.log().expand(n, -1)
    ids = sample_next(logits, 1.0, top_k, top_p, torch.Generator().manual_seed(0))
    return set(ids.tolist())


@pytest.mark.parametrize(
    ("top_k", "top_p", "support"),
    [
        (None, None, {0, 1, 2, 3}),
        (1, None, {1}),
        (2, None, {1, 3}),
        (3, None, {1, 2, 3}),
        (None, 0.7, {1, 3}),  # 0.5 < 0.7 <= 0.5 + 0.3
        (None, 0.9, {1, 2, 3}),  # 0.8 < 0.9 <= 0.95
        (None, 0.4, {1}),
        (None, 1e-6, {1}),  # a tiny p still keeps the most likely token
        (3, 0.7, {1, 3}),
    ],
)
def test_top_k_and_top_p_sample_exactly_their_set(top_k, top_p, support) -> None:
    assert draws(top_k, top_p) == support


def test_sampled_frequencies_match_the_probabilities() -> None:
    ids = sample_next(PROBS.log().expand(20000, -1), 1.0, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(ids, minlength=4).float() / len(ids)
    torch.testing.assert_close(frequencies, PROBS, atol=0.015, rtol=0)  # ~4 standard deviations


def test_top_p_of_one_keeps_every_token_with_nonzero_probability() -> None:
    probs = torch.tensor([0.5, 0.5 - 2e-7, 1e-7, 1e-7, 0.0])
    kept = filter_logits(probs.log(), top_p=1.0)
    assert torch.isfinite(kept).tolist() == [True, True, True, True, False]


def test_top_k_keeps_ties_with_the_kth_score_and_leaves_its_input_alone() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isfinite(kept).tolist() == [[False, True, True, True, False]]
    assert torch.equal(logits, torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]]))


def test_temperature_zero_is_argmax_and_low_temperature_concentrates() -> None:
    logits = PROBS.log().expand(500, -1)
    assert set(sample_next(logits, 0.0).tolist()) == {1}
    cold = sample_next(logits, 0.2, generator=torch.Generator().manual_seed(0))
    hot = sample_next(logits, 5.0, generator=torch.Generator().manual_seed(0))
    assert (cold == 1).float().mean() > 0.9 > (hot == 1).float().mean()


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"temperature": -0.1}, "--temperature must be 0 (greedy) or a positive number, got -0.1"),
        ({"temperature": float("nan")}, "--temperature must be 0 (greedy) or a positive number, got nan"),
        ({"top_k": 0}, "--top-k must be at least 1 (or left out), got 0"),
        ({"top_p": 0.0}, "--top-p must be in (0, 1] (or left out), got 0.0"),
        ({"top_p": 1.5}, "--top-p must be in (0, 1] (or left out), got 1.5"),
        ({"num_samples": 0}, "--num-samples must be at least 1, got 0"),
        ({"max_new_tokens": 0}, "--max-new-tokens must be at least 1, got 0"),
        ({"stop": [""]}, "--stop '' would end every sample before it starts"),
    ],
)
def test_impossible_sampling_settings_are_user_errors(bad: dict, says: str) -> None:
    with pytest.raises(UserError) as excinfo:
        SamplingConfig(**bad)
    assert str(excinfo.value).startswith(says), str(excinfo.value)


# --------------------------------------------------------------------------------------------
# stop strings and streaming


def test_stop_and_stream_holds_back_what_may_become_a_stop_string() -> None:
    pieces = ["Once", " upon", "\n", "\n", "never seen"]
    shown: list[str] = []
    follower = StopAndStream(lambda ids: "".join(pieces[i] for i in ids), ["\n\n"], shown.append)
    assert [follower.add(i) for i in range(4)] == [False, False, False, True]
    assert shown == ["Once", " upon"] and follower.close() == "Once upon"


def test_stable_length_and_find_stop_examples() -> None:
    assert stable_length("Hi\n", ["\n\n"]) == 2
    assert stable_length("ok" + REPLACEMENT_CHAR, []) == 2
    assert stable_length("abc", ["bcd", "cx"]) == 1  # "bc" may grow into "bcd"
    assert find_stop("ab.cd", [".", "c"]) == 2 and find_stop("abc", ["x"]) is None


def test_stream_never_shows_half_an_emoji_and_adds_up_to_the_decoded_text(emoji_bpe: Tokenizer) -> None:
    text = "hi 🦀 ok 中 🙂"
    ids = emoji_bpe.encode(text)
    assert any(REPLACEMENT_CHAR in emoji_bpe.decode(ids[:n]) for n in range(len(ids)))  # splits do happen
    shown: list[str] = []
    follower = StopAndStream(emoji_bpe.decode, [], shown.append)
    for i in ids:
        follower.add(i)
    assert not any(REPLACEMENT_CHAR in piece for piece in shown)
    assert "".join(shown) == text and follower.close() == text


def test_streamed_pieces_equal_the_final_text_of_a_random_model(emoji_bpe: Tokenizer) -> None:
    model = random_model(vocab_size=emoji_bpe.vocab_size)  # random bytes: many broken characters
    for stop in ([], ["o"]):
        shown: list[str] = []
        cfg = SamplingConfig(max_new_tokens=60, temperature=1.5, seed=5, stop=stop)
        collect = lambda _, piece, out=shown: out.append(piece)  # noqa: E731
        samples = generate_text(model, emoji_bpe, "hello", cfg, on_text=collect)
        assert "".join(shown) == samples.texts[0]
        if not stop:
            assert samples.texts[0] == emoji_bpe.decode(samples.token_ids[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(min_value=0, max_value=280), max_size=60), stop=st.sampled_from([[], ["o"], ["\n\n"]]))
def test_following_token_by_token_gives_the_text_of_decoding_everything_at_once(emoji_bpe, ids, stop) -> None:
    assert emoji_bpe.vocab_size > 280  # every drawn id is a token
    follower = StopAndStream(emoji_bpe.decode, stop)
    for i in ids:
        if follower.add(i):
            break
    whole = emoji_bpe.decode(follower.ids)
    cut = find_stop(whole, stop)
    assert follower.close() == (whole if cut is None else whole[:cut])


def test_each_token_decodes_only_what_follows_the_last_whole_character() -> None:
    decoded_lengths: list[int] = []

    def decode(ids: list[int]) -> str:
        decoded_lengths.append(len(ids))
        return "".join("ab"[i] for i in ids)

    follower = StopAndStream(decode, ["zz"])
    for _ in range(500):
        follower.add(0)
    assert max(decoded_lengths) == 1 and follower.close() == "a" * 500


def test_stop_strings_cut_each_sample_at_its_first_stop(char_tokenizer: Tokenizer) -> None:
    model = random_model(vocab_size=char_tokenizer.vocab_size)
    base = dict(max_new_tokens=50, temperature=1.0, seed=11, num_samples=3)
    free = generate_text(model, char_tokenizer, "the", SamplingConfig(**base))
    longest = max(range(3), key=lambda i: len(free.texts[i]))
    middle = len(free.texts[longest]) // 2
    assert middle >= 2, "samples too short to cut; pick another seed"
    stop = free.texts[longest][middle : middle + 2]
    cut = generate_text(model, char_tokenizer, "the", SamplingConfig(**base, stop=[stop]))
    for full, short in zip(free.texts, cut.texts, strict=True):
        assert short == (full[: full.find(stop)] if stop in full else full)
    assert len(cut.texts[longest]) <= middle and stop not in cut.texts[longest]


def test_an_empty_prompt_starts_at_doc_and_each_story_ends_at_the_next(char_tokenizer: Tokenizer) -> None:
    model = random_model(vocab_size=char_tokenizer.vocab_size)
    doc = char_tokenizer.token_id(DOC_TOKEN)
    cfg = SamplingConfig(max_new_tokens=80, temperature=2.0, seed=2, num_samples=4)
    samples = generate_text(model, char_tokenizer, "", cfg)
    free = generate_ids(model, [doc], cfg)  # same seed, same batch: same draws, without stopping
    ended = [ids for ids in samples.token_ids if ids and ids[-1] == doc]
    assert ended, "no sample wrote <|doc|>; pick another seed"
    for ids, text, row in zip(samples.token_ids, samples.texts, free, strict=True):
        assert DOC_TOKEN not in text and row[1 : 1 + len(ids)] == ids
        assert ids[-1] == doc or len(ids) == 80


# --------------------------------------------------------------------------------------------
# the CLI glue


@pytest.fixture
def run_dir(tmp_path, char_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch):
    from minitx import rundir

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # no idle-core probe, no change
    model = random_model(vocab_size=char_tokenizer.vocab_size)
    rundir.save_config(tmp_path, model.config, TrainConfig())
    rundir.save_weights(tmp_path, model)
    char_tokenizer.save(tmp_path / rundir.TOKENIZER)
    return tmp_path


def generate_args(**overrides) -> dict:
    args = dict(prompt="the cat", max_new_tokens=12, temperature=0.8, top_k=None, top_p=None, seed=3,
                num_samples=1, stop=[], stream=True, device="cpu", quiet=False)
    return {**args, **overrides}


def test_generate_prints_prompt_and_text_then_stats_on_stderr(run_dir, capsys: pytest.CaptureFixture) -> None:
    run_generate(run_dir, **generate_args())
    streamed = capsys.readouterr()
    assert streamed.out.startswith("the cat") and "tokens/s" in streamed.err and "seed 3" in streamed.err
    run_generate(run_dir, **generate_args(stream=False, quiet=True))
    printed = capsys.readouterr()
    assert printed.out == streamed.out and printed.err == ""


def test_generate_with_int8_weights_says_so_and_an_unknown_kind_is_refused(run_dir, capsys) -> None:
    run_generate(run_dir, **generate_args(quantize="int8"))
    assert "int8 weights" in capsys.readouterr().err
    with pytest.raises(UserError, match="--quantize must be one of none, int8"):
        run_generate(run_dir, **generate_args(quantize="int4"))
    assert capsys.readouterr().out == ""  # refused before anything was printed


def test_several_samples_are_printed_under_headings(run_dir, capsys: pytest.CaptureFixture) -> None:
    run_generate(run_dir, **generate_args(num_samples=2, quiet=True))
    out = capsys.readouterr().out
    assert out.startswith("── sample 1 ──\nthe cat") and "\n── sample 2 ──\nthe cat" in out


def test_a_prompt_the_char_tokenizer_cannot_encode_is_a_user_error(run_dir) -> None:
    with pytest.raises(UserError, match="not in this char tokenizer"):
        run_generate(run_dir, **generate_args(prompt="the 🦀"))
