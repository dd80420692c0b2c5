"""The residual stream, reached from outside the model with hooks: what the lens, attribution and patching read.

A pre-LN model is a running sum (see `minitx.model.gpt`):

    x_0 = embedding (+ positions, for the kinds that add them)       the input of block 0
    x_{l+1} = x_l + attn_l(ln_1(x_l)) + mlp_l(ln_2(x_l + attn_l(...)))  the output of block l
    logits = lm_head(ln_f(x_L))

so x_L = x_0 + Σ_l (attn_l + mlp_l), and attn_l = Σ_h c^(h) W_O^(h)ᵀ + b_O: every head adds its own
vector. Nothing here edits the model: forward (pre-)hooks on stable module names read or rewrite
these tensors while one forward pass runs, and are removed afterwards (even after an error).

`Stack` names the pieces once -- the blocks, each block's attention modules (self-attention "attn";
"cross_attn" too where a block has one), the final norm and the output layer -- so a model with the
same block structure (a decoder of an encoder-decoder) is read the same way.

Example (the stream of a 2-layer model has 3 points; the last one, read out, is the logits):
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT
    >>> model = GPT(ModelConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, dim=8)).eval()
    >>> stream, logits = residual_stream(model, torch.tensor([[1, 2, 3]]))
    >>> tuple(stream.shape), bool((read_out(decoder_stack(model), stream[-1]) - logits).abs().max() < 1e-6)
    ((3, 1, 3, 8), True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from minitx.model import GPT

#: The attention modules a block may hold, in the order the grids show them.
ATTENTION_NAMES = ("attn", "cross_attn")


@dataclass(frozen=True)
class Stack:
    """The pieces of a model the inspection hooks: blocks, final norm, output layer, and head sizes."""

    blocks: list[nn.Module]
    final_norm: nn.Module
    unembed: nn.Module
    n_heads: int
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def attentions(self, layer: int) -> list[tuple[str, nn.Module]]:
        """The attention modules of block `layer` as (name, module): [("attn", ...)] (+ "cross_attn")."""
        block = self.blocks[layer]
        return [(name, getattr(block, name)) for name in ATTENTION_NAMES if hasattr(block, name)]


def decoder_stack(model: GPT) -> Stack:
    """The `Stack` of a decoder-only GPT (`model.transformer.h`, `.ln_f`, `model.lm_head`), or of a model's
    `decoder` when it has one with the same names (an encoder-decoder's decoder reads out the same way)."""
    body = model.transformer if hasattr(model, "transformer") else model.decoder
    config = model.config
    return Stack(list(body.h), body.ln_f, model.lm_head, config.n_heads, config.dim // config.n_heads)


def read_out(stack: Stack, x: Tensor) -> Tensor:
    """The logits the model would give if `x` [..., C] were the final residual: lm_head(ln_f(x))."""
    return stack.unembed(stack.final_norm(x))


def block_output(output: Any) -> Tensor:
    """A block's output tensor: blocks return (x, weights) here; a plain tensor is accepted too."""
    return output[0] if isinstance(output, tuple) else output


def with_block_output(output: Any, x: Tensor) -> Any:
    """`output` with its residual tensor replaced by `x` (same tuple shape as the block returned)."""
    return (x, *output[1:]) if isinstance(output, tuple) else x


@contextmanager
def hooks(registrations: list[Callable[[], torch.utils.hooks.RemovableHandle]]) -> Iterator[None]:
    """Register every hook (each a zero-argument function returning its handle); remove them all on exit."""
    handles = []
    try:
        for register in registrations:
            handles.append(register())
        yield
    finally:
        for handle in handles:
            handle.remove()


def stream_hooks(stack: Stack, record: Callable[[int, Tensor], Tensor | None]) -> list[Callable[[], Any]]:
    """Hooks that call record(point, x) on the stream at points 0..L (0: block 0's input; p: block p-1's
    output). A tensor record returns replaces x there (patching); None leaves it."""

    def before_first(_module: nn.Module, inputs: tuple) -> tuple | None:
        new = record(0, inputs[0])
        return None if new is None else (new, *inputs[1:])

    def after(point: int) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: tuple, output: Any) -> Any:
            new = record(point, block_output(output))
            return None if new is None else with_block_output(output, new)

        return hook

    registrations: list[Callable[[], Any]] = [lambda: stack.blocks[0].register_forward_pre_hook(before_first)]
    for layer, block in enumerate(stack.blocks):
        registrations.append(lambda block=block, layer=layer: block.register_forward_hook(after(layer + 1)))
    return registrations


def run_model(model: nn.Module, idx: Tensor) -> Tensor:
    """The model's logits for `idx` [B, T] in eval mode without gradients (the previous mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, _ = model(idx.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
    return logits


def residual_stream(model: GPT, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The stream at every point for `idx` [B, T]: ([L+1, B, T, C], the model's logits [B, T, V])."""
    stack = decoder_stack(model)
    points: dict[int, Tensor] = {}

    def keep(point: int, x: Tensor) -> None:
        points[point] = x.detach()

    with hooks(stream_hooks(stack, keep)):
        logits = run_model(model, idx)
    return torch.stack([points[p] for p in range(stack.n_layers + 1)]), logits
