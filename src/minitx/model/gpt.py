"""The decoder-only transformer (GPT): embeddings, a stack of residual blocks, a tied output layer.

    idx [B, T] --wte--> x [B, T, C] --(+ positions)--> block_1 .. block_L --ln_f--> lm_head --> logits [B, T, V]

The residual stream x is a running sum that every block reads from and adds to:

    x = x + attn(ln_1(x))      tokens exchange information (the only cross-token step)
    x = x + mlp(ln_2(x))       each token thinks on its own

Pre-LN: each LayerNorm sits inside its branch, so the stream itself is never normalized and deep
stacks train stably. Weight tying: `lm_head` scores each token by a dot product with its row of
`wte`, one matrix for reading tokens in and writing them out. Parameter names follow GPT-2
(`transformer.wte`, `.wpe`, `.h.{i}.ln_1`, `.attn.c_attn`, ..., `lm_head`); the positional module
is `transformer.wpe` for learned positions and `transformer.pos` for the others. Hook points
(`minitx.model.hooks`) carry TransformerLens' names -- `hook_embed`, `blocks.{i}.hook_resid_pre`,
`blocks.{i}.attn.hook_pattern`, ..., `hook_final` -- and hold no parameters, so the state_dict is
GPT-2's. The longer story of each piece: docs/model.md; the hook names and shapes: docs/hooks.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import ModelConfig
from minitx.model.attention import AttentionMask, KVCache, MultiHeadAttention
from minitx.model.decode import (
    GELU_APPROXIMATION,
    DecodePlan,
    decode_layer,
    decode_mlp,
    decode_self_attention,
    linear_function,
)
from minitx.model.hooks import BlockStack, HookedModel, HookPoint
from minitx.model.norm import flat_decode, make_final_norm, make_norm, norm_place
from minitx.model.positions import PositionalEncoding, build_positional_encoding, check_positions, encoding_class


class MLP(nn.Module):
    """Position-wise feed-forward network: dim -> mlp_ratio·dim -> GELU -> dim.

    GELU is x·Φ(x) with Φ the normal CDF. The default, "gelu", computes it exactly; "gelu_tanh" is
    GPT-2's approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), which weights imported from
    GPT-2 were trained with (the two differ by up to ~5e-4; their speeds are in docs/decisions.md).
    Hook points: `hook_pre` (before GELU) and `hook_post` (after it), [B, T, mlp_ratio·dim].
    """

    HOOK_ORDER = ("hook_pre", "hook_post")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.dim
        self.c_fc = nn.Linear(config.dim, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.dim, bias=config.bias)
        self.dropout_p = config.dropout
        self.approximate = GELU_APPROXIMATION[config.activation]
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.hook_post(F.gelu(self.hook_pre(self.c_fc(x)), approximate=self.approximate))  # [B, T, 4C]
        x = self.c_proj(hidden)  # [B, T, C]
        if self.dropout_p > 0:  # skipped entirely when dropout is off: no kernel call at all
            x = F.dropout(x, self.dropout_p, self.training)
        return x


def gpt2_init(model: nn.Module, n_residual_branches: int) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights, zero biases, smaller residual projections.

    Every `c_proj` adds one branch's output to the residual stream, so a stack with N such branches
    has N random contributions in the stream at init; scaling those weights by 1/√N keeps the
    stream's size independent of depth (a GPT of L blocks has N = 2L).
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    residual_std = 0.02 / math.sqrt(n_residual_branches)
    for name, param in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(param, mean=0.0, std=residual_std)


class Block(nn.Module):
    """One transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) -- pre-LN, the default.

    `config.norm` moves the norms (`minitx.model.norm`): post gives ln_1(x + attn(x)), then
    ln_2(x + mlp(x)); none drops them (ln_1, ln_2 are identities without parameters). `config.norm_kind`
    rms makes them RMSNorms. The place object (`self.place`) owns the residual form.

    Hook points on the stream [B, T, C], in forward order: `hook_resid_pre` (the block's input),
    `attn.*`, `hook_attn_out` (attention's output), `hook_resid_mid` (x + that), `mlp.*`,
    `hook_mlp_out`, `hook_resid_post` (the block's output).
    """

    HOOK_ORDER = ("hook_resid_pre", "attn", "hook_attn_out", "hook_resid_mid", "mlp", "hook_mlp_out",
                  "hook_resid_post")

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.place = norm_place(config)
        self.ln_1 = make_norm(config)
        self.attn = MultiHeadAttention(config, layer_index)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_mid = HookPoint(), HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor, mask: AttentionMask, positions: PositionalEncoding, cache: KVCache | None
                ) -> Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(self.place.residual(
            x, self.ln_1, lambda h: self.hook_attn_out(self.attn(h, mask, positions=positions, cache=cache)[0])))
        return self.hook_resid_post(self.place.residual(x, self.ln_2, lambda h: self.hook_mlp_out(self.mlp(h))))


class GPT(HookedModel, nn.Module):
    """A decoder-only transformer language model, with named hook points (`minitx.model.hooks`).

    Example:
        >>> model = GPT(ModelConfig(vocab_size=65, block_size=16, n_layers=2, n_heads=2, dim=32))
        >>> idx, targets = torch.randint(65, (2, 3, 8))   # [B=3, T=8] token ids each
        >>> logits, loss = model(idx, targets)
        >>> logits.shape                                  # a score for every token of the vocabulary
        torch.Size([3, 8, 65])
        >>> abs(loss.item() - math.log(65)) < 0.2         # at init every token is about as likely
        True
        >>> _, cache = model.run_with_cache(idx, names=["blocks.1.attn.hook_pattern"])
        >>> cache["blocks.1.attn.hook_pattern"].shape      # [B, H, T, T]: every head's weights α
        torch.Size([3, 2, 8, 8])

    Activations are read or rewritten through hook points: `run_with_cache`, `run_with_hooks`,
    `hooks` (see `HookedModel`); their names and shapes are in docs/hooks.md.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self._positions_key = encoding_class(config.pos).parameter_key
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.dim),
                self._positions_key: build_positional_encoding(config),
                "h": nn.ModuleList(Block(config, i) for i in range(config.n_layers)),
                "ln_f": make_final_norm(config),  # an identity for post-LN and none
            }
        )
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # weight tying: one Parameter, two roles
        self.dropout_p = config.dropout
        self.hook_embed = HookPoint()  # the token embedding with the positions added (learned, sinusoidal)
        self.hook_final = HookPoint()  # ln_f's output, what lm_head reads
        self._init_weights()

    @property
    def positions(self) -> PositionalEncoding:
        """The positional encoding module (`transformer.wpe` or `transformer.pos`)."""
        return self.transformer[self._positions_key]

    def _init_weights(self) -> None:
        """GPT-2 initialisation (`gpt2_init`): each block adds two `c_proj` outputs to the stream."""
        gpt2_init(self, n_residual_branches=2 * self.config.n_layers)

    def block_stacks(self) -> list[BlockStack]:
        """The one stack of blocks, hook names without a prefix (`hook_embed`, `blocks.{i}.…`, `hook_final`)."""
        return [BlockStack("", self.hook_embed, self.transformer.h, self.transformer.ln_f, self.hook_final)]

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Next-token logits for every position, and the loss if targets are given.

        Args:
            idx: token ids [B, T].
            targets: the next token at every position [B, T]; -1 marks positions to ignore.
                The loss is the mean cross-entropy over all other positions.
            cache: a KVCache; positions start at cache.length, and this call's keys and values
                are appended to it.
            last_only: compute logits for the last position only ([B, 1, V]) -- all a sampler needs.

        Returns:
            (logits [B, T, V] or [B, 1, V], loss or None)
        """
        batch, t = idx.shape
        start_pos = 0 if cache is None else cache.length
        check_positions(start_pos, t, self.config.block_size)
        if cache is not None and cache.batch_size != batch:
            raise ValueError(f"the cache holds {cache.batch_size} sequences but idx has {batch}")
        if last_only and targets is not None:
            raise ValueError("last_only=True drops the logits a loss needs; pass targets=None")
        positions = self.positions

        x = self.transformer.wte(idx)  # [B, T, C]
        x = self.hook_embed(positions.add_to_embeddings(x, start_pos))
        if self.dropout_p > 0:
            x = F.dropout(x, self.dropout_p, self.training)
        score_bias = positions.score_bias(t, start_pos + t, start_pos)
        mask = AttentionMask(t, start_pos, score_bias, device=x.device, dtype=x.dtype)  # shared by all layers

        for block in self.transformer.h:
            x = block(x, mask, positions, cache)
        if cache is not None:
            cache.length += t

        if last_only:
            x = x[:, -1:, :]  # [B, 1, C]
        logits = self.lm_head(self.hook_final(self.transformer.ln_f(x)))  # [B, T, V]
        loss = None
        if targets is not None:
            flat = logits.view(-1, logits.shape[-1]).float()  # the loss in fp32 even for a bf16 model
            loss = F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def decode_plan(self) -> DecodePlan:
        """Each block's pieces and the output layer for `decode_next`, looked up once per generation, not per token.

        The flat step is written for pre-LN LayerNorm (`minitx.model.norm.flat_decode`); for other norms the
        plan has no layers and `decode_next` runs the cached forward pass instead."""
        if not flat_decode(self.config):
            return DecodePlan([], linear_function(self.lm_head))
        approximate = GELU_APPROXIMATION[self.config.activation]
        return DecodePlan([decode_layer(block, approximate) for block in self.transformer.h],
                          linear_function(self.lm_head))

    @torch.no_grad()
    def decode_next(self, idx: Tensor, cache: KVCache, plan: DecodePlan | None = None) -> Tensor:
        """Logits [B, V] for one new token per sequence, idx [B, 1], after the tokens in `cache`.

        The same arithmetic as `forward(idx, cache=cache, last_only=True)` -- tests hold the two
        within 1e-5 for every positional encoding -- written as one flat loop for the hot path of
        generation: 2-D activations [B, C], no nn.Module calls, no mask object (a single query sees
        every cached key, so only ALiBi's bias is needed), keys and values written straight into
        their cache slot: at batch 1 the Python work around a hundred small kernels is a real share
        of the step (docs/decisions.md). `plan` is `decode_plan()`, built once by the caller (here,
        if not given). Inference only: no dropout, no attention weights.
        """
        t = idx.shape[1]
        if t != 1:
            raise ValueError(f"decode_next feeds exactly one token per sequence, got {t}")
        if not flat_decode(self.config):  # post-LN, no norm or RMSNorm: the same numbers through forward
            return self.forward(idx, cache=cache, last_only=True)[0][:, -1]
        pos = cache.length
        check_positions(pos, 1, self.config.block_size)
        n_heads, dim = self.config.n_heads, self.config.dim
        positions = self.positions
        bias = positions.score_bias(1, pos + 1, pos)  # [H, 1, pos+1] for ALiBi, else None

        x = F.embedding(idx, self.transformer.wte.weight)  # [B, 1, C]
        x = positions.add_to_embeddings(x, pos)[:, 0]  # [B, C]
        plan = plan if plan is not None else self.decode_plan()
        for i, layer in enumerate(plan.layers):
            x = decode_self_attention(layer, x, cache, i, positions, bias, n_heads)
            x = decode_mlp(layer, x)
        cache.length += 1
        ln_f = self.transformer.ln_f
        return plan.head(F.layer_norm(x, (dim,), ln_f.weight, ln_f.bias, ln_f.eps))  # [B, V]

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Count parameters (a tied wte/lm_head matrix once).

        exclude_embeddings=True leaves out the token table and the learned position table: the
        "non-embedding" count that scaling laws are stated in (an untied lm_head is counted).
        """
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.transformer.wte.weight.numel()
            total -= sum(p.numel() for p in self.positions.parameters())  # a learned table; the others have none
        return total
