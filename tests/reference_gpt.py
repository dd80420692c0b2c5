"""A hand-written forward pass of minitx's GPT, from its parameters alone, for the inspection tests.

It computes what the lens, attribution and patching read -- the stream after the embedding and after
each block, every head's output through W_O, every MLP's output -- with plain tensor arithmetic and
the textbook attention formula, so the hooks of `minitx.inspect.residual` are checked against code
that shares nothing with them. `patch` replaces one activation on the way (head outputs and MLP
outputs at all positions, the stream at chosen positions), as activation patching does.
Learned, sinusoidal and none positions only (added to the embedding); float64 throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class Trace:
    stream: list[torch.Tensor] = field(default_factory=list)  # L+1 x [T, C]
    heads: list[torch.Tensor] = field(default_factory=list)  # L x [H, T, C]: each head's c^(h) W_O^(h)T
    attn_bias: list[torch.Tensor] = field(default_factory=list)  # L x [C]
    mlp: list[torch.Tensor] = field(default_factory=list)  # L x [T, C]
    head_inputs: list[torch.Tensor] = field(default_factory=list)  # L x [T, H*hd]: c_proj's input
    logits: torch.Tensor | None = None


def _norm(module, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + module.eps)
    if module.weight is not None:
        y = y * module.weight.double()
    if module.bias is not None:
        y = y + module.bias.double()
    return y


def _linear(module, x: torch.Tensor) -> torch.Tensor:
    y = x @ module.weight.double().T
    return y + module.bias.double() if module.bias is not None else y


@torch.no_grad()
def forward(model, ids: list[int], patch: dict | None = None) -> Trace:
    """The trace of `ids`; `patch` maps ("resid", point) -> (positions, [T, C]), ("head", layer, head) -> [T, hd]
    (that head's c slice), ("mlp", layer) -> [T, C], to be put in place of the computed values."""
    patch = patch or {}
    config = model.config
    n_heads, head_dim = config.n_heads, config.dim // config.n_heads
    idx = torch.tensor(ids)
    t = len(ids)
    with torch.no_grad():  # positions are the model's own: the kinds that add to the embedding
        x = model.positions.add_to_embeddings(model.transformer.wte.weight[idx][None], 0)[0].double()
    trace = Trace()

    def stream_point(point: int, x: torch.Tensor) -> torch.Tensor:
        if ("resid", point) in patch:
            positions, value = patch["resid", point]
            x = x.clone()
            x[positions] = value[positions]
        trace.stream.append(x)
        return x

    x = stream_point(0, x)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for layer, block in enumerate(model.transformer.h):
        qkv = _linear(block.attn.c_attn, _norm(block.ln_1, x))  # [T, 3C]
        q, k, v = qkv.split(config.dim, dim=-1)
        outputs = []
        for head in range(n_heads):
            part = slice(head * head_dim, (head + 1) * head_dim)
            scores = q[:, part] @ k[:, part].T / math.sqrt(head_dim)
            weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
            c = weights @ v[:, part]  # [T, hd]
            if ("head", layer, head) in patch:
                c = patch["head", layer, head]
            outputs.append(c)
        c_all = torch.cat(outputs, dim=-1)  # [T, H*hd]
        trace.head_inputs.append(c_all)
        w_o = block.attn.c_proj.weight.double()
        trace.heads.append(torch.stack([outputs[h] @ w_o[:, h * head_dim:(h + 1) * head_dim].T
                                        for h in range(n_heads)]))
        bias = block.attn.c_proj.bias
        trace.attn_bias.append(bias.double() if bias is not None else torch.zeros(config.dim, dtype=torch.float64))
        x = x + trace.heads[-1].sum(0) + trace.attn_bias[-1]
        hidden = F.gelu(_linear(block.mlp.c_fc, _norm(block.ln_2, x)))
        mlp = _linear(block.mlp.c_proj, hidden)
        if ("mlp", layer) in patch:
            mlp = patch["mlp", layer]
        trace.mlp.append(mlp)
        x = stream_point(layer + 1, x + mlp)
    trace.logits = _norm(model.transformer.ln_f, x) @ model.lm_head.weight.double().T
    return trace
