"""The model registry: config.json's `arch` names the class that builds a run's network.

    ARCHITECTURES   "gpt" -> GPT, one line per architecture
    build_model(config) -> the network of that shape, freshly initialised

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

from torch import nn

from minitx.config import ARCHITECTURES as ARCH_NAMES
from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.model.encoder_decoder import EncoderDecoder
from minitx.model.gpt import GPT
from minitx.model.positions import encoding_class

#: One class per `config.Arch`; a test checks that none is missing.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "gpt": GPT,
    "encoder-decoder": EncoderDecoder,
}


def model_class(arch: str) -> type[nn.Module]:
    """The class registered for `arch` (UserError listing the known ones if there is none)."""
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def check_model_config(config: ModelConfig) -> None:
    """UserError now, before any work, if `config` names no registered architecture or its positional kind
    cannot take its shape (building the model would fail the same way later)."""
    model_class(config.arch)
    for kind in {config.pos, getattr(config, "encoder_pos", None) or config.pos}:  # an encoder's own kind too
        encoding_class(kind).check_config(config)


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model of `config.arch` and the shape `config` gives (from the current torch seed)."""
    return model_class(config.arch)(config)


assert set(ARCHITECTURES) <= set(ARCH_NAMES), "every registered architecture needs a config.Arch entry"
