"""Translating with an encoder-decoder: encode the source once, then write the target token by token.

    memory = encode(source)                          once per sentence
    y_0 = b;  y_{t+1} = argmax_y p(y | y_0..y_t, memory)          greedy, until y = b (the end) or the block is full

Greedy keeps the one most likely next token. Beam search keeps the K best partial translations by
log-probability, extends each by every token, and keeps the K best of those; a hypothesis that ends
leaves the beam with its score divided by its length^α (length normalisation: a sum of log-probabilities
only falls as a sentence grows, so without it the shortest translation wins). A sentence is done when
K hypotheses have ended; beam 1 is exactly greedy. Both decode with a KV cache: the decoder's
self-attention keys and values are appended step by step, the cross-attention keys and values of the
memory are computed once per layer before the first step (`KVCache.cross`), and each step is one flat
`EncoderDecoder.decode_next`. Sentences are translated in batches of similar length (right-padded
sources, `source_padding` hides the padding).

Any model with the same decoding methods is driven by the same search code: `new_cache`, `decode_plan`,
`prefill_cross`, `decode_next`, `decode` and the cache's `reorder(rows)` -- the RNN encoder-decoders of
model/rnn.py, whose cache is the decoder's state s rather than keys and values, translate this way too.

A model with int8 weights (`quantize_int8`, `minitx translate --quantize int8`) decodes the same way:
its memory, and so the cache made in its dtype, are bfloat16, and `decode_plan` hands `decode_next`
each linear map's int8 kernel; greedy and beam search need nothing of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from minitx.errors import UserError
from minitx.model.encoder_decoder import pad_sources
from minitx.model.inputs import encode_sources, end_token

if TYPE_CHECKING:
    from minitx.model.encoder_decoder import EncoderDecoder
    from minitx.text.tokenizer import Tokenizer


def encode_sentences(tokenizer: Tokenizer, sentences: Sequence[str], block_size: int,
                     first: int = 1) -> list[list[int]]:
    """Source ids of each sentence, without the end token `pad_sources` adds; an empty one or one longer than the
    block is a UserError naming it by its number in the whole input (the first of `sentences` is number `first`;
    the rule itself: model/inputs.py)."""
    names = [f"sentence {n}" for n in range(first, first + len(sentences))]
    return encode_sources(tokenizer, sentences, block_size, names=names, end=False)


def _max_new_tokens(model: EncoderDecoder, max_new_tokens: int | None) -> int:
    """As many as the decoder's block holds (step s feeds position s), or fewer if asked."""
    room = model.config.block_size
    return room if max_new_tokens is None else max(1, min(room, max_new_tokens))


@torch.inference_mode()  # not no_grad: no version counters, no view tracking -- ~4% of a bench batch
def greedy(model: EncoderDecoder, sources: list[list[int]], boundary_id: int, max_new_tokens: int | None = None,
           use_cache: bool = True) -> list[list[int]]:
    """The greedy translation (ids, without the end token) of each source in one batch.

    With the cache, each step is one `EncoderDecoder.decode_next` (the source's cross-attention keys
    and values computed once, before the first step, by `prefill_cross`). `use_cache=False` runs the
    whole decoder again at every step: slower, the same result (a test holds it).
    """
    device = model.wte.weight.device
    source, padding = (t.to(device) for t in pad_sources(sources, boundary_id))
    batch = source.shape[0]
    steps = _max_new_tokens(model, max_new_tokens)
    memory = model.encode(source, padding)
    cache, plan = None, None
    if use_cache:
        cache = model.new_cache(batch, device=device, dtype=memory.dtype)
        plan = model.decode_plan(padding)
        model.prefill_cross(memory, cache, plan)
    written = torch.full((batch, steps + 1), boundary_id, dtype=torch.long, device=device)  # start token, then y_1..
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    length = 1  # columns of `written` filled
    for step in range(steps):
        if cache is not None:
            logits = model.decode_next(written[:, step : step + 1], cache, padding, plan)  # [B, V]
        else:
            logits = model.decode(written[:, : step + 1], memory, padding, last_only=True)[:, -1]
        # max's indices are argmax's (the first of equal maxima, both), at a quarter of its time on the CPU
        token = logits.max(dim=-1).indices.masked_fill_(done, boundary_id)  # a finished sentence repeats its end
        written[:, step + 1] = token
        length += 1
        done |= token == boundary_id
        if bool(done.all()):
            break
    return [_until_end(row, boundary_id) for row in written[:, 1:length].tolist()]


def _until_end(ids: list[int], boundary_id: int) -> list[int]:
    return ids[: ids.index(boundary_id)] if boundary_id in ids else ids


@torch.inference_mode()
def beam_search(model: EncoderDecoder, sources: list[list[int]], boundary_id: int, beam: int,
                max_new_tokens: int | None = None, length_alpha: float = 1.0,
                use_cache: bool = True) -> list[list[int]]:
    """The best translation (ids, without the end token) of each source by beam search of width `beam`.

    Scores are sums of log-probabilities; an ended hypothesis is ranked by score / length^`length_alpha`
    (its end token counted). Only ends among the `beam` best candidates count, so beam 1 is greedy.
    Each beam is a row of its own (sentence i's beams are rows i·K .. i·K+K-1); with the cache a step
    is one `decode_next`, and the rows of the self-attention cache follow their beams. The source's
    keys and values (`cache.cross`) are the same for every beam of a sentence and a beam only ever
    continues a beam of its own sentence, so they never move. `use_cache=False` runs the whole decoder
    again at every step: slower, the same result (a test holds it).
    """
    device = model.wte.weight.device
    source, padding = (t.to(device) for t in pad_sources(sources, boundary_id))
    n, k = source.shape[0], beam
    memory = model.encode(source, padding).repeat_interleave(k, dim=0)  # [N·K, S, C]: each beam its own row
    padding = padding.repeat_interleave(k, dim=0)
    cache, plan = None, None
    if use_cache:
        cache = model.new_cache(n * k, device=device, dtype=memory.dtype)
        plan = model.decode_plan(padding)
        model.prefill_cross(memory, cache, plan)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # at the start all beams are the same: expand only the first
    written = torch.full((n * k, 1), boundary_id, dtype=torch.long, device=device)
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    done = [False] * n
    steps = _max_new_tokens(model, max_new_tokens)
    for _ in range(steps):
        if cache is not None:
            logits = model.decode_next(written[:, -1:], cache, padding, plan)  # [N·K, V]
        else:
            logits = model.decode(written, memory, padding, last_only=True)[:, -1]
        log_p = F.log_softmax(logits.float(), dim=-1)  # [N·K, V]
        vocab = log_p.shape[-1]
        candidates = (scores.view(-1, 1) + log_p).view(n, k * vocab)  # every beam × every next token
        top_scores, top = candidates.topk(2 * k, dim=1)  # 2K: enough to keep K going if K of them end
        origin, token = top // vocab, top % vocab  # [N, 2K]: which beam, which token
        # The choice below is a few comparisons per candidate: on Python numbers, read in one go (one
        # tensor element read at a time was most of a step at batch 32).
        top_scores_, origin_, token_ = top_scores.tolist(), origin.tolist(), token.tolist()
        new_scores = [[float("-inf")] * k for _ in range(n)]
        new_origin = [[0] * k for _ in range(n)]
        new_token = [[boundary_id] * k for _ in range(n)]
        length = written.shape[1]  # tokens written so far + this one, the start token not counted
        for i in range(n):
            kept = 0
            for rank in range(2 * k):
                if done[i] or kept == k:
                    break
                score, beam_i, tok = top_scores_[i][rank], origin_[i][rank], token_[i][rank]
                if score == float("-inf"):
                    break
                if tok == boundary_id:
                    if rank < k:  # an end counts only among the K best candidates
                        history = written[i * k + beam_i, 1:].tolist()
                        ended[i].append((score / length**length_alpha, history))
                    continue
                new_scores[i][kept], new_origin[i][kept], new_token[i][kept] = score, beam_i, tok
                kept += 1
            if len(ended[i]) >= k:
                done[i] = True
        if all(done):
            break
        origins = torch.tensor(new_origin, dtype=torch.long, device=device)
        rows = (torch.arange(n, device=device)[:, None] * k + origins).view(-1)  # [N·K] rows to continue
        if cache is not None:
            cache.reorder(rows)  # each surviving beam takes its parent's cached decoder state
        tokens = torch.tensor(new_token, dtype=torch.long, device=device).view(-1, 1)
        written = torch.cat([written.index_select(0, rows), tokens], dim=1)
        scores = torch.tensor(new_scores, device=device)
    results = []
    for i in range(n):
        hypotheses = ended[i]
        if not hypotheses:  # the block ran out before any ended: the best unfinished ones compete
            length = written.shape[1] - 1
            hypotheses = [(float(scores[i, b]) / length**length_alpha, written[i * k + b, 1:].tolist())
                          for b in range(k) if scores[i, b] > float("-inf")]
        results.append(max(hypotheses, key=lambda h: h[0])[1])
    return results


def translate(model: EncoderDecoder, tokenizer: Tokenizer, sentences: Sequence[str], *, beam: int = 1,
              batch_size: int = 32, max_new_tokens: int | None = None, length_alpha: float = 1.0) -> list[str]:
    """Translations of `sentences`, in their order: batches of `batch_size` sentences of similar length.

    beam 1 is greedy decoding; more is beam search with length normalisation (`length_alpha`).
    """
    boundary = check_translate_settings(model, tokenizer, beam, max_new_tokens)
    encoded = encode_sentences(tokenizer, sentences, model.config.block_size)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    out: list[str] = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        sources = [encoded[i] for i in chunk]
        if beam == 1:
            ids = greedy(model, sources, boundary, max_new_tokens)
        else:
            ids = beam_search(model, sources, boundary, beam, max_new_tokens, length_alpha)
        for i, row in zip(chunk, ids, strict=True):
            out[i] = tokenizer.decode(row).strip()
    return out



def check_translate_settings(model: EncoderDecoder, tokenizer: Tokenizer, beam: int,
                             max_new_tokens: int | None) -> int:
    """UserError for a beam or a length that cannot be; else the id that ends a translation."""
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    if beam > tokenizer.vocab_size:
        raise UserError(f"--beam {beam} is wider than the vocabulary ({tokenizer.vocab_size} tokens): a beam keeps "
                        f"that many different continuations; choose at most {tokenizer.vocab_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    return end_token(tokenizer)


def translate_batches(model: EncoderDecoder, tokenizer: Tokenizer, batches: Iterable[Sequence[str]], *,
                      beam: int = 1, max_new_tokens: int | None = None,
                      length_alpha: float = 1.0) -> Iterator[list[str]]:
    """The translations of each batch of sentences, in order, as soon as it is done (`minitx translate`).

    One batch is in memory at a time, so any number of sentences streams through in flat memory and
    the first lines come out while later ones are still being read. A batch is translated as given
    (input order); `translate` sorts a whole list by length instead, for speed.
    """
    boundary = check_translate_settings(model, tokenizer, beam, max_new_tokens)
    first = 1
    for batch in batches:
        sources = encode_sentences(tokenizer, batch, model.config.block_size, first=first)
        first += len(batch)
        if beam == 1:
            ids = greedy(model, sources, boundary, max_new_tokens)
        else:
            ids = beam_search(model, sources, boundary, beam, max_new_tokens, length_alpha)
        yield [tokenizer.decode(row).strip() for row in ids]
