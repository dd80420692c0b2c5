"""How likely a model finds a piece of text: log p(text) = Σ_i log p(token_i | tokens before i).

This is the quantity behind every comparison of the positional-encoding lab: two sentences
(minimal pairs), a document and its shuffled copy (order test), a long window read position by
position (length extrapolation). Each text is read from its own `<|doc|>` marker, as in training,
so the first predicted token is the first token of the text.

A text longer than the model's block is read with a sliding window: each token is still predicted
from at most block_size tokens before it, and never twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from minitx.model import GPT


@torch.no_grad()
def token_log_probs(model: GPT, sequences: Sequence[Sequence[int]], batch_size: int = 32) -> list[torch.Tensor]:
    """For each id sequence, log p(token_i | tokens before) for i = 1..len-1 (a float tensor of len-1).

    Every sequence is cut into windows (`_windows`); windows of all sequences are sorted by length and
    run in batches with right padding -- a causal model's outputs at real positions never depend on
    the padding after them, so padding changes nothing.
    """
    model.eval()
    device = next(model.parameters()).device
    jobs = [(i, start, first_new) for i, seq in enumerate(sequences) for start, first_new in _windows(len(seq), model)]
    block = model.config.block_size
    pieces: dict[tuple[int, int], torch.Tensor] = {}
    jobs.sort(key=lambda job: min(block + 1, len(sequences[job[0]]) - job[1]))
    for begin in range(0, len(jobs), batch_size):
        batch = jobs[begin : begin + batch_size]
        windows = [sequences[i][start : start + block + 1] for i, start, _ in batch]
        ids = torch.zeros(len(batch), max(len(w) for w in windows), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        ids = ids.to(device)
        logits, _ = model(ids[:, :-1])  # [B, T-1, V]
        log_probs = F.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).cpu()
        for row, ((i, start, first_new), window) in enumerate(zip(batch, windows, strict=True)):
            pieces[i, start] = log_probs[row, first_new : len(window) - 1]
    result = []
    for i, seq in enumerate(sequences):
        parts = [pieces[i, start] for start, _ in _windows(len(seq), model)]
        result.append(torch.cat(parts) if parts else torch.zeros(0))
    return result


def _windows(length: int, model: GPT) -> list[tuple[int, int]]:
    """(start, first_new) of the windows that read a sequence of `length` tokens.

    One window when it fits (block_size + 1 tokens). Longer: windows of block+1 tokens moved by half
    a block; each scores only the predictions the previous one did not make (from index `first_new`),
    so every token is predicted once, from at least block/2 tokens of context.
    """
    block = model.config.block_size
    if length < 2:
        return []
    if length <= block + 1:
        return [(0, 0)]
    stride = max(1, block // 2)
    windows, scored_up_to, start = [], 0, 0  # tokens 1..scored_up_to have a prediction
    while scored_up_to < length - 1:
        windows.append((start, scored_up_to - start))
        scored_up_to = min(length, start + block + 1) - 1
        start += stride
    return windows


def total_log_probs(model: GPT, sequences: Sequence[Sequence[int]], batch_size: int = 32) -> list[float]:
    """log p(sequence) in nats, summed over every predicted token (all but the first, the `<|doc|>`)."""
    return [float(lp.sum()) for lp in token_log_probs(model, sequences, batch_size)]
