"""Where a block normalizes (`--norm`) and with what (`--norm-kind`): each choice one object.

A residual sub-layer f (attention, cross-attention, the MLP) meets its normalization in one of three places:

    pre     x = x + f(norm(x))       GPT-2, Xiong et al. 2020's Pre-LN: the stream itself is never normalized;
                                     the stack ends with a final norm (`ln_f`)
    post    x = norm(x + f(x))       the 2017 transformer's Post-LN: the stream is normalized after every sum,
                                     so each block already ends in a norm and the stack has no `ln_f`
                                     (Xiong et al.'s Post-LN; `ln_f` is an identity without parameters)
    none    x = x + f(x)             no normalization at all: every norm is an identity without parameters

and the norm is LayerNorm (Ba et al. 2016: γ ⊙ (x - mean) / σ + β) or RMSNorm (Zhang & Sennrich 2019:
γ ⊙ x / rms(x), no centring, no β). Each place is a `NormPlace` that answers the questions the rest of
minitx asks about it -- its residual form, whether the stack ends in a final norm, whether the flat
one-token decode step (model/decode.py, written for pre-LN LayerNorm) computes it, whether HF export
can write it -- so no code outside this file branches on the name, as with positional kinds.

    >>> from minitx.config import ModelConfig
    >>> config = ModelConfig(vocab_size=50, dim=8, n_heads=2, norm="post", norm_kind="rms")
    >>> norm_place(config).final_norm, type(make_norm(config)).__name__, type(make_final_norm(config)).__name__
    (False, 'RMSNorm', 'Identity')
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import ModelConfig

#: LayerNorm's and RMSNorm's epsilon: torch's LayerNorm default, so old runs load bit-identically.
NORM_EPS = 1e-5


class NormPlace:
    """Base class: where a residual sub-layer's normalization sits. Subclasses set the answers below."""

    #: `--norm`, config.json's `norm`, a member of config.NormPlace.
    name: ClassVar[str]
    #: Does the stack end with a final norm (`ln_f`) before the output layer / the memory?
    final_norm: ClassVar[bool] = False
    #: Do the blocks hold norm layers at all? (`none`: identities, no parameters.)
    normalizes: ClassVar[bool] = True
    #: One sentence for the docs and the report.
    meaning: ClassVar[str] = ""

    def residual(self, x: Tensor, norm: Callable[[Tensor], Tensor], branch: Callable[[Tensor], Tensor]) -> Tensor:
        """The stream after one sub-layer: `branch` is f (its output hooked), `norm` the block's norm for it."""
        raise NotImplementedError


class PreNorm(NormPlace):
    name = "pre"
    final_norm = True
    meaning = "x + f(norm(x)): the norm inside each branch, the stream never normalized, a final ln_f"

    def residual(self, x: Tensor, norm: Callable[[Tensor], Tensor], branch: Callable[[Tensor], Tensor]) -> Tensor:
        return x + branch(norm(x))


class PostNorm(NormPlace):
    name = "post"
    meaning = "norm(x + f(x)): the stream normalized after every residual sum, no final ln_f"

    def residual(self, x: Tensor, norm: Callable[[Tensor], Tensor], branch: Callable[[Tensor], Tensor]) -> Tensor:
        return norm(x + branch(x))


class NoNorm(NormPlace):
    name = "none"
    normalizes = False
    meaning = "x + f(x): no normalization anywhere (no parameters)"

    def residual(self, x: Tensor, norm: Callable[[Tensor], Tensor], branch: Callable[[Tensor], Tensor]) -> Tensor:
        return x + branch(x)


#: The one registry of places; adding one is a class and a line here (and a member of config.NormPlace).
PLACES: dict[str, type[NormPlace]] = {cls.name: cls for cls in (PreNorm, PostNorm, NoNorm)}


def _layer_norm(dim: int, bias: bool) -> nn.Module:
    return nn.LayerNorm(dim, eps=NORM_EPS, bias=bias)


def _rms_norm(dim: int, bias: bool) -> nn.Module:
    return nn.RMSNorm(dim, eps=NORM_EPS)  # no β: RMSNorm neither centres nor shifts


#: `--norm-kind` -> a constructor (dim, bias) -> the norm layer.
KINDS: dict[str, Callable[[int, bool], nn.Module]] = {"layer": _layer_norm, "rms": _rms_norm}


def norm_place(config: ModelConfig) -> NormPlace:
    """The config's place object (a run saved before `norm` existed reads as pre)."""
    return PLACES[getattr(config, "norm", "pre")]()


def norm_kind(config: ModelConfig) -> str:
    return getattr(config, "norm_kind", "layer")


def make_norm(config: ModelConfig) -> nn.Module:
    """One sub-layer's norm: LayerNorm or RMSNorm over `dim`, or an identity (no parameters) when the place is none."""
    if not norm_place(config).normalizes:
        return nn.Identity()
    return KINDS[norm_kind(config)](config.dim, config.bias)


def make_final_norm(config: ModelConfig) -> nn.Module:
    """The stack's final norm (`ln_f`): a norm for pre, an identity without parameters for post and none."""
    return make_norm(config) if norm_place(config).final_norm else nn.Identity()


def flat_decode(config: ModelConfig) -> bool:
    """Does model/decode.py's flat one-token step compute this model? It is written for pre-LN LayerNorm
    (F.layer_norm on (weight, bias, eps) triples); other norms step through the model's cached forward pass."""
    return norm_place(config).name == PreNorm.name and norm_kind(config) == "layer"


def hf_refusal(config: ModelConfig) -> str:
    """Why HF export cannot write this model's normalization ("" when it can: pre-LN LayerNorm, as GPT-2)."""
    if flat_decode(config):
        return ""
    return (f"--norm {norm_place(config).name} --norm-kind {norm_kind(config)} has no transformers architecture "
            "here (GPT-2, NeoX and Falcon are pre-LN LayerNorm); train with --norm pre --norm-kind layer to export")


def norm_function(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """A norm layer as a plain function of x [..., C] (LayerNorm, RMSNorm or identity), for a flat decode step."""
    if isinstance(module, nn.LayerNorm):
        return partial(F.layer_norm, normalized_shape=module.normalized_shape, weight=module.weight,
                       bias=module.bias, eps=module.eps)
    if isinstance(module, nn.RMSNorm):
        return partial(F.rms_norm, normalized_shape=module.normalized_shape, weight=module.weight, eps=module.eps)
    return module.forward
