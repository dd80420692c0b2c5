"""The encoder-decoder transformer (Vaswani et al., 2017): read a source sentence whole, write its translation.

    memory     = Encoder(source)                       every source token sees every other (padding hidden)
    p(y_t | ·) = Decoder(y_0 .. y_t, memory)          masked self-attention over the target so far,
                                                       then cross-attention to memory, then the MLP

The encoder is a stack of the GPT's pre-LN `Block`s under a mask that is not causal and hides only
padding. A decoder block has a third sub-layer between the two:

    x = x + self_attn(ln_1(x))                         causal: target token t sees targets 0..t
    x = x + cross_attn(ln_cross(x), memory)            queries from x, keys and values from memory
    x = x + mlp(ln_2(x))

`memory` is the encoder's last layer after its final LayerNorm. Each stack has its own positional
encoding (`pos` for the decoder, `encoder_pos` for the encoder; ALiBi's distance is |i - j| in the
encoder); cross-attention has none. One tokenizer serves both languages, so one embedding table
`wte` reads the source, reads the target and, tied, scores the next target token. Hook points
(`minitx.model.hooks`) carry the GPT's names under `encoder.` and `decoder.` (`encoder.hook_memory` is
the memory; a decoder block adds `cross_attn.*`, `hook_cross_attn_out` and `hook_resid_cross`; the
names and shapes: docs/hooks.md). Longer story: docs/encoder-decoder.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import ModelConfig
from minitx.model.attention import AttentionMask, KVCache, MultiHeadAttention
from minitx.model.decode import (
    GELU_APPROXIMATION,
    DecodeLayer,
    decode_layer,
    decode_mlp,
    decode_self_attention,
    linear_function,
)
from minitx.model.gpt import Block, gpt2_init
from minitx.model.hooks import BlockStack, HookedModel, HookPoint
from minitx.model.inputs import pad_rows
from minitx.model.norm import flat_decode, make_final_norm, make_norm
from minitx.model.positions import PositionalEncoding, build_positional_encoding, check_positions


def pad_sources(sources: list[list[int]], end_id: int, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Each source with `end_id` appended, right-padded: (ids [B, S], padding [B, S], True on padding).

    The end token tells the decoder where the source stops: at the target's end, its cross-attention
    finds it. Example, end 0, pad 0: [[5, 6], [7]] -> ids [[5, 6, 0], [7, 0, 0]],
    padding [[False, False, False], [False, False, True]].
    """
    return pad_rows([[*source, end_id] for source in sources], pad_id)


class CrossLayer(NamedTuple):
    """One block's cross-attention as `EncoderDecoder.decode_next` uses it: a LayerNorm triple, linear maps."""

    ln: tuple[Tensor, Tensor | None, float]
    q: Callable[[Tensor], Tensor]  # [B, C] -> queries [B, C]
    kv: Callable[[Tensor], Tensor]  # memory rows [B·S, C] -> keys and values [B·S, 2C]
    out: Callable[[Tensor], Tensor]


class EncoderDecoderPlan(NamedTuple):
    """What `EncoderDecoder.decode_next` needs, looked up once per generation.

    `layers[i]` is block i's self-attention and MLP, exactly the GPT's `DecodeLayer`; `cross[i]` its
    cross-attention. `cross_mask` is SDPA's additive mask [B, 1, 1, S] over the source (0 on real
    tokens, -inf on padding), or None when nothing is padded; `source_padding` is the tensor it was
    made from, so a call can check it is handed the plan of its own batch.
    """

    layers: list[DecodeLayer]
    cross: list[CrossLayer]
    head: Callable[[Tensor], Tensor]  # ln_f's output [B, C] -> logits [B, V]
    cross_mask: Tensor | None
    source_padding: Tensor | None


class DecoderBlock(Block):
    """A GPT block with cross-attention between its two sub-layers (`ln_cross`, `cross_attn`).

    Hook points: the GPT block's, with `cross_attn.*`, `hook_cross_attn_out` (cross-attention's output)
    and `hook_resid_cross` (the stream after it) between `hook_resid_mid` and `mlp.*`.
    """

    HOOK_ORDER = ("hook_resid_pre", "attn", "hook_attn_out", "hook_resid_mid", "cross_attn", "hook_cross_attn_out",
                  "hook_resid_cross", "mlp", "hook_mlp_out", "hook_resid_post")

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config, layer_index)
        self.ln_cross = make_norm(config)
        self.cross_attn = MultiHeadAttention(config, layer_index, cross=True)
        self.hook_cross_attn_out, self.hook_resid_cross = HookPoint(), HookPoint()

    def forward(
        self,
        x: Tensor,
        mask: AttentionMask,
        positions: PositionalEncoding,
        cache: KVCache | None,
        memory: Tensor | None = None,
        cross_mask: AttentionMask | None = None,
    ) -> Tensor:
        """x [B, T, C] -> x after self-attention, cross-attention to `memory` and the MLP."""
        x = self.hook_resid_pre(x)
        place = self.place  # pre, post or none (minitx.model.norm): it owns the residual form
        x = self.hook_resid_mid(place.residual(
            x, self.ln_1, lambda h: self.hook_attn_out(self.attn(h, mask, positions=positions, cache=cache)[0])))
        x = self.hook_resid_cross(place.residual(  # what this target token read
            x, self.ln_cross,
            lambda h: self.hook_cross_attn_out(self.cross_attn(h, cross_mask, context=memory, cache=cache)[0])))
        return self.hook_resid_post(place.residual(x, self.ln_2, lambda h: self.hook_mlp_out(self.mlp(h))))


class EncoderDecoder(HookedModel, nn.Module):
    """An encoder-decoder transformer with a shared vocabulary and tied target embeddings.

    Example:
        >>> config = ModelConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=2, dim=32, arch="encoder-decoder")
        >>> model = EncoderDecoder(config)
        >>> source, target = torch.randint(50, (2, 7)), torch.randint(50, (2, 5))   # [B=2, S=7], [B=2, T=5]
        >>> logits, loss = model(source, target, None, target)
        >>> logits.shape                                  # a score per target position and vocabulary entry
        torch.Size([2, 5, 50])

    A training batch is (source, target_in, source_padding, targets), fed as `model(*batch)`
    (`pad_sources` makes source and source_padding; dataset/pairs.py the rest). Activations are read
    through hook points named after the module paths, e.g.
    `model.run_with_cache(source, target, padding, names=["decoder.blocks.0.cross_attn.hook_pattern"])`
    gives cross-attention's weights [B, H, T, S] (`minitx.model.hooks`, docs/hooks.md).
    """

    reads_source: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        encoder_layers = config.encoder_layers or config.n_layers
        encoder_config = dataclasses.replace(config, pos=config.encoder_pos or config.pos)
        self.wte = nn.Embedding(config.vocab_size, config.dim)  # both languages, one table
        self.encoder = nn.ModuleDict(
            {
                "pos": build_positional_encoding(encoder_config),
                "blocks": nn.ModuleList(Block(config, i) for i in range(encoder_layers)),
                "ln_f": make_final_norm(config),  # an identity for post-LN and none
                "hook_embed": HookPoint(),  # the source's embedding (+ positions, for the kinds that add them)
                "hook_memory": HookPoint(),  # ln_f's output: what cross-attention reads
            }
        )
        self.decoder = nn.ModuleDict(
            {
                "pos": build_positional_encoding(config),
                "blocks": nn.ModuleList(DecoderBlock(config, i) for i in range(config.n_layers)),
                "ln_f": make_final_norm(config),
                "hook_embed": HookPoint(),  # the target's embedding
                "hook_final": HookPoint(),  # ln_f's output, what lm_head reads
            }
        )
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # weight tying: one Parameter, two roles
        self.dropout_p = config.dropout
        # an encoder block adds 2 branches to its stream, a decoder block 3 (self, cross, MLP)
        gpt2_init(self, n_residual_branches=2 * encoder_layers + 3 * config.n_layers)

    def block_stacks(self) -> list[BlockStack]:
        """The encoder's stack (hook names `encoder.…`, ending in `encoder.hook_memory`), then the decoder's."""
        encoder, decoder = self.encoder, self.decoder
        return [
            BlockStack("encoder.", encoder["hook_embed"], encoder["blocks"], encoder["ln_f"], encoder["hook_memory"],
                       "hook_memory"),
            BlockStack("decoder.", decoder["hook_embed"], decoder["blocks"], decoder["ln_f"], decoder["hook_final"]),
        ]

    @property
    def positions(self) -> PositionalEncoding:
        """The decoder's positional encoding (the registry's `.positions`)."""
        return self.decoder["pos"]

    @property
    def encoder_positions(self) -> PositionalEncoding:
        """The encoder's positional encoding (`encoder_pos`, else the same kind as the decoder's)."""
        return self.encoder["pos"]

    def _embed(self, ids: Tensor, positions: PositionalEncoding, start_pos: int, hook: HookPoint) -> Tensor:
        x = hook(positions.add_to_embeddings(self.wte(ids), start_pos))  # [B, T, C]
        return F.dropout(x, self.dropout_p, self.training) if self.dropout_p > 0 else x

    def encode(self, source: Tensor, source_padding: Tensor | None = None) -> Tensor:
        """The memory [B, S, C] the decoder reads: source ids [B, S] through every encoder block and ln_f.

        `source_padding` [B, S] is True on padding (right-padded: real tokens keep positions 0..n-1);
        padded keys are hidden from every query. Padded rows of the memory are never read.
        """
        batch, s = source.shape
        check_positions(0, s, self.config.block_size)
        positions = self.encoder_positions
        x = self._embed(source, positions, 0, self.encoder["hook_embed"])
        bias = positions.score_bias(s, s, 0, bidirectional=True)
        mask = AttentionMask(s, 0, bias, causal=False, key_padding=source_padding, device=x.device, dtype=x.dtype)
        for block in self.encoder["blocks"]:
            x = block(x, mask, positions, None)
        return self.encoder["hook_memory"](self.encoder["ln_f"](x))

    def decode(
        self,
        target: Tensor,
        memory: Tensor | None,
        source_padding: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Next-token logits [B, T, V] (or [B, 1, V] with `last_only`) for target ids [B, T] given the memory.

        With a `cache`, positions start at cache.length and this call's self-attention keys and values
        are appended; cross-attention's keys and values of the memory are computed at the first call
        and reused after (`memory` may then be None).
        """
        batch, t = target.shape
        start_pos = 0 if cache is None else cache.length
        check_positions(start_pos, t, self.config.block_size)
        positions = self.positions
        x = self._embed(target, positions, start_pos, self.decoder["hook_embed"])
        score_bias = positions.score_bias(t, start_pos + t, start_pos)
        mask = AttentionMask(t, start_pos, score_bias, device=x.device, dtype=x.dtype)  # causal
        s = memory.shape[1] if memory is not None else cache.cross[0][0].shape[2]
        cross_mask = AttentionMask(t, t_k=s, causal=False, key_padding=source_padding, device=x.device,
                                   dtype=x.dtype)
        for block in self.decoder["blocks"]:
            x = block(x, mask, positions, cache, memory, cross_mask)
        if cache is not None:
            cache.length += t
        if last_only:
            x = x[:, -1:, :]  # [B, 1, C]
        return self.lm_head(self.decoder["hook_final"](self.decoder["ln_f"](x)))

    def new_cache(self, batch_size: int, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> KVCache:
        """An empty KV cache for `batch_size` target rows (`prefill_cross` fills its cross-attention part)."""
        return KVCache(self.config, batch_size, device=device, dtype=dtype)

    def decode_plan(self, source_padding: Tensor | None = None) -> EncoderDecoderPlan:
        """Each decoder block's pieces, the output layer and the source mask for `decode_next`, once per generation.

        `source_padding` [B, S] is True on padding; the mask made of it is the one `decode` builds
        (`AttentionMask(..., causal=False, key_padding=...).sdpa_mask`), made once rather than per step.
        """
        blocks = self.decoder["blocks"]
        flat = flat_decode(self.config)  # pre-LN LayerNorm; else decode_next steps through `decode`
        layers = [decode_layer(block, GELU_APPROXIMATION[self.config.activation]) for block in blocks] if flat else []
        cross = [
            CrossLayer(
                ln=(block.ln_cross.weight, block.ln_cross.bias, block.ln_cross.eps) if flat else None,
                q=linear_function(block.cross_attn.c_q),
                kv=linear_function(block.cross_attn.c_kv),
                out=linear_function(block.cross_attn.c_proj),
            )
            for block in blocks
        ]
        mask = None
        if source_padding is not None and bool(source_padding.any()):  # all real: SDPA needs no mask
            dtype = self.wte.weight.dtype
            zeros = torch.zeros(source_padding.shape, device=source_padding.device, dtype=dtype)
            mask = zeros.masked_fill(source_padding.to(torch.bool), float("-inf"))[:, None, None, :]  # [B, 1, 1, S]
        return EncoderDecoderPlan(layers, cross, linear_function(self.lm_head), mask, source_padding)

    @torch.no_grad()
    def prefill_cross(self, memory: Tensor, cache: KVCache, plan: EncoderDecoderPlan | None = None) -> None:
        """Every block's cross-attention keys and values of the memory [B, S, C], into `cache.cross`, once.

        The source does not change while the target is written, so neither do these: c_kv of the
        memory, split into heads [B, H, S, hd] (made contiguous here, once, rather than by every
        step's attention). `decode_next` only reads them; `decode(..., cache=cache)` reuses them too.
        """
        plan = plan if plan is not None else self.decode_plan()
        batch, s, dim = memory.shape
        n_heads, head_dim = self.config.n_heads, self.config.head_dim
        rows = memory.reshape(batch * s, dim)  # a matrix, as every plan function takes (the int8 kernel needs one)
        for i, layer in enumerate(plan.cross):
            kv = layer.kv(rows).view(batch, s, 2, n_heads, head_dim).permute(2, 0, 3, 1, 4)  # [2, B, H, S, hd]
            kv = kv.contiguous()
            cache.cross[i] = (kv[0], kv[1])

    @torch.no_grad()
    def decode_next(
        self, idx: Tensor, cache: KVCache, source_padding: Tensor | None = None, plan: EncoderDecoderPlan | None = None
    ) -> Tensor:
        """Logits [B, V] for one new target token per sentence, idx [B, 1], after the tokens in `cache`.

        The same arithmetic as `decode(idx, None, source_padding, cache=cache, last_only=True)` --
        tests hold the two within 1e-5 at every step, for every positional encoding and padded
        sources -- written as one flat loop for the hot path of translation, as `GPT.decode_next` is
        for the GPT: 2-D activations [B, C], no nn.Module calls, no mask objects, self-attention's
        key and value written straight into cache slot `cache.length`. Per decoder block:

            x = x + c_proj(SDPA(rot(q), rot(k_0..pos), v_0..pos, ALiBi bias))       q, k, v = c_attn(ln_1(x))
            x = x + c_proj(SDPA(c_q(ln_cross(x)), K_src, V_src, source mask))       K, V: `cache.cross`
            x = x + c_proj(gelu(c_fc(ln_2(x))))

        then ln_f and the tied output layer. The source's keys and values must already be in
        `cache.cross` (`prefill_cross`, or an earlier `decode` with the memory). `plan` is
        `decode_plan(source_padding)`, built once by the caller (here, if not given); a given plan
        must be the one made of this very `source_padding`. Inference only: no dropout, no weights.
        """
        batch, t = idx.shape
        if t != 1:
            raise ValueError(f"decode_next feeds exactly one token per sequence, got {t}")
        if cache.cross[0] is None:
            raise ValueError("decode_next reads the source from cache.cross; call prefill_cross(memory, cache) first")
        if plan is None:
            plan = self.decode_plan(source_padding)
        elif plan.source_padding is not source_padding:
            raise ValueError("the plan was made for another source_padding; pass decode_plan(source_padding)")
        if not flat_decode(self.config):  # post-LN, no norm or RMSNorm: the same numbers through decode
            return self.decode(idx, None, source_padding, cache=cache, last_only=True)[:, -1]
        pos = cache.length
        check_positions(pos, 1, self.config.block_size)
        n_heads, head_dim, dim = self.config.n_heads, self.config.head_dim, self.config.dim
        positions = self.positions
        bias = positions.score_bias(1, pos + 1, pos)  # [H, 1, pos+1] for ALiBi, else None
        cross_mask = plan.cross_mask

        x = F.embedding(idx, self.wte.weight)  # [B, 1, C]
        x = positions.add_to_embeddings(x, pos)[:, 0]  # [B, C]
        for i, (layer, cross) in enumerate(zip(plan.layers, plan.cross, strict=True)):
            x = decode_self_attention(layer, x, cache, i, positions, bias, n_heads)
            h = F.layer_norm(x, (dim,), *cross.ln)
            q = cross.q(h).view(batch, n_heads, 1, head_dim)  # [B, H, 1, hd]; no positions across languages
            source_keys, source_values = cache.cross[i]  # [B, H, S, hd]
            out = F.scaled_dot_product_attention(q, source_keys, source_values, attn_mask=cross_mask)
            x = x + cross.out(out.reshape(batch, dim))  # what this target token read from the source
            x = decode_mlp(layer, x)
        cache.length += 1
        ln_f = self.decoder["ln_f"]
        return plan.head(F.layer_norm(x, (dim,), ln_f.weight, ln_f.bias, ln_f.eps))  # [B, V]

    def forward(
        self,
        source: Tensor,
        target: Tensor,
        source_padding: Tensor | None = None,
        targets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits [B, T, V] for every target position, and the loss if `targets` [B, T] are given.

        `target` is the decoder's input (the start token, then the translation); `targets` the token
        each position should predict, -1 where none (padding): the loss is the mean cross-entropy
        over the target's real tokens only.
        """
        memory = self.encode(source, source_padding)
        logits = self.decode(target, memory, source_padding)
        loss = None
        if targets is not None:
            flat = logits.view(-1, logits.shape[-1]).float()  # the loss in fp32 even for a bf16 model
            loss = F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Count parameters (a tied wte/lm_head once); `exclude_embeddings` leaves out wte and learned tables."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.wte.weight.numel()
            for positions in (self.encoder_positions, self.positions):  # a learned table; the others have none
                total -= sum(p.numel() for p in positions.parameters())
        return total
