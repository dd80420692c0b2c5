"""Capturing what each attention head looks at: the weights α of every layer and head for some tokens.

In every layer, every head mixes the tokens' values with weights α (see `minitx.model.attention`):

    c_t = Σ_{t'} α[t, t'] v_{t'}      α[t, t'] = how much of token t'’s value goes into token t’s output

Each row t of α sums to 1: it is how token t shares out its attention. The upper triangle (t' > t)
is the future; the causal mask puts -inf there before the softmax, so those weights are exactly 0.

This module is the leaf of `minitx.inspect`: it runs the model and keeps α, and everything else
(roles, induction, views) reads what it returns. It reads the model's hook points, named as in
TransformerLens (`blocks.{layer}.attn.hook_pattern`); here the layers are stacked into one tensor [L, H, T, T].

Example (weights made by hand: one layer, one head that reads the previous token):
    >>> import torch
    >>> weights = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])
    >>> capture = AttentionCapture(["<|doc|>", "The", " dog"], [0, 5, 9], weights, pos="learned")
    >>> capture.n_layers, capture.n_heads, capture.n_tokens
    (1, 1, 3)
    >>> top_attended(capture, 0, 0, -1, k=2)   # what the last token reads most
    [(1, 'The', 1.0), (0, '<|doc|>', 0.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from minitx.errors import UserError

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer

#: What `minitx inspect-attention` reads when no --prompt is given: story-corpus words, with repeats.
DEFAULT_PROMPT = "The little dog sees the big red ball. The dog runs to the ball. The dog"


@dataclass
class AttentionCapture:
    """The attention weights of every layer and head for one text.

    Attributes:
        tokens: display text of each token, e.g. ["<|doc|>", "The", " dog"].
        token_ids: the ids the model read.
        weights: α as [L, H, T, T] float32 on the CPU: weights[l, h, t, t'] is how much query t of
            head h in layer l takes from key t'.
        pos: the model's positional encoding kind ("learned", "rope", ...).
        dropped: how many tokens from the start of a longer input were left out (it kept the last block).
    """

    tokens: list[str]
    token_ids: list[int]
    weights: torch.Tensor
    pos: str
    dropped: int = 0

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.weights.shape[-1]


@torch.no_grad()
def attention_weights(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Every head's α for a batch of token windows: idx [B, T] -> float32 [B, L, H, T, T] on the CPU.

    Read at the hook points `blocks.{l}.attn.hook_pattern`; the pass stops after the last one (the last
    MLP and the output layer are not needed). The model runs in eval mode (no dropout) without gradients
    and is put back in its previous mode.
    """
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.config.n_layers)]
    was_training = model.training
    model.eval()
    try:
        _, cache = model.run_with_cache(idx.to(next(model.parameters()).device), names=names, stop_at=names[-1])
    finally:
        model.train(was_training)
    return torch.stack([cache[name] for name in names], dim=1).float().cpu()  # L x [B, H, T, T] -> [B, L, H, T, T]


def prompt_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """The ids of `text` as a document starts: with <|doc|> in front when the tokenizer knows it (once)."""
    from minitx.model.inputs import document_ids

    return document_ids(tokenizer, text)


def capture_ids(
    model: GPT, tokenizer: Tokenizer, ids: Sequence[int], *, max_tokens: int | None = None
) -> AttentionCapture:
    """Run token `ids` through `model` once and keep every head's weights.

    Only the last min(block_size, max_tokens) ids are kept, so a long input loses its beginning.
    """
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    if not ids:
        raise UserError("the prompt is empty after tokenizing; give --prompt some text")
    limit = model.config.block_size if max_tokens is None else min(model.config.block_size, max_tokens)
    dropped = max(0, len(ids) - limit)
    ids = list(ids)[-limit:]
    weights = attention_weights(model, torch.tensor([ids], dtype=torch.long))[0]  # [L, H, T, T]
    tokens = [tokenizer.id_to_token_text(i) for i in ids]
    return AttentionCapture(tokens, ids, weights, model.config.pos, dropped)


def capture_attention(
    model: GPT, tokenizer: Tokenizer, text: str, *, max_tokens: int | None = None
) -> AttentionCapture:
    """Run `text` through `model` once and keep every head's attention weights.

    As in generation, a tokenizer that knows <|doc|> gets it in front of the text (every training
    document starts with it); then `capture_ids` keeps the last min(block_size, max_tokens) tokens,
    so a long text loses its beginning, <|doc|> included.
    """
    if max_tokens is not None and max_tokens < 1:  # before encoding: a bad flag is named first
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    return capture_ids(model, tokenizer, prompt_ids(tokenizer, text), max_tokens=max_tokens)


def check_head(capture: AttentionCapture, layer: int | None, head: int | None) -> None:
    """Raise a UserError naming the valid range when `layer` or `head` (None: not given) is not in the capture."""
    check_layer_head(capture.n_layers, capture.n_heads, layer, head)


def check_layer_head(n_layers: int, n_heads: int, layer: int | None, head: int | None) -> None:
    """Raise a UserError naming the valid range when `layer` or `head` (None: not given) does not exist."""
    if layer is not None and not 0 <= layer < n_layers:
        raise UserError(f"--layer {layer} does not exist: this model has layers 0..{n_layers - 1}")
    if head is not None and not 0 <= head < n_heads:
        raise UserError(f"--head {head} does not exist: each layer has heads 0..{n_heads - 1}")


def top_attended(
    capture: AttentionCapture, layer: int, head: int, query: int, k: int = 3
) -> list[tuple[int, str, float]]:
    """The `k` tokens the token at position `query` attends to most: [(position, text, weight), ...].

    `query` may be negative, counted from the end as in Python (-1 = the last token).
    """
    check_head(capture, layer, head)
    n = capture.n_tokens
    if not -n <= query < n:
        raise ValueError(f"query {query} is outside the {n} tokens")
    query %= n
    row = capture.weights[layer, head, query, : query + 1]  # the keys it can see
    weights, positions = row.topk(min(k, query + 1))
    return [(p, capture.tokens[p], w) for p, w in zip(positions.tolist(), weights.tolist(), strict=True)]
