"""Multi-head attention, the one place where tokens exchange information.

Each query q_t asks a question, every key k_s offers a label and every value v_s a content; the
output for t is a weighted average of the values,

    c_t = Σ_s α_{t,s} v_s        α_{t,·} = softmax_s( q_t·k_s / √d_head + bias_{t,s} + mask_{t,s} )

mask is -inf where t may not look (a future token under the causal mask, a padding token) and 0
elsewhere; bias is ALiBi's distance penalty or 0. One module serves three uses: causal self-attention
(a decoder: q, k, v from the same tokens, no look ahead), bidirectional self-attention (an encoder:
every token sees every other, padding masked) and cross-attention (queries from the decoder, keys
and values from the encoder's output). Multi-head: H heads of d_head = dim / H each, concatenated
and mixed by `c_proj`. Two paths compute the same thing: `textbook` (the formula step by step,
returns α) and SDPA (one fused kernel); a layer computes α only when asked to or when a hook is set
on its pattern, and mixes the values with α only when asked to or when a hook rewrote α. Hook points
(`minitx.model.hooks`, docs/hooks.md): `hook_q`, `hook_k`, `hook_v` [B, T, H, hd] (this call's, before
RoPE), `hook_pattern` α [B, H, Tq, Tk], `hook_z` [B, T, H, hd] (each head's output c_t before
`c_proj`). Why each step is there: docs/model.md#attention-modelattentionpy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import ModelConfig
from minitx.model.hooks import HookPoint
from minitx.model.positions import PositionalEncoding


class KVCache:
    """Keys and values of the tokens seen so far, for every layer, preallocated to block_size.

    `k[layer]` and `v[layer]` are [B, H, block_size, hd]; slots 0..length-1 are filled. A forward
    pass with T new tokens writes slots length..length+T-1 in every layer, then the model advances
    `length` by T. Keys are stored after RoPE rotation, so they are never rotated again.
    `cross[layer]` holds a cross-attention layer's (keys, values) of the encoder's output: computed
    at the first step, reused by every later one (the source does not change while decoding).

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
        n_layers: int | None = None,
    ) -> None:
        n_layers = config.n_layers if n_layers is None else n_layers
        shape = (batch_size, config.n_heads, config.block_size, config.head_dim)
        # empty, not zeros: a slot is always written before it is read (docs/decisions.md has the cost of zeroing)
        self.k: list[Tensor] = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v: list[Tensor] = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.cross: list[tuple[Tensor, Tensor] | None] = [None] * n_layers
        self.batch_size = batch_size
        self.block_size = config.block_size
        self.length = 0

    @property
    def remaining(self) -> int:
        """How many more tokens fit before the cache is full."""
        return self.block_size - self.length

    def reset(self) -> None:
        """Forget every token and every encoder output (the buffers are reused, not reallocated)."""
        self.length = 0
        self.cross = [None] * len(self.cross)

    def reorder(self, rows: Tensor) -> None:
        """Row i takes row rows[i]'s keys and values (slots 0..length-1): beam search's beams follow their parents.

        `cross` is not moved: beam search only continues beams of the same sentence, whose source is the same.
        """
        for store in (*self.k, *self.v):
            store[:, :, : self.length] = store[:, :, : self.length].index_select(0, rows)

    def crop(self, n: int) -> None:
        """Keep only the first n tokens, e.g. to reuse a shared prompt."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {n}")
        self.length = n


class AttentionMask:
    """Which keys each query may see and how they are biased; built once per forward, shared by all layers.

    Queries sit at absolute positions start_pos..start_pos+t_q-1. Causal (a decoder): keys sit at
    0..t_k-1 with t_k = start_pos + t_q, and a query at position p sees keys 0..p. Not causal (an
    encoder, or cross-attention): every query sees all t_k keys. `key_padding` [B, t_k], True on
    padding, hides those keys from every query (each sequence must keep one real key).

    Attributes:
        start_pos, t_q, t_k, causal, key_padding: as above.
        score_bias: [H, t_q, t_k] added to the scores (ALiBi), or None.
        sdpa_is_causal: SDPA may use its built-in causal mask (no cache offset, no bias, no padding).
        future: bool [t_q, t_k], True where the key lies in the query's future; None if not causal.
        hidden: bool [t_q, t_k] or [B, 1, t_q, t_k], True where a query may not look (future or padding).
        sdpa_mask: the additive float mask SDPA needs: score_bias, with -inf where hidden.

    The masks are computed on first use, so a path that needs none (the usual training step: SDPA
    with is_causal) allocates nothing.

    Example: causal, t_q=3, start_pos=2 -> queries at 2, 3, 4 over keys 0..4, and `future` is
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
        t_k: int | None = None,
        causal: bool = True,
        key_padding: Tensor | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if causal and t_k is not None and t_k != start_pos + t_q:
            raise ValueError(f"a causal mask has start_pos + t_q = {start_pos + t_q} keys, not {t_k}")
        self.t_q, self.start_pos = t_q, start_pos
        self.t_k = start_pos + t_q if t_k is None else t_k
        self.causal = causal
        self.key_padding = key_padding
        self.score_bias = score_bias.to(dtype) if score_bias is not None else None
        self.sdpa_is_causal = causal and start_pos == 0 and score_bias is None and key_padding is None
        self.device, self.dtype = device, dtype
        self._future: Tensor | None = None
        self._hidden: Tensor | None = None
        self._sdpa_mask: Tensor | None = None

    @property
    def future(self) -> Tensor | None:
        """bool [t_q, t_k], True above the shifted diagonal; None if not causal or for one query (it sees all)."""
        if self._future is None and self.causal and self.t_q > 1:  # key j is in row r's future when j > start_pos + r
            ones = torch.ones(self.t_q, self.t_k, dtype=torch.bool, device=self.device)
            self._future = ones.triu_(self.start_pos + 1)
        return self._future

    @property
    def hidden(self) -> Tensor | None:
        """bool, True where a query may not look: `future` [t_q, t_k], with padding [B, 1, t_q, t_k]; or None."""
        if self._hidden is None:
            hidden = self.future
            if self.key_padding is not None:
                padding = self.key_padding.to(torch.bool)[:, None, None, :]  # [B, 1, 1, t_k]
                hidden = padding if hidden is None else padding | hidden  # [B, 1, t_q, t_k]
            self._hidden = hidden
        return self._hidden

    @property
    def sdpa_mask(self) -> Tensor | None:
        """score_bias (or 0) with -inf where hidden, [(B,) H or 1, t_q, t_k]; None when SDPA needs no mask."""
        if self._sdpa_mask is None and not self.sdpa_is_causal:
            mask = self.score_bias
            hidden = self.hidden
            if hidden is not None:
                if mask is None:
                    mask = torch.zeros(self.t_q, self.t_k, device=self.device, dtype=self.dtype)
                mask = mask.masked_fill(hidden, float("-inf"))
            self._sdpa_mask = mask
        return self._sdpa_mask


def attention_pattern(q: Tensor, k: Tensor, mask: AttentionMask) -> Tensor:
    """The weights α [B, H, Tq, Tk] of queries q [B, H, Tq, hd] over keys k [B, H, Tk, hd]: each row sums to 1."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # q·k/√hd, [B, H, Tq, Tk]
    if mask.score_bias is not None:
        scores = scores + mask.score_bias  # ALiBi: [H, Tq, Tk] broadcast over the batch
    if mask.hidden is not None:
        scores = scores.masked_fill(mask.hidden, float("-inf"))  # never look ahead, never at padding
    return torch.softmax(scores, dim=-1)  # each row sums to 1; -inf -> exactly 0


def mix_values(weights: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """c = α v: [B, H, Tq, Tk] @ [B, H, Tk, hd] -> [B, H, Tq, hd], with dropout on α while training."""
    mixed = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return mixed @ v


def textbook_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Attention written out step by step: returns (output [B, H, Tq, hd], weights α [B, H, Tq, Tk]).

    The weights are returned before dropout, so each row sums to 1.
    """
    weights = attention_pattern(q, k, mask)
    return mix_values(weights, v, dropout_p), weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention, self or cross, with GPT-2 parameter names (`c_attn`, `c_proj`).

    Self-attention (`cross=False`): one linear layer `c_attn` (dim -> 3·dim) makes q, k and v of x.
    Cross-attention (`cross=True`): `c_q` (dim -> dim) makes the queries of x, `c_kv` (dim -> 2·dim)
    the keys and values of the `context` (the encoder's output). Positional encodings act on
    self-attention only (see `PositionalEncoding`): a query's and a key's positions count along two
    different sequences, so their difference means nothing. `layer_index` picks the layer's KVCache slot.
    Hook points: see the module docstring; `head_results(z)` turns `hook_z` into each head's write to
    the stream (TransformerLens' `hook_result`).
    """

    HOOK_ORDER = ("hook_q", "hook_k", "hook_v", "hook_pattern", "hook_z")

    def __init__(self, config: ModelConfig, layer_index: int = 0, *, cross: bool = False) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.layer_index = layer_index
        self.dropout_p = config.dropout
        self.cross = cross
        if cross:
            self.c_q = nn.Linear(config.dim, config.dim, bias=config.bias)  # queries of the decoder's tokens
            self.c_kv = nn.Linear(config.dim, 2 * config.dim, bias=config.bias)  # keys, values of the source
        else:
            self.c_attn = nn.Linear(config.dim, 3 * config.dim, bias=config.bias)  # q, k, v for all heads
        self.c_proj = nn.Linear(config.dim, config.dim, bias=config.bias)  # mixes the heads' outputs
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()  # [B, T, H, hd]
        self.hook_pattern = HookPoint()  # α [B, H, Tq, Tk]
        self.hook_z = HookPoint()  # [B, T, H, hd]

    def _heads(self, y: Tensor, points: tuple[HookPoint, ...]) -> tuple[Tensor, ...]:
        """[B, T, n·C] -> n tensors [B, H, T, hd], with views only (so backward stacks gradients in place);
        part i passes hook point points[i] as [B, T, H, hd] on the way."""
        batch, t, _ = y.shape
        parts = y.view(batch, t, len(points), self.n_heads, self.head_dim).unbind(2)  # n x [B, T, H, hd]
        return tuple(point(part).transpose(1, 2) for part, point in zip(parts, points, strict=True))

    def head_results(self, z: Tensor) -> Tensor:
        """What each head writes to the stream: z [..., H, hd] (`hook_z`) -> [..., H, C], the slice of c_proj
        that reads head h applied to its output alone (the bias, shared by the heads, left out). Summed over
        the heads, plus c_proj's bias, it is the layer's output. Needs a float c_proj (not an int8 one)."""
        weight = self.c_proj.weight.view(-1, self.n_heads, self.head_dim)  # [C, H, hd]
        return torch.einsum("...hd,chd->...hc", z, weight.to(z.dtype))

    def forward(
        self,
        x: Tensor,
        mask: AttentionMask | None = None,
        *,
        context: Tensor | None = None,
        positions: PositionalEncoding | None = None,
        cache: KVCache | None = None,
        textbook: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from x [B, T, C]; return (output [B, T, C], weights [B, H, T, Tk] or None).

        Self-attention: `mask` defaults to the causal mask at the cache's position; `positions`
        rotates q and k (RoPE); `cache` stores this call's keys and values at slots
        mask.start_pos.. (the caller advances `cache.length`). Cross-attention: keys and values
        come from `context` [B, S, C], or from `cache.cross` once computed; `mask` defaults to every
        key visible. The weights come back when `textbook` is true (the output is then α v, the textbook
        path) or a hook is set on `hook_pattern` (the output is α v only if a hook rewrote α; SDPA's if
        the hooks only read it). Otherwise the output is SDPA's and the weights None.
        """
        batch, t, dim = x.shape
        if self.cross:
            if positions is not None:
                raise ValueError("positional encodings act on self-attention only; pass positions=None")
            q, k, v = self._cross_qkv(x, context, cache)
            if mask is None:
                mask = AttentionMask(t, t_k=k.shape[2], causal=False, device=x.device, dtype=x.dtype)
        else:
            if mask is None:
                start = cache.length if cache is not None else 0
                bias = positions.score_bias(t, start + t, start) if positions is not None else None
                mask = AttentionMask(t, start, bias, device=x.device, dtype=x.dtype)
            start = mask.start_pos
            # Unbinding dim 2 of c_attn's output (not a permuted copy): backward stacks the three
            # gradients straight into its [B, T, 3C] layout.
            q, k, v = self._heads(self.c_attn(x), (self.hook_q, self.hook_k, self.hook_v))  # 3 x [B, H, T, hd]
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
        if textbook or self.hook_pattern.fns is not None:
            pattern = attention_pattern(q, k, mask)
            version = pattern._version  # bumped by an in-place edit
            weights = self.hook_pattern(pattern)
            rewritten = weights is not pattern or pattern._version != version
            # Mix with α itself when asked to or when a hook rewrote it; a hook that only read it leaves the
            # output to the fused kernel, so reading the patterns does not move the logits by a bit.
            out = mix_values(weights, v, dropout_p) if textbook or rewritten else self._sdpa(q, k, v, mask, dropout_p)
        else:
            out = self._sdpa(q, k, v, mask, dropout_p)
        z = self.hook_z(out.transpose(1, 2))  # each head's output: [B, T, H, hd]
        out = self.c_proj(z.reshape(batch, t, dim))  # the heads concatenated [B, T, H·hd], mixed
        if self.dropout_p > 0:
            out = F.dropout(out, self.dropout_p, self.training)
        return out, weights

    @staticmethod
    def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, dropout_p: float) -> Tensor:
        """The fused kernel: [B, H, Tq, hd]. Under bf16 autocast on a CPU it runs in fp32: that kernel's
        backward is several times slower in bf16 than in fp32 at these sizes (docs/decisions.md), while
        the projections around it keep bf16's fast matmuls."""
        attn_mask = mask.sdpa_mask
        if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=None if attn_mask is None else attn_mask.float(),
                    dropout_p=dropout_p, is_causal=mask.sdpa_is_causal)
        if attn_mask is not None and attn_mask.dtype != q.dtype:
            attn_mask = attn_mask.to(q.dtype)  # e.g. under autocast
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=mask.sdpa_is_causal)

    def _cross_qkv(self, x: Tensor, context: Tensor | None, cache: KVCache | None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries of x; keys and values of the context, computed once per generation when a cache is given."""
        (q,) = self._heads(self.c_q(x), (self.hook_q,))  # [B, H, T, hd]
        stored = cache.cross[self.layer_index] if cache is not None else None
        if stored is not None:
            k, v = stored
        else:
            if context is None:
                raise ValueError("cross-attention needs the encoder's output (context) at its first call")
            k, v = self._heads(self.c_kv(context), (self.hook_k, self.hook_v))  # 2 x [B, H, S, hd]
            if cache is not None:
                cache.cross[self.layer_index] = (k, v)
        return q, k, v
