"""Translating with an encoder-decoder: encode the source once, then write the target token by token.

    memory = encode(source)                          once per sentence
    y_0 = b;  y_{t+1} = argmax_y p(y | y_0..y_t, memory)          greedy, until y = b (the end) or the block is full

Greedy keeps the one most likely next token. Beam search keeps the K best partial translations by
log-probability, extends each by every token, and keeps the K best of those; a hypothesis that ends
leaves the beam with its score divided by its length^α (length normalisation: a sum of log-probabilities
only falls as a sentence grows, so without it the shortest translation wins). A sentence is done when
K hypotheses have ended; beam 1 is exactly greedy. Both decode with a KV cache: the decoder's
self-attention keys and values are appended step by step, the cross-attention keys and values of the
memory are computed at the first step, once per layer (`KVCache.cross`). Sentences are translated in
batches of similar length (right-padded sources, `source_padding` hides the padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from minitx.errors import UserError
from minitx.model.attention import KVCache
from minitx.model.encoder_decoder import pad_sources
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    from minitx.model.encoder_decoder import EncoderDecoder
    from minitx.text.tokenizer import Tokenizer


def encode_sentences(tokenizer: Tokenizer, sentences: Sequence[str], block_size: int) -> list[list[int]]:
    """Source ids of each sentence; an empty one or one longer than the block is a UserError naming it."""
    encoded = tokenizer.encode_pieces([s.strip() for s in sentences])
    for number, (sentence, ids) in enumerate(zip(sentences, encoded, strict=True), start=1):
        if not ids:
            raise UserError(f"sentence {number} is empty; give text to translate")
        if len(ids) + 1 > block_size:  # + the end token
            raise UserError(f"sentence {number} is {len(ids)} tokens long but the model reads at most "
                            f"{block_size - 1} (its block size, less the end token); shorten or split it: "
                            f"{sentence[:60]!r}")
    return encoded


def _max_new_tokens(model: EncoderDecoder, max_new_tokens: int | None) -> int:
    """As many as the decoder's block holds (step s feeds position s), or fewer if asked."""
    room = model.config.block_size
    return room if max_new_tokens is None else max(1, min(room, max_new_tokens))


@torch.no_grad()
def greedy(model: EncoderDecoder, sources: list[list[int]], boundary_id: int, max_new_tokens: int | None = None,
           use_cache: bool = True) -> list[list[int]]:
    """The greedy translation (ids, without the end token) of each source in one batch.

    `use_cache=False` runs the whole decoder again at every step: slower, the same result (a test holds it).
    """
    device = model.wte.weight.device
    source, padding = (t.to(device) for t in pad_sources(sources, boundary_id))
    batch = source.shape[0]
    memory = model.encode(source, padding)
    cache = KVCache(model.config, batch, device=device, dtype=memory.dtype) if use_cache else None
    written = torch.full((batch, 1), boundary_id, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(_max_new_tokens(model, max_new_tokens)):
        if cache is not None:
            logits = model.decode(written[:, -1:], memory if step == 0 else None, padding, cache=cache,
                                  last_only=True)
        else:
            logits = model.decode(written, memory, padding, last_only=True)
        token = logits[:, -1].argmax(dim=-1)  # [B]
        token = token.masked_fill(done, boundary_id)  # a finished sentence only repeats its end
        written = torch.cat([written, token[:, None]], dim=1)
        done |= token == boundary_id
        if bool(done.all()):
            break
    return [_until_end(row[1:].tolist(), boundary_id) for row in written]


def _until_end(ids: list[int], boundary_id: int) -> list[int]:
    return ids[: ids.index(boundary_id)] if boundary_id in ids else ids


@torch.no_grad()
def beam_search(model: EncoderDecoder, sources: list[list[int]], boundary_id: int, beam: int,
                max_new_tokens: int | None = None, length_alpha: float = 1.0) -> list[list[int]]:
    """The best translation (ids, without the end token) of each source by beam search of width `beam`.

    Scores are sums of log-probabilities; an ended hypothesis is ranked by score / length^`length_alpha`
    (its end token counted). Only ends among the `beam` best candidates count, so beam 1 is greedy.
    """
    device = model.wte.weight.device
    source, padding = (t.to(device) for t in pad_sources(sources, boundary_id))
    n, k = source.shape[0], beam
    memory = model.encode(source, padding).repeat_interleave(k, dim=0)  # [N·K, S, C]: each beam its own row
    padding = padding.repeat_interleave(k, dim=0)
    cache = KVCache(model.config, n * k, device=device, dtype=memory.dtype)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # at the start all beams are the same: expand only the first
    written = torch.full((n * k, 1), boundary_id, dtype=torch.long, device=device)
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    done = [False] * n
    steps = _max_new_tokens(model, max_new_tokens)
    for step in range(steps):
        logits = model.decode(written[:, -1:], memory if step == 0 else None, padding, cache=cache, last_only=True)
        log_p = F.log_softmax(logits[:, -1].float(), dim=-1)  # [N·K, V]
        vocab = log_p.shape[-1]
        candidates = (scores.view(-1, 1) + log_p).view(n, k * vocab)  # every beam × every next token
        top_scores, top = candidates.topk(2 * k, dim=1)  # 2K: enough to keep K going if K of them end
        origin, token = top // vocab, top % vocab  # [N, 2K]: which beam, which token
        new_scores = torch.full((n, k), float("-inf"), device=device)
        new_origin = torch.zeros((n, k), dtype=torch.long, device=device)
        new_token = torch.full((n, k), boundary_id, dtype=torch.long, device=device)
        length = written.shape[1]  # tokens written so far + this one, the start token not counted
        for i in range(n):
            kept = 0
            for rank in range(2 * k):
                if done[i] or kept == k:
                    break
                score, beam_i, tok = float(top_scores[i, rank]), int(origin[i, rank]), int(token[i, rank])
                if score == float("-inf"):
                    break
                if tok == boundary_id:
                    if rank < k:  # an end counts only among the K best candidates
                        history = written[i * k + beam_i, 1:].tolist()
                        ended[i].append((score / length**length_alpha, history))
                    continue
                new_scores[i, kept], new_origin[i, kept], new_token[i, kept] = score, beam_i, tok
                kept += 1
            if len(ended[i]) >= k:
                done[i] = True
        if all(done):
            break
        rows = (torch.arange(n, device=device)[:, None] * k + new_origin).view(-1)  # [N·K] rows to continue
        for layer in range(len(cache.k)):  # each surviving beam takes its parent's keys and values
            cache.k[layer] = cache.k[layer].index_select(0, rows)
            cache.v[layer] = cache.v[layer].index_select(0, rows)
        written = torch.cat([written.index_select(0, rows), new_token.view(-1, 1)], dim=1)
        scores = new_scores
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
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    boundary = tokenizer.token_id(DOC_TOKEN)
    if boundary is None:
        raise UserError(f"the run's tokenizer has no {DOC_TOKEN} token, so it cannot say where a translation ends")
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

