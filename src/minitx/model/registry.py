"""The architecture registry: config.json's `arch` names the object that answers for a run's network.

    ARCHITECTURES    "gpt" -> DecoderOnly(), one line per architecture (model/architecture.py)
    architecture(name)          its answers: inputs, stacks, preset, commands, export (no name compared elsewhere)
    build_model(config)         the network of that shape, freshly initialised
    require_command(arch, command, where)   the one-line refusal of a command that does not serve it

This is the one place a model is made from a configuration -- training, loading a run, importing,
stretching to a longer block all come here -- so nothing outside model/ names a model class.
Every registered class takes a `ModelConfig`, has `.config`, `.positions` and `num_parameters()`,
and its `forward(*inputs, targets)` returns `(logits, loss)`, so the trainer feeds it a batch as
`model(*batch)`. Adding an architecture: docs/architecture.md ("How to add an architecture").

    >>> from minitx.config import ModelConfig
    >>> type(build_model(ModelConfig(vocab_size=50, block_size=8, n_layers=1, n_heads=2, dim=16))).__name__
    'GPT'
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from minitx.config import ARCHITECTURES as ARCH_NAMES
from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.model.architecture import Architecture, DecoderOnly, EncoderDecoderArchitecture
from minitx.model.positions import encoding_class
from minitx.model.rnn import RNNArchitecture, RNNSearchArchitecture

#: One object per `config.Arch`; a test checks that none is missing and that each gives every answer.
ARCHITECTURES: dict[str, Architecture] = {
    "gpt": DecoderOnly(),
    "encoder-decoder": EncoderDecoderArchitecture(),
    "rnn": RNNArchitecture(),
    "rnn-attention": RNNSearchArchitecture(),
}


def architecture(name: str) -> Architecture:
    """The architecture registered as `name` (UserError listing the known ones if there is none)."""
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def model_class(arch: str) -> type[nn.Module]:
    """The class registered for `arch` (UserError listing the known ones if there is none)."""
    return architecture(arch).model_class


def require_command(arch: str, command: str, where: str | Path) -> Architecture:
    """`arch`'s architecture when `command` serves it; else a UserError in one line naming the architectures the
    command does serve and what to run instead:

        runs/x is an encoder-decoder run and minitx generate works on a decoder-only (gpt) run only; use ...
    """
    found = architecture(arch)
    if found.serves(command):
        return found
    serving = labels([a for a in ARCHITECTURES.values() if a.serves(command)])
    raise UserError(f"{where} is {found.label} run and {command} works on {serving} run only; "
                    f"use {found.use_instead}")


def labels(architectures: list[Architecture]) -> str:
    """"a, b or c": how a refusal names the architectures that would serve ("no" when none does)."""
    names = [a.label for a in architectures]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names) or "no"


def check_model_config(config: ModelConfig) -> None:
    """UserError now, before any work, if `config` names no registered architecture or its positional kind
    cannot take its shape (building the model would fail the same way later)."""
    architecture(config.arch)
    for kind in {config.pos, getattr(config, "encoder_pos", None) or config.pos}:  # an encoder's own kind too
        encoding_class(kind).check_config(config)


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model of `config.arch` and the shape `config` gives (from the current torch seed)."""
    return model_class(config.arch)(config)


assert set(ARCHITECTURES) <= set(ARCH_NAMES), "every registered architecture needs a config.Arch entry"
