"""Masked multi-head self-attention, the one place where tokens exchange information.

Each token t asks a question (query q_t), every token t' offers a label (key k_t') and a content
(value v_t'). The output for t is a weighted average of the values,

    c_t = Σ_{t'} α_{t,t'} v_{t'}
    α_{t,·} = softmax_{t'}( q_t·k_{t'} / √d_head  +  bias_{t,t'}  +  mask_{t,t'} )

where mask_{t,t'} = -inf when t' > t (the causal mask: a token never sees the future, which is
what lets a language model be trained on every position at once) and 0 otherwise; bias is ALiBi's
distance penalty or 0. Softmax turns -inf into a weight of exactly 0 and makes each row sum to 1.
Dividing by √d_head keeps the scores' spread about 1 whatever the head size, so the softmax does
not saturate at init.

Multi-head: one linear layer `c_attn` (dim -> 3·dim) produces q, k and v for all H heads at once;
each head works in its own d_head = dim / H slice, the H outputs are concatenated back to dim and
mixed by `c_proj` (dim -> dim).

Two ways to compute the same thing, chosen per call:
  * textbook: the formula above step by step; returns the weights α [B, H, Tq, Tk] for inspection.
  * sdpa: `torch.nn.functional.scaled_dot_product_attention`, one fused kernel, no weights.

With a `KVCache`, keys and values of earlier tokens are kept, so generating one more token only
computes q, k, v for that token: its query attends to the cached keys plus its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import ModelConfig
from minitx.model.positions import PositionalEncoding


class KVCache:
    """Keys and values of the tokens seen so far, for every layer, preallocated to block_size.

    `k[layer]` and `v[layer]` are [B, H, block_size, hd]; slots 0..length-1 are filled. A forward
    pass with T new tokens writes slots length..length+T-1 in every layer, then `GPT.forward`
    advances `length` by T. Keys are stored after RoPE rotation, so they are never rotated again.

    Example:
        >>> from minitx.model import GPT
        >>> config = ModelConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=2, dim=32)
        >>> model, cache = GPT(config).eval(), KVCache(config, batch_size=1)
        >>> logits, _ = model(torch.tensor([[1, 2, 3]]), cache=cache)   # prefill: three slots filled
        >>> cache.length
        3
        >>> logits, _ = model(torch.tensor([[4]]), cache=cache)         # decode: one more token, one slot
        >>> cache.length, tuple(cache.k[0].shape)                       # [B, H, block_size, hd]
        (4, (1, 2, 16, 16))
    """

    def __init__(
        self,
        config: ModelConfig,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (batch_size, config.n_heads, config.block_size, config.head_dim)
        # empty, not zeros: a slot is always written before it is read, and zeroing all of them up
        # front took ~25 ms per generation at 6 layers x 1024 slots (5% of 500 decoded tokens).
        self.k: list[Tensor] = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v: list[Tensor] = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.batch_size = batch_size
        self.block_size = config.block_size
        self.length = 0

    @property
    def remaining(self) -> int:
        """How many more tokens fit before the cache is full."""
        return self.block_size - self.length

    def reset(self) -> None:
        """Forget every token (the buffers are reused, not reallocated)."""
        self.length = 0

    def crop(self, n: int) -> None:
        """Keep only the first n tokens, e.g. to reuse a shared prompt."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {n}")
        self.length = n


class AttentionMask:
    """Which keys each query may see and how they are biased; built once per forward, shared by all layers.

    Queries sit at absolute positions start_pos..start_pos+t_q-1 and keys at 0..t_k-1, with
    t_k = start_pos + t_q. A query at position p sees keys 0..p.

    Attributes:
        start_pos, t_q, t_k: as above.
        score_bias: [H, t_q, t_k] added to the scores (ALiBi), or None.
        sdpa_is_causal: SDPA may use its built-in causal mask (no cache offset, no bias).
        future: bool [t_q, t_k], True where the key lies in the query's future (see below).
        sdpa_mask: the additive float mask SDPA needs (see below).

    `future` and `sdpa_mask` are computed on first use, so a path that does not need them (the
    usual training step: SDPA with is_causal) allocates nothing.

    Example: t_q=3, start_pos=2 -> queries at 2, 3, 4 over keys 0..4, and `future` is
        [[F F F T T],
         [F F F F T],
         [F F F F F]]
    """

    def __init__(
        self,
        t_q: int,
        start_pos: int = 0,
        score_bias: Tensor | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.t_q, self.start_pos, self.t_k = t_q, start_pos, start_pos + t_q
        self.score_bias = score_bias.to(dtype) if score_bias is not None else None
        self.sdpa_is_causal = start_pos == 0 and score_bias is None
        self.device, self.dtype = device, dtype
        self._future: Tensor | None = None
        self._sdpa_mask: Tensor | None = None

    @property
    def future(self) -> Tensor | None:
        """bool [t_q, t_k], True above the shifted diagonal; None for one query (it sees every key)."""
        if self._future is None and self.t_q > 1:  # key j is in row r's future when j > start_pos + r
            ones = torch.ones(self.t_q, self.t_k, dtype=torch.bool, device=self.device)
            self._future = ones.triu_(self.start_pos + 1)
        return self._future

    @property
    def sdpa_mask(self) -> Tensor | None:
        """score_bias (or 0) with -inf on the future, [H or 1, t_q, t_k]; None when SDPA needs no mask."""
        if self._sdpa_mask is None and not self.sdpa_is_causal:
            mask = self.score_bias
            if self.future is not None:
                if mask is None:
                    mask = torch.zeros(self.t_q, self.t_k, device=self.device, dtype=self.dtype)
                mask = mask.masked_fill(self.future, float("-inf"))
            self._sdpa_mask = mask
        return self._sdpa_mask


def textbook_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Attention written out step by step: returns (output [B, H, Tq, hd], weights α [B, H, Tq, Tk]).

    The weights are returned before dropout, so each row sums to 1.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # q·k/√hd, [B, H, Tq, Tk]
    if mask.score_bias is not None:
        scores = scores + mask.score_bias  # ALiBi: [H, Tq, Tk] broadcast over the batch
    if mask.future is not None:
        scores = scores.masked_fill(mask.future, float("-inf"))  # never look ahead
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1; -inf -> exactly 0
    mixed = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return mixed @ v, weights  # [B, H, Tq, Tk] @ [B, H, Tk, hd] -> [B, H, Tq, hd]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with GPT-2 parameter names (`c_attn`, `c_proj`).

    `layer_index` says which slot of a KVCache belongs to this layer.
    """

    def __init__(self, config: ModelConfig, layer_index: int = 0) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.layer_index = layer_index
        self.dropout_p = config.dropout
        self.c_attn = nn.Linear(config.dim, 3 * config.dim, bias=config.bias)  # q, k, v for all heads
        self.c_proj = nn.Linear(config.dim, config.dim, bias=config.bias)  # mixes the heads' outputs

    def forward(
        self,
        x: Tensor,
        mask: AttentionMask | None = None,
        *,
        positions: PositionalEncoding | None = None,
        cache: KVCache | None = None,
        textbook: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend over x [B, T, C]; return (output [B, T, C], weights [B, H, T, Tk] or None).

        `mask` defaults to the plain causal mask at the cache's position (no bias); `positions`
        rotates q and k (RoPE); `cache`, if given, stores this call's keys and values at slots
        mask.start_pos.. -- the caller advances `cache.length`. Weights come back only when
        `textbook` is true.
        """
        batch, t, dim = x.shape
        if mask is None:
            start = cache.length if cache is not None else 0
            bias = positions.score_bias(t, start + t, start) if positions is not None else None
            mask = AttentionMask(t, start, bias, device=x.device, dtype=x.dtype)
        start = mask.start_pos

        qkv = self.c_attn(x)  # [B, T, 3C]
        # Split q/k/v and heads with views only. Unbinding dim 2 (not a permuted copy) means the
        # backward pass stacks the three gradients straight into c_attn's [B, T, 3C] layout.
        q, k, v = qkv.view(batch, t, 3, self.n_heads, self.head_dim).unbind(2)  # 3 x [B, T, H, hd]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # 3 x [B, H, T, hd]
        if positions is not None:
            q, k = positions.rotate_qk(q, k, start)

        if cache is not None:  # store this call's keys/values, then attend over everything stored
            k_store, v_store = cache.k[self.layer_index], cache.v[self.layer_index]
            k_store.narrow(2, start, t).copy_(k)
            v_store.narrow(2, start, t).copy_(v)
            k = k_store.narrow(2, 0, start + t)  # [B, H, Tk, hd]
            v = v_store.narrow(2, 0, start + t)

        dropout_p = self.dropout_p if self.training else 0.0
        weights = None
        if textbook:
            out, weights = textbook_attention(q, k, v, mask, dropout_p)
        else:
            attn_mask = mask.sdpa_mask
            if attn_mask is not None and attn_mask.dtype != q.dtype:
                attn_mask = attn_mask.to(q.dtype)  # e.g. under autocast
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=mask.sdpa_is_causal
            )
        out = out.transpose(1, 2).reshape(batch, t, dim)  # concatenate the heads: [B, T, H·hd]
        out = self.c_proj(out)
        if self.dropout_p > 0:
            out = F.dropout(out, self.dropout_p, self.training)
        return out, weights
