"""Named hook points: read or rewrite any activation of one forward pass, by a TransformerLens-style name.

A `HookPoint` is the identity placed at one spot of the forward pass (`x = self.hook_resid_pre(x)`).
With no hook set it returns its input at once, without nn.Module's call machinery, so the model pays
one Python attribute test per point (bench/bench_hooks.py measures training and generation against
a model without them). With hooks set, each is called as fn(tensor, name); a returned tensor replaces
the activation from there on (patching, ablation), None leaves it (reading).

Every model that has hook points inherits `HookedModel`, which gives it

    model.hook_points()                                  {name: HookPoint}, in forward order
    model.run_with_cache(*inputs, names=None)            (logits, {name: detached tensor})
    model.run_with_hooks(*inputs, fwd_hooks=[(name, fn)])  logits of a forward with the hooks set
    with model.hooks([(name, fn)]): ...                  the hooks set for the block's duration

where `inputs` are the model's forward inputs (a GPT: idx; an encoder-decoder: source, target,
source_padding), a name may be a predicate on names, and `stop_at=name` ends the forward right after
that point (logits None): patching that needs the stream at the final norm does not run the output
layer. Hooks are removed on leaving, even after an error. The names and shapes: docs/hooks.md.

Example (read every head's pattern of block 0; replace the stream before block 1 by zeros):
    >>> import torch
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT
    >>> model = GPT(ModelConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, dim=8)).eval()
    >>> logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]), names=["blocks.0.attn.hook_pattern"])
    >>> tuple(cache["blocks.0.attn.hook_pattern"].shape)   # [B, H, Tq, Tk]
    (1, 2, 3, 3)
    >>> zeroed = model.run_with_hooks(torch.tensor([[1, 2, 3]]),
    ...                               fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, name: torch.zeros_like(x))])
    >>> bool(torch.allclose(zeroed[0, 0], zeroed[0, 1], atol=1e-6))   # block 1 sees nothing of the tokens
    True
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

#: A forward hook: fn(activation, hook name) -> a replacement, or None to leave the activation as it is.
HookFn = Callable[[Tensor, str], Tensor | None]
#: Which hook points: one exact name, or a predicate on names (e.g. `lambda name: name.endswith("hook_z")`).
NameFilter = str | Callable[[str], bool]


class HookPoint(nn.Module):
    """The identity at a named spot of the forward pass; hooks set on it read or replace the tensor there.

    No parameters and no buffers, so a model's state_dict is the same with or without hook points.
    `__call__` is overridden: an inactive point (`fns is None`) returns x straight away, skipping the
    nn.Module machinery (hook dictionaries, forward dispatch) that a module call costs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fns: list[Callable[[Tensor], Tensor | None]] | None = None

    @property
    def active(self) -> bool:
        """Whether any hook is set here (an attention layer takes its textbook path when its pattern is hooked)."""
        return self.fns is not None

    def __call__(self, x: Tensor) -> Tensor:  # the hot path: one attribute test when no hook is set
        fns = self.fns
        if fns is None:
            return x
        for fn in fns:
            out = fn(x)
            if out is not None:
                x = out
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self(x)

    def add(self, fn: Callable[[Tensor], Tensor | None]) -> None:
        """Set one more hook, called after those already set."""
        self.fns = [*(self.fns or []), fn]

    def remove(self, fn: Callable[[Tensor], Tensor | None]) -> None:
        """Take hook `fn` off (by identity); the point is inactive again once none is left."""
        left = [f for f in (self.fns or []) if f is not fn]
        self.fns = left or None


def ordered_hook_points(module: nn.Module, prefix: str) -> Iterator[tuple[str, HookPoint]]:
    """(name, point) of every HookPoint under `module`, in the forward order its class's HOOK_ORDER lists.

    HOOK_ORDER names the module's HookPoints and the children that hold more of them, in the order the
    forward pass reaches them (it need not be the order the children were registered in: a decoder
    block's cross-attention is registered after its MLP, to keep the parameters' order, but runs before).
    """
    for name in module.HOOK_ORDER:
        child = getattr(module, name)
        if isinstance(child, HookPoint):
            yield prefix + name, child
        else:
            yield from ordered_hook_points(child, f"{prefix}{name}.")


@dataclass(frozen=True)
class BlockStack:
    """One stack of pre-LN blocks as its hook names spell it: `{prefix}hook_embed`, then
    `{prefix}blocks.{i}.…` for every block, then the final norm's output `{prefix}{final_name}`.

    `prefix` is "" for a GPT, "encoder." or "decoder." for an encoder-decoder's two stacks.
    """

    prefix: str
    embed: HookPoint
    blocks: nn.ModuleList
    final_norm: nn.LayerNorm
    final: HookPoint
    final_name: str = "hook_final"

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def hook_points(self) -> Iterator[tuple[str, HookPoint]]:
        yield f"{self.prefix}hook_embed", self.embed
        for i, block in enumerate(self.blocks):
            yield from ordered_hook_points(block, f"{self.prefix}blocks.{i}.")
        yield f"{self.prefix}{self.final_name}", self.final


class _Stop(Exception):
    """Raised by the hook `stop_at` sets, after every other hook at that point ran; caught by the run."""


class HookedModel:
    """What every model with hook points offers (mixed into GPT and EncoderDecoder).

    A model answers `block_stacks()` (its stacks of blocks, in forward order; the last one's stream
    becomes the logits) and `reads_source` (whether its forward reads a source sentence before the
    tokens it predicts); the rest is written here once.
    """

    #: Whether the forward reads a source (an encoder's input) besides the tokens it scores.
    reads_source: ClassVar[bool] = False

    def block_stacks(self) -> list[BlockStack]:
        raise NotImplementedError

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by name, in the order one forward pass reaches them."""
        return {name: point for stack in self.block_stacks() for name, point in stack.hook_points()}

    def _matching(self, which: NameFilter, points: dict[str, HookPoint]) -> list[str]:
        if callable(which):
            return [name for name in points if which(name)]
        if which not in points:
            close = difflib.get_close_matches(which, list(points), n=4, cutoff=0.6)
            hint = f"; close names: {', '.join(close)}" if close else "; model.hook_points() lists them all"
            raise ValueError(f"no hook point is named {which!r}{hint}")
        return [which]

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[NameFilter, HookFn]], *, stop_at: str | None = None
              ) -> Iterator[None]:
        """Set `fwd_hooks` (each (name or predicate, fn)) for the duration of the block; all removed on leaving.

        `stop_at`: a hook point after whose hooks the forward ends by raising an internal exception,
        which `run_with_hooks` and `run_with_cache` catch (code that calls the model itself inside this
        block must not use it). Unknown names raise a ValueError before anything is set.
        """
        points = self.hook_points()
        chosen = [(name, fn) for which, fn in fwd_hooks for name in self._matching(which, points)]
        if stop_at is not None:
            self._matching(stop_at, points)
            chosen.append((stop_at, _stopper))
        added: list[tuple[HookPoint, Callable[[Tensor], Tensor | None]]] = []
        try:
            for name, fn in chosen:
                bound = _bind(fn, name)
                points[name].add(bound)
                added.append((points[name], bound))
            yield
        finally:
            for point, bound in added:
                point.remove(bound)

    def run_with_hooks(self, *inputs: Any, fwd_hooks: Sequence[tuple[NameFilter, HookFn]] = (),
                       stop_at: str | None = None, **kwargs: Any) -> Tensor | None:
        """The logits of one forward on `inputs` (and forward's keyword arguments) with `fwd_hooks` set;
        None when `stop_at` ended it early. Gradients flow as in a plain call."""
        with self.hooks(fwd_hooks, stop_at=stop_at):
            try:
                logits, _ = self(*inputs, **kwargs)
            except _Stop:
                return None
        return logits

    def run_with_cache(self, *inputs: Any, names: Sequence[str] | Callable[[str], bool] | None = None,
                       stop_at: str | None = None, grad: bool = False, **kwargs: Any
                       ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """(logits or None if stopped, {name: activation}) for the hook points `names` (None: all of them).

        Runs under torch.no_grad and keeps detached tensors, unless `grad=True`: then the activations
        are kept with their graph (to take gradients with respect to them).
        """
        cache: dict[str, Tensor] = {}

        def keep(x: Tensor, name: str) -> None:
            cache[name] = x if grad else x.detach()

        if names is None:
            wanted: list[tuple[NameFilter, HookFn]] = [(lambda _name: True, keep)]
        elif callable(names):
            wanted = [(names, keep)]
        else:
            wanted = [(name, keep) for name in names]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            logits = self.run_with_hooks(*inputs, fwd_hooks=wanted, stop_at=stop_at, **kwargs)
        return logits, cache


def _bind(fn: HookFn, name: str) -> Callable[[Tensor], Tensor | None]:
    return lambda x: fn(x, name)


def _stopper(_x: Tensor, _name: str) -> None:
    raise _Stop
