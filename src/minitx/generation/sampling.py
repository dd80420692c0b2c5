"""Autoregressive decoding: turning a next-token predictor into a writer (the long story: docs/generation.md).

    logits = model(context)[-1] / temperature           # [V]; temperature 0: argmax(logits), "greedy"
    logits = filter_logits(logits, top_k, top_p)        # -inf outside the tokens we allow
    next = sample(softmax(logits)); context += [next]   # ... and repeat

top-k keeps the k highest-scoring tokens, top-p the smallest set whose probabilities reach p. A KV
cache (`minitx.model.KVCache`) keeps every earlier token's keys and values, so after the prompt
("prefill") each step feeds one token. Past `block_size` a sliding window keeps the newest
`block_size - shift` tokens and prefills the cache again, so every prediction equals a full forward
pass over its window, whatever the positional encoding. A sample ends just before its first stop
string; with an empty prompt it starts after `<|doc|>` and ends at the next one. Streaming and stop
strings are followed token by token in `minitx.generation.streaming`.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minitx.config import DEFAULT_TEMPERATURE
from minitx.errors import UserError
from minitx.generation.streaming import StopAndStream
from minitx.model import GPT, KVCache

if TYPE_CHECKING:
    from minitx.text.tokenizer import Tokenizer



@dataclass
class SamplingConfig:
    """How to pick each next token.

    Attributes:
        max_new_tokens: tokens to generate per sample (at most: a stop string can end a sample early).
        temperature: divides the logits before the softmax; 0 means greedy (always the most likely token).
        top_k: if set, sample only among the k most likely tokens.
        top_p: if set, sample only among the smallest set of most likely tokens holding ≥ top_p of the mass.
        seed: seeds this generation's own random generator (None: a fresh random seed).
        num_samples: independent samples, computed together as one batch.
        stop: a sample ends just before the first of these strings it writes.
    """

    max_new_tokens: int = 200
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_samples: int = 1
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a UserError naming the first impossible setting."""
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UserError(f"--temperature must be 0 (greedy) or a positive number, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"--top-k must be at least 1 (or left out), got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1] (or left out), got {self.top_p}")
        if self.num_samples < 1:
            raise UserError(f"--num-samples must be at least 1, got {self.num_samples}")
        if any(s == "" for s in self.stop):
            raise UserError("--stop '' would end every sample before it starts; give a non-empty string")


# ---------------------------------------------------------------------------------------------
# choosing the next token


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set the logits of tokens outside the top-k and top-p sets to -inf, row by row ([..., V]).

    Example: one row whose softmax is [0.5, 0.3, 0.15, 0.05]:
        top_k=2       keeps tokens 0, 1
        top_p=0.7     keeps tokens 0, 1 (0.5 is short of 0.7; 0.5 + 0.3 is enough)
        top_p=0.01    keeps token 0 (the most likely token always stays)
        top_p=1.0     keeps all four
    Tokens tied with the k-th score are all kept. top-p is applied after top-k, on what remains.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth_best = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # [..., 1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None and top_p < 1.0:  # p = 1 keeps everything (and dodges rounding in cumsum)
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the strictly better tokens
        drop_sorted = mass_before >= top_p  # the set was already big enough without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back from sorted order to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: Tensor,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row: logits [B, V] -> ids [B]. Temperature 0 is argmax (no randomness).

    Drawing from probs uses the exponential race: every token i starts running at once and arrives
    after a random time E_i / p_i, with E_i ~ Exponential(1). The first arrival is token i with
    probability exactly p_i / Σ p -- the same distribution as `torch.multinomial(probs, 1)`, but in
    three element-wise steps instead of a cumulative sum and a search, which matters when a step
    costs a fraction of a millisecond. A token with p_i = 0 never arrives.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()  # softmax and sampling in fp32 even for a bf16 model
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None or top_p is not None:
        logits = filter_logits(logits, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)  # [B, V]
    race = torch.empty_like(probs).exponential_(generator=generator)  # E_i, [B, V]
    race.clamp_min_(torch.finfo(race.dtype).tiny)  # E_i = 0 would make 0/0 for a filtered-out token
    return (probs / race).argmax(dim=-1)  # smallest E_i / p_i == largest p_i / E_i, [B]


# ---------------------------------------------------------------------------------------------
# feeding the model: KV cache and sliding window


def default_window_shift(block_size: int) -> int:
    """How many tokens the window moves when it slides: a quarter of the block (at least 1)."""
    return max(1, block_size // 4)


def slide_window(start: int, end: int, block_size: int, shift: int) -> int:
    """Where the context window begins once tokens[start:end] has been made to fit the model.

    The window stays put while it holds at most block_size tokens. Past that, the oldest tokens go:
    block_size - shift of the previous tokens remain, plus the newest one.

    Example with block_size=8, shift=2:
        slide_window(0, 8, 8, 2) == 0     # 8 tokens fit
        slide_window(0, 9, 8, 2) == 2     # 9 do not: keep tokens 2..8, that is 7 = 8 - 2 + 1
        slide_window(0, 9, 8, 1) == 1     # shift 1: the last block_size tokens
        slide_window(0, 20, 8, 2) == 13   # a long prompt: its last 7 tokens
    """
    if end - start <= block_size:
        return start
    return end - (block_size - shift + 1)


class SlidingWindowDecoder:
    """Feeds a batch of growing token sequences to a model through a KV cache.

    `tokens` [B, capacity] holds every token (prompt and generated); the model sees
    tokens[:, start:length], of which the first `cache.length` are already in the cache.
    `append` adds one token per sequence; `next_logits` feeds what the cache lacks and returns the
    logits for the token after the last one -- sliding the window (see the module docstring) first
    if the context has outgrown the block.

    Example:
        >>> from minitx.config import ModelConfig
        >>> from minitx.model import build_model
        >>> model = build_model(ModelConfig(vocab_size=50, block_size=8, n_layers=1, n_heads=2, dim=16)).eval()
        >>> decoder = SlidingWindowDecoder(model, torch.tensor([[1, 2, 3]]), max_new_tokens=10)  # [B, P]
        >>> logits = decoder.next_logits()      # prefill: feeds the prompt, [B, V]
        >>> decoder.append(logits.argmax(-1))   # one token per sequence
        >>> logits = decoder.next_logits()      # feeds that one token only
        >>> decoder.cache.length
        4
        >>> for _ in range(6):                  # past the block of 8: the window slides by 8 // 4
        ...     decoder.append(logits.argmax(-1))
        ...     logits = decoder.next_logits()
        >>> decoder.length, decoder.start, decoder.slides
        (10, 2, 1)
    """

    def __init__(
        self, model: GPT, prompt: Tensor, max_new_tokens: int, window_shift: int | None = None
    ) -> None:
        config = model.config
        self.model = model
        self.block_size = config.block_size
        self.shift = default_window_shift(self.block_size) if window_shift is None else window_shift
        if not 1 <= self.shift <= self.block_size:
            raise ValueError(f"window_shift must be in 1..{self.block_size}, got {self.shift}")
        batch, prompt_len = prompt.shape
        if prompt_len < 1:
            raise ValueError("the prompt must hold at least one token")
        weights = next(model.parameters())
        self.tokens = torch.empty(batch, prompt_len + max_new_tokens, dtype=torch.long, device=weights.device)
        self.tokens[:, :prompt_len] = prompt
        self.prompt_length = prompt_len
        self.length = prompt_len  # tokens[:, :length] are filled
        self.start = 0  # the model sees tokens[:, start:length]
        from minitx.model.memory import require_inference_fits

        require_inference_fits(config, str(weights.device), batch)
        self.cache = KVCache(config, batch, device=weights.device, dtype=weights.dtype)
        self.slides = 0  # how often the window moved (each costs one prefill)
        self.plan = model.decode_plan()

    @property
    def context(self) -> Tensor:
        """The tokens the next prediction is conditioned on: [B, at most block_size] once fed."""
        return self.tokens[:, self.start : self.length]

    def append(self, next_ids: Tensor) -> None:
        """Add one token to every sequence: next_ids [B]."""
        self.tokens[:, self.length] = next_ids
        self.length += 1

    def next_logits(self) -> Tensor:
        """Logits [B, V] for the token after the last one appended."""
        new_start = slide_window(self.start, self.length, self.block_size, self.shift)
        if new_start != self.start:  # the cached keys/values belong to the old window: refill
            self.start = new_start
            self.cache.reset()
            self.slides += 1
        fed = self.start + self.cache.length  # tokens[:, start:fed] are in the cache already
        if self.length - fed == 1:  # the usual step: one new token, the model's flat decode path
            return self.model.decode_next(self.tokens[:, fed : self.length], self.cache, self.plan)
        logits, _ = self.model(self.tokens[:, fed : self.length], cache=self.cache, last_only=True)  # prefill
        return logits[:, -1]  # [B, 1, V] -> [B, V]


# ---------------------------------------------------------------------------------------------
# the decoding loop


@torch.inference_mode()
def generate_ids(
    model: GPT,
    prompt_ids: Sequence[int],
    cfg: SamplingConfig,
    on_token: Callable[[int, int], bool | None] | None = None,
    *,
    window_shift: int | None = None,
) -> list[list[int]]:
    """Sample `cfg.num_samples` continuations of `prompt_ids` together; return prompt + new ids of each.

    One batched forward pass per step. `on_token(sample_index, token_id)` is called for every new
    token of every unfinished sample; returning True ends that sample (its later tokens are
    dropped). Stop strings are text and this function sees only ids, so `cfg.stop` is not used here:
    `generate_text` turns them into an `on_token`. The random draws come from a `torch.Generator`
    of our own seeded with `cfg.seed`, never the global RNG. The model runs in eval mode (dropout
    off) and is put back in its previous mode afterwards.

    Example:
        >>> from minitx.config import ModelConfig
        >>> from minitx.model import build_model
        >>> model = build_model(ModelConfig(vocab_size=50, block_size=8, n_layers=1, n_heads=2, dim=16))
        >>> ids = generate_ids(model, [0], SamplingConfig(max_new_tokens=3, temperature=0, num_samples=2))
        >>> [len(sample) for sample in ids], ids[0] == ids[1]   # prompt + 3 each; greedy: both alike
        ([4, 4], True)
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if cfg.seed is None:
        generator.seed()  # a fresh non-deterministic seed for this generator only
    else:
        generator.manual_seed(cfg.seed)
    prompt = torch.tensor(list(prompt_ids), dtype=torch.long, device=device).expand(cfg.num_samples, -1)
    decoder = SlidingWindowDecoder(model, prompt, cfg.max_new_tokens, window_shift)
    new_ids: list[list[int]] = [[] for _ in range(cfg.num_samples)]
    finished = [False] * cfg.num_samples

    was_training = model.training
    model.eval()
    try:
        for _ in range(cfg.max_new_tokens):
            next_ids = sample_next(decoder.next_logits(), cfg.temperature, cfg.top_k, cfg.top_p, generator)
            decoder.append(next_ids)
            if on_token is None:
                continue  # nothing needs the ids on the host yet: no sync, no Python per token
            for i, token in enumerate(next_ids.tolist()):
                if not finished[i]:
                    new_ids[i].append(token)
                    finished[i] = bool(on_token(i, token))
            if all(finished):
                break
    finally:
        model.train(was_training)

    prompt_list = list(prompt_ids)
    if on_token is None:
        generated = decoder.tokens[:, decoder.prompt_length : decoder.length]  # [B, steps]
        return [prompt_list + row for row in generated.tolist()]
    return [prompt_list + ids for ids in new_ids]


@dataclass
class Samples:
    """What `generate_text` returns."""

    texts: list[str]  # each sample's new text (without the prompt), cut before its stop string
    token_ids: list[list[int]]  # each sample's new ids (through the token that completed a stop string)
    steps: int  # decoding steps the batch ran
    seconds: float  # wall time of the decoding (prefill included)
    seed: int  # the seed actually used (drawn at random when cfg.seed was None)


def generate_text(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    cfg: SamplingConfig,
    *,
    on_text: Callable[[int, str], None] | None = None,
    window_shift: int | None = None,
) -> Samples:
    """Continue `prompt` `cfg.num_samples` times, applying the stop strings.

    With a tokenizer that knows `<|doc|>` (the document marker every training document starts
    with), generation happens inside one document, as in training: the model is fed `<|doc|>`
    first (so an empty prompt starts a new story, and a prompt is read as the beginning of one),
    and every sample ends at the next `<|doc|>` -- the end of its document. `on_text(sample_index,
    piece)` receives each sample's text as soon as it is final (the pieces of a sample add up to its
    entry in `texts`).
    """
    from minitx.text.tokenizer import DOC_TOKEN

    prompt_ids = tokenizer.encode(prompt)  # char tokenizers raise UserError for unknown characters
    stop = list(cfg.stop)
    doc = tokenizer.token_id(DOC_TOKEN)
    if doc is None and not prompt_ids:
        raise UserError(f"this tokenizer has no {DOC_TOKEN} token to start a story with; give a --prompt")
    if doc is not None:
        if not prompt_ids or prompt_ids[0] != doc:
            prompt_ids = [doc, *prompt_ids]
        stop = stop if DOC_TOKEN in stop else [*stop, DOC_TOKEN]
    seed = cfg.seed if cfg.seed is not None else secrets.randbits(31)
    cfg = replace(cfg, seed=seed, stop=stop)

    started = time.perf_counter()
    if not stop and on_text is None:  # nothing to watch token by token: the fast path
        rows = generate_ids(model, prompt_ids, cfg, window_shift=window_shift)
        new_ids = [row[len(prompt_ids) :] for row in rows]
        texts = [tokenizer.decode(ids) for ids in new_ids]
    else:
        followers = [
            StopAndStream(tokenizer.decode, stop, partial(on_text, i) if on_text is not None else None)
            for i in range(cfg.num_samples)
        ]
        on_token = lambda i, token: followers[i].add(token)  # noqa: E731 - a one-line adapter
        generate_ids(model, prompt_ids, cfg, on_token, window_shift=window_shift)
        texts = [follower.close() for follower in followers]
        new_ids = [follower.ids for follower in followers]
    seconds = time.perf_counter() - started
    return Samples(texts, new_ids, max(len(ids) for ids in new_ids), seconds, seed)
