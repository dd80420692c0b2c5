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
same block structure is read the same way. An encoder-decoder's stream is its *decoder's*: a decoder
block adds a third branch between the two,

    x_{l+1} = x_l + attn_l(ln_1(x_l)) + cross_attn_l(ln_cross(·), memory) + mlp_l(ln_2(·))

so the same sum holds with every cross-attention head as one more addend, and the only way the
source reaches the decoder's stream is through those heads (the encoder's memory is their keys and
values). `Reading` is what one pass reads -- the stream's tokens, plus the encoder's source for an
encoder-decoder -- and `forward` runs either model on it, so the lens, the attribution and the
patching have one implementation for both. The encoder is a stack of the same blocks
(`encoder_stack`), so encoder-side patching rewrites its stream with the same `stream_hooks`.

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
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.model.encoder_decoder import EncoderDecoder

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


def decoder_stack(model: GPT | EncoderDecoder) -> Stack:
    """The `Stack` whose stream becomes the logits: a GPT's (`model.transformer.h`, `.ln_f`, `model.lm_head`),
    or an encoder-decoder's decoder (`model.decoder["blocks"]`, `["ln_f"]`, `model.lm_head`; its blocks
    hold `cross_attn` too)."""
    config = model.config
    if is_encoder_decoder(model):
        blocks, final_norm = model.decoder["blocks"], model.decoder["ln_f"]
    else:
        blocks, final_norm = model.transformer.h, model.transformer.ln_f
    return Stack(list(blocks), final_norm, model.lm_head, config.n_heads, config.dim // config.n_heads)


def encoder_stack(model: EncoderDecoder) -> Stack:
    """The encoder's `Stack` (`model.encoder["blocks"]`, `["ln_f"]`): its stream at points 0..L_enc is what
    encoder-side patching rewrites. Its last point through `ln_f` is the memory cross-attention reads; ln_f acts
    on each source position alone, so patching that point at a position patches the memory there. (The
    encoder's stream is never read out; `unembed` is the shared embedding table all the same.)"""
    config = model.config
    return Stack(list(model.encoder["blocks"]), model.encoder["ln_f"], model.lm_head, config.n_heads,
                 config.dim // config.n_heads)


def is_encoder_decoder(model: nn.Module) -> bool:
    """True for a model that reads a source with an encoder (its config's arch says so)."""
    return getattr(model.config, "arch", "gpt") == "encoder-decoder"


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


def source_batch(sources: list[list[int]], width: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Encoder inputs (each already ending in its end token) right-padded with 0 to the longest (or to `width`):
    (ids [B, S], padding or None).

        >>> source_batch([[5, 6, 0], [7, 0]])
        (tensor([[5, 6, 0],
                [7, 0, 0]]), tensor([[False, False, False],
                [False, False,  True]]))
    """
    width = max(max(len(s) for s in sources), width or 0)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sources], dtype=torch.long)
    padding = torch.tensor([[t >= len(s) for t in range(width)] for s in sources])
    return ids, (padding if bool(padding.any()) else None)


def reading(model: nn.Module, idx: Tensor, source: Tensor | list[list[int]] | None = None,
            source_padding: Tensor | None = None) -> Reading:
    """A `Reading` of `idx` [B, T] (and of `source` for an encoder-decoder: a tensor [B, S], or lists of ids
    each ending in the end token), on the model's device; a ValueError when the source is missing or extra."""
    if is_encoder_decoder(model) != (source is not None):
        raise ValueError("an encoder-decoder reads a source with its target; a GPT reads its text alone")
    if isinstance(source, list):
        source, source_padding = source_batch(source)
    return Reading(idx, source, source_padding).to(next(model.parameters()).device)


def forward(model: nn.Module, inputs: Reading) -> Tensor:
    """One forward pass on `inputs`: model(ids) for a GPT, model(source, ids, source_padding) for an
    encoder-decoder; its logits."""
    if inputs.source is None:
        logits, _ = model(inputs.ids)
    else:
        logits, _ = model(inputs.source, inputs.ids, inputs.source_padding)
    return logits


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


def run_model(model: nn.Module, idx: Tensor | Reading, source: Tensor | list[list[int]] | None = None) -> Tensor:
    """The model's logits for `idx` [B, T] (with `source` for an encoder-decoder; or a whole `Reading`) in
    eval mode without gradients (the previous mode is restored)."""
    inputs = idx if isinstance(idx, Reading) else reading(model, idx, source)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = forward(model, inputs)
    finally:
        model.train(was_training)
    return logits


def residual_stream(model: GPT | EncoderDecoder, idx: Tensor, source: Tensor | list[list[int]] | None = None
                    ) -> tuple[Tensor, Tensor]:
    """The stream at every point for `idx` [B, T]: ([L+1, B, T, C], the model's logits [B, T, V]). For an
    encoder-decoder `idx` is the decoder's input and `source` the encoder's (see `reading`)."""
    stack = decoder_stack(model)
    points: dict[int, Tensor] = {}

    def keep(point: int, x: Tensor) -> None:
        points[point] = x.detach()

    with hooks(stream_hooks(stack, keep)):
        logits = run_model(model, idx, source)
    return torch.stack([points[p] for p in range(stack.n_layers + 1)]), logits
