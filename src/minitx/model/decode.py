"""The one-token decoding step: what every generated token costs, written flat for batch 1 on a CPU.

After the prompt, each new token runs the model on a single vector per sequence: every weight
matrix is used for one matrix-vector product, so a step is bound by streaming the weights in, and
everything else -- LayerNorm, attention over the cached keys, GELU, the cache writes, the Python
that calls ~100 small kernels -- is overhead on top of that bound (the measurements:
docs/decisions.md, `bench/bench_generate.py` prints the bound and the fraction reached).

    x = wte[token] (+ positions)                                            [B, C]
    per block:  x = x + c_proj(attend(rot(q), rot(k_0..pos), v_0..pos))     q, k, v = c_attn(ln_1(x))
                x = x + c_proj(gelu(c_fc(ln_2(x))))
    logits = lm_head(ln_f(x))                                               [B, V]

`decode_plan` (on the GPT and the encoder-decoder) looks every piece up once per generation:
LayerNorm (weight, bias, eps) triples and each linear map as a plain function (`linear_function`),
so a step makes no nn.Module calls. The GPT's `decode_next` and the encoder-decoder's call
`decode_self_attention` and `decode_mlp` once per block; tests hold the result equal to the model's
forward pass with a KV cache (within 1e-5, every positional encoding).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.model.attention import KVCache
from minitx.model.positions import PositionalEncoding

#: `ModelConfig.activation` -> the `approximate` argument of F.gelu.
GELU_APPROXIMATION = {"gelu": "none", "gelu_tanh": "tanh"}


class DecodeLayer(NamedTuple):
    """One block as a one-token step uses it: LayerNorm (weight, bias, eps) triples and linear maps as functions."""

    ln_1: tuple[Tensor, Tensor | None, float]
    qkv: Callable[[Tensor], Tensor]
    attn_out: Callable[[Tensor], Tensor]
    ln_2: tuple[Tensor, Tensor | None, float]
    mlp_up: Callable[[Tensor], Tensor]  # gelu(c_fc(h)): the product and its activation, one function
    mlp_out: Callable[[Tensor], Tensor]


class DecodePlan(NamedTuple):
    """What `GPT.decode_next` needs, looked up once per generation: every block, and the output layer."""

    layers: list[DecodeLayer]
    head: Callable[[Tensor], Tensor]  # ln_f's output [B, C] -> logits [B, V]


def linear_function(layer: nn.Module, gelu: str | None = None) -> Callable[[Tensor], Tensor]:
    """A linear layer as a plain function of a matrix x [B, in] -> [B, out], skipping nn.Module's call machinery;
    with `gelu` ("none" or "tanh", F.gelu's `approximate`), gelu(linear(x)) as one function.

    At batch 1 each product is a matrix-vector product bound by streaming W in, so what counts is the
    kernel that streams fastest (measured in docs/decisions.md). On an x86 CPU with two threads or more, a
    large fp32 `nn.Linear` (`uses_onednn`) becomes oneDNN's inner product on a copy of W packed once in its
    own layout (`onednn_linear`), the GELU fused into the product's write-out: MKL's matrix-vector kernels
    run on one thread at these sizes. Otherwise on a CPU, `addmm(bias, x, Wᵀ)` with Wᵀ [in, out] copied
    once, contiguous (BLAS streams that layout faster than F.linear's [out, in] one). Either copy is a
    snapshot of the weights taken when the plan is made (a plan lives for one generation) and costs their
    memory once more. Elsewhere (a GPU) F.linear with the weight itself. A layer with an `as_function` method
    (the int8 one of `minitx.model.quantize`) says itself; any other layer keeps its forward.
    """
    product = _product_function(layer, gelu)
    if product is not None:
        return product
    plain = _linear_only(layer)
    if gelu is None:
        return plain
    return lambda x: F.gelu(plain(x), approximate=gelu)


def _product_function(layer: nn.Module, gelu: str | None) -> Callable[[Tensor], Tensor] | None:
    """oneDNN's fused product where it is the faster kernel (see `linear_function`), else None."""
    if type(layer) is not nn.Linear or not uses_onednn(layer.weight):
        return None
    return onednn_linear(layer.weight.detach(), None if layer.bias is None else layer.bias.detach(), gelu)


def _linear_only(layer: nn.Module) -> Callable[[Tensor], Tensor]:
    if type(layer) is nn.Linear:
        weight, bias = layer.weight, layer.bias
        if weight.device.type != "cpu":
            return partial(F.linear, weight=weight, bias=bias)
        transposed = weight.detach().t().contiguous()  # [in, out]
        if bias is None:
            return partial(torch.mm, mat2=transposed)
        return partial(torch.addmm, bias.detach(), mat2=transposed)
    if hasattr(layer, "as_function"):
        return layer.as_function()
    return layer.forward


#: The smallest weight (elements) worth oneDNN's product: each call costs ~15 µs before it streams anything, so
#: a small matrix (a 128-wide model's, a 65-token output layer) is faster through addmm (docs/decisions.md).
ONEDNN_MIN_ELEMENTS = 1 << 17


def uses_onednn(weight: Tensor) -> bool:
    """Whether a decode step multiplies by `weight` with oneDNN: an fp32 weight of at least ONEDNN_MIN_ELEMENTS on
    an x86 CPU, torch computing with two threads or more (at one thread MKL's kernel is as fast or faster),
    oneDNN built in."""
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.numel() >= ONEDNN_MIN_ELEMENTS
            and torch.get_num_threads() >= 2 and platform.machine().lower() in ("x86_64", "amd64")
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def onednn_linear(weight: Tensor, bias: Tensor | None, gelu: str | None = None) -> Callable[[Tensor], Tensor] | None:
    """x ↦ [gelu](x Wᵀ + b) by oneDNN's inner product, W packed once in its blocked layout; None if the build lacks it.

    The kernel Inductor calls for a frozen CPU linear (`mkldnn._linear_pointwise`), spread over torch's threads;
    its sums are the same fp32 sums in another order (tests hold the step to the forward pass within 1e-5).
    """
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight)  # no batch hint: its layout streams faster at 1
        op = torch.ops.mkldnn._linear_pointwise.default
        attr, algorithm = ("gelu", gelu) if gelu is not None else ("none", "")

        def product(x: Tensor) -> Tensor:
            return op(x, packed, bias, attr, [], algorithm)

        product(weight.new_zeros(1, weight.shape[1]))  # a build without the kernel says so here, once
    except (AttributeError, RuntimeError, TypeError):
        return None
    return product


def decode_layer(block: nn.Module, approximate: str) -> DecodeLayer:
    """A pre-LN block's self-attention and MLP pieces (`ln_1`, `attn`, `ln_2`, `mlp`) for a one-token step:
    the GPT's blocks and an encoder-decoder's decoder blocks name them alike. `approximate` is the MLP's
    GELU (`GELU_APPROXIMATION`), applied inside `mlp_up`."""
    return DecodeLayer(
        ln_1=(block.ln_1.weight, block.ln_1.bias, block.ln_1.eps),
        qkv=linear_function(block.attn.c_attn),
        attn_out=linear_function(block.attn.c_proj),
        ln_2=(block.ln_2.weight, block.ln_2.bias, block.ln_2.eps),
        mlp_up=linear_function(block.mlp.c_fc, gelu=approximate),
        mlp_out=linear_function(block.mlp.c_proj),
    )


def decode_self_attention(layer: DecodeLayer, x: Tensor, cache: KVCache, index: int,
                          positions: PositionalEncoding, bias: Tensor | None, n_heads: int) -> Tensor:
    """x + attn(ln_1(x)) for one new token per sequence, x [B, C], at position `cache.length`.

    Its key and value go straight into slot `cache.length` of layer `index`; its query (rotated by
    RoPE, if that is the kind) reads every filled slot, so no causal mask is needed, only ALiBi's `bias`.
    """
    batch, dim = x.shape
    pos = cache.length
    h = F.layer_norm(x, (dim,), *layer.ln_1)
    qkv = layer.qkv(h).view(batch, 3, n_heads, 1, dim // n_heads)  # one token: [B, 3, H, T=1, hd]
    q, k = positions.rotate_qk(qkv[:, 0], qkv[:, 1], pos)  # [B, H, 1, hd]
    keys, values = cache.k[index], cache.v[index]  # [B, H, block_size, hd]
    keys[:, :, pos : pos + 1] = k
    values[:, :, pos : pos + 1] = qkv[:, 2]
    out = F.scaled_dot_product_attention(q, keys[:, :, : pos + 1], values[:, :, : pos + 1], attn_mask=bias)
    return x + layer.attn_out(out.reshape(batch, dim))  # heads concatenated: [B, H·hd]


def decode_mlp(layer: DecodeLayer, x: Tensor) -> Tensor:
    """x + mlp(ln_2(x)) on 2-D activations [B, C], as `decode_self_attention` leaves them."""
    h = F.layer_norm(x, (x.shape[-1],), *layer.ln_2)
    return x + layer.mlp_out(layer.mlp_up(h))
