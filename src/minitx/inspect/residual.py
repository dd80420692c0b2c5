"""The residual stream, read and rewritten through hook points: what the lens, attribution and patching read.

A pre-LN model is a running sum (see `minitx.model.gpt`):

    x_0 = embedding (+ positions, for the kinds that add them)       the input of block 0
    x_{l+1} = x_l + attn_l(ln_1(x_l)) + mlp_l(ln_2(x_l + attn_l(...)))  the output of block l
    logits = lm_head(ln_f(x_L))

so x_L = x_0 + Σ_l (attn_l + mlp_l), and attn_l = Σ_h c^(h) W_O^(h)ᵀ + b_O: every head adds its own
vector. Nothing here edits the model: the model's named hook points (`minitx.model.hooks`) read or
rewrite these tensors while one forward pass runs, and are cleared afterwards (even after an error).

`Stack` is one stack of blocks as its hook names spell it: stream point p is `blocks.{p}.hook_resid_pre`
(p < L) or `blocks.{L-1}.hook_resid_post` (p = L), each head's output `blocks.{l}.attn.hook_z`, each MLP's
`blocks.{l}.hook_mlp_out`, with the stack's prefix in front ("" for a GPT, "decoder." or "encoder." for
an encoder-decoder). An encoder-decoder's stream is its *decoder's*: a decoder block adds a third branch
between the two,

    x_{l+1} = x_l + attn_l(ln_1(x_l)) + cross_attn_l(ln_cross(·), memory) + mlp_l(ln_2(·))

so the same sum holds with every cross-attention head as one more addend, and the only way the
source reaches the decoder's stream is through those heads (the encoder's memory is their keys and
values). `Reading` is what one pass reads -- the stream's tokens, plus the encoder's source for a model
that `reads_source` -- so the lens, the attribution and the patching have one implementation for both.
The encoder is a stack of the same blocks (`encoder_stack`), so encoder-side patching rewrites its
stream through the same names.

Example (the stream of a 2-layer model has 3 points; the last one, read out, is the logits):
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT
    >>> model = GPT(ModelConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, dim=8)).eval()
    >>> stream, logits = residual_stream(model, torch.tensor([[1, 2, 3]]))
    >>> tuple(stream.shape), bool((read_out(decoder_stack(model), stream[-1]) - logits).abs().max() < 1e-6)
    ((3, 1, 3, 8), True)
    >>> decoder_stack(model).stream(2), decoder_stack(model).name(0, "attn.hook_z")
    ('blocks.1.hook_resid_post', 'blocks.0.attn.hook_z')
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.model.encoder_decoder import EncoderDecoder
    from minitx.model.hooks import BlockStack

#: The attention modules a block may hold, in the order the grids show them.
ATTENTION_NAMES = ("attn", "cross_attn")


@dataclass(frozen=True)
class Stack:
    """One stack of blocks of a model, by hook name: its prefix, blocks, final norm, the output layer, head sizes."""

    prefix: str
    blocks: list[nn.Module]
    final_norm: nn.Module
    final_name: str  # the hook point on the final norm's output: "hook_final", or "hook_memory" for an encoder
    unembed: nn.Module
    n_heads: int
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def name(self, layer: int, local: str) -> str:
        """The full hook name of `local` ("hook_mlp_out", "attn.hook_z", ...) in block `layer`."""
        return f"{self.prefix}blocks.{layer}.{local}"

    def stream(self, point: int) -> str:
        """The hook name of stream point 0..L: block `point`'s input, or (L) the last block's output."""
        if point < self.n_layers:
            return self.name(point, "hook_resid_pre")
        return self.name(self.n_layers - 1, "hook_resid_post")

    @property
    def final(self) -> str:
        """The hook name of the final norm's output (what lm_head reads, or the encoder's memory)."""
        return f"{self.prefix}{self.final_name}"

    def attentions(self, layer: int) -> list[tuple[str, nn.Module]]:
        """The attention modules of block `layer` as (name, module): [("attn", ...)] (+ "cross_attn")."""
        block = self.blocks[layer]
        return [(name, getattr(block, name)) for name in ATTENTION_NAMES if hasattr(block, name)]


def _stack(model: GPT | EncoderDecoder, stack: BlockStack) -> Stack:
    config = model.config
    return Stack(stack.prefix, list(stack.blocks), stack.final_norm, stack.final_name, model.lm_head,
                 config.n_heads, config.dim // config.n_heads)


def decoder_stack(model: GPT | EncoderDecoder) -> Stack:
    """The `Stack` whose stream becomes the logits: the model's last stack of blocks (a GPT's only one, an
    encoder-decoder's decoder, whose blocks hold `cross_attn` too)."""
    return _stack(model, model.block_stacks()[-1])


def encoder_stack(model: EncoderDecoder) -> Stack:
    """The encoder's `Stack` (the stack before the decoder's): its stream at points 0..L_enc is what encoder-side
    patching rewrites. Its last point through the final norm is the memory cross-attention reads (`final`); that
    norm acts on each source position alone, so patching that point at a position patches the memory there.
    (The encoder's stream is never read out; `unembed` is the shared embedding table all the same.)"""
    return _stack(model, model.block_stacks()[0])

class Reading(NamedTuple):
    """What one forward pass reads, a row per sequence.

    ids [B, T]: the tokens whose stream is inspected -- a GPT's text, or an encoder-decoder's decoder
    input (the start token, then the translation so far). source [B, S]: the encoder's input (each
    sentence's ids and its end token, right-padded), and source_padding [B, S] True on padding (None:
    nothing padded); both None for a GPT.
    """

    ids: Tensor
    source: Tensor | None = None
    source_padding: Tensor | None = None

    def rows(self, which: Tensor) -> Reading:
        """The same reading for rows `which` only (repeats allowed)."""
        return Reading(*(None if t is None else t[which] for t in self))

    def to(self, device: torch.device | str) -> Reading:
        return Reading(*(None if t is None else t.to(device) for t in self))

    def args(self) -> tuple[Tensor | None, ...]:
        """The model's forward inputs: (ids,) for a GPT; (source, ids, source_padding) for an encoder-decoder."""
        return (self.ids,) if self.source is None else (self.source, self.ids, self.source_padding)


def source_batch(sources: list[list[int]], width: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Encoder inputs (each already ending in its end token) right-padded with 0 to the longest (or to `width`):
    (ids [B, S], padding or None).

        >>> source_batch([[5, 6, 0], [7, 0]])
        (tensor([[5, 6, 0],
                [7, 0, 0]]), tensor([[False, False, False],
                [False, False,  True]]))
    """
    from minitx.model.inputs import pad_rows

    ids, padding = pad_rows(sources, width=width)
    return ids, (padding if bool(padding.any()) else None)


def reading(model: nn.Module, idx: Tensor, source: Tensor | list[list[int]] | None = None,
            source_padding: Tensor | None = None) -> Reading:
    """A `Reading` of `idx` [B, T] (and of `source` for an encoder-decoder: a tensor [B, S], or lists of ids
    each ending in the end token), on the model's device; a ValueError when the source is missing or extra."""
    if model.reads_source != (source is not None):
        raise ValueError("an encoder-decoder reads a source with its target; a GPT reads its text alone")
    if isinstance(source, list):
        source, source_padding = source_batch(source)
    return Reading(idx, source, source_padding).to(next(model.parameters()).device)


def forward(model: nn.Module, inputs: Reading) -> Tensor:
    """One forward pass on `inputs`: model(ids) for a GPT, model(source, ids, source_padding) for an
    encoder-decoder; its logits."""
    logits, _ = model(*inputs.args())
    return logits


def read_out(stack: Stack, x: Tensor) -> Tensor:
    """The logits the model would give if `x` [..., C] were the final residual: lm_head(ln_f(x))."""
    return stack.unembed(stack.final_norm(x))


def run_model(model: nn.Module, idx: Tensor | Reading, source: Tensor | list[list[int]] | None = None) -> Tensor:
    """The model's logits for `idx` [B, T] (with `source` for an encoder-decoder; or a whole `Reading`) in
    eval mode without gradients (the previous mode is restored)."""
    inputs = idx if isinstance(idx, Reading) else reading(model, idx, source)
    with evaluating(model), torch.no_grad():
        return forward(model, inputs)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode (no dropout) for the block; its previous mode is restored after, even on an error."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def residual_stream(model: GPT | EncoderDecoder, idx: Tensor, source: Tensor | list[list[int]] | None = None
                    ) -> tuple[Tensor, Tensor]:
    """The stream at every point for `idx` [B, T]: ([L+1, B, T, C], the model's logits [B, T, V]). For an
    encoder-decoder `idx` is the decoder's input and `source` the encoder's (see `reading`)."""
    stack = decoder_stack(model)
    names = [stack.stream(point) for point in range(stack.n_layers + 1)]
    with evaluating(model):
        logits, cache = model.run_with_cache(*reading(model, idx, source).args(), names=names)
    return torch.stack([cache[name] for name in names]), logits
