"""Configuration as dataclasses that round-trip through `config.json`.

`ModelConfig` fixes the shape of a network: with it and the weights, a model can be rebuilt
exactly. `TrainConfig` records how it was trained, so a run can be resumed or repeated.
Both are plain dataclasses -- no globals, no environment variables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from minitx.errors import UserError

POSITIONAL_ENCODINGS = ("sinusoidal", "learned", "rope", "alibi", "none")
#: The MLP's nonlinearity: "gelu" is the exact x·Φ(x); "gelu_tanh" is GPT-2's tanh approximation of it.
ACTIVATIONS = ("gelu", "gelu_tanh")


@dataclass
class ModelConfig:
    """The shape of a decoder-only transformer.

    Attributes:
        vocab_size: number of distinct token ids (rows of the embedding table).
        block_size: the longest context, in tokens, the model attends over.
        n_layers: number of transformer blocks stacked on top of each other.
        n_heads: attention heads per block; each works in `dim // n_heads` dimensions.
        dim: width of the residual stream (the embedding size).
        pos: how the model learns where a token stands: one of POSITIONAL_ENCODINGS.
        dropout: dropout probability used while training (0 disables it).
        mlp_ratio: hidden width of the MLP as a multiple of `dim`.
        bias: whether linear layers and LayerNorms have bias terms.
        activation: the MLP's nonlinearity, one of ACTIVATIONS ("gelu_tanh" for imported GPT-2 weights).
        tie_embeddings: the output layer reuses the token embedding matrix (weight tying); False
            gives it a matrix of its own, as some imported checkpoints have.
    """

    vocab_size: int
    block_size: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dim: int = 128
    pos: str = "learned"
    dropout: float = 0.0
    mlp_ratio: int = 4
    bias: bool = True
    activation: str = "gelu"
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError naming the first impossible setting."""
        if self.pos not in POSITIONAL_ENCODINGS:
            choices = ", ".join(POSITIONAL_ENCODINGS)
            raise UserError(f"unknown positional encoding {self.pos!r}; choose one of {choices}")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "dim", "mlp_ratio"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise UserError(f"dim ({self.dim}) must be divisible by heads ({self.n_heads})")
        if self.pos == "rope" and (self.dim // self.n_heads) % 2:
            raise UserError(f"rope needs an even head size; dim/heads = {self.dim // self.n_heads}")
        if self.pos == "sinusoidal" and self.dim % 2:
            raise UserError(f"sinusoidal positions need an even dim, got {self.dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass
class TrainConfig:
    """How a model is trained (AdamW, warmup then cosine decay, periodic evaluation)."""

    steps: int = 2000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    eval_every: int = 250
    eval_batches: int = 20
    save_every: int = 500
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"
    compile: bool | None = None  # None: auto (see train.should_compile)
    threads: int = 0
    doc_aligned: bool = False  # windows start only at <|doc|> (see batches.py); measured not to pay
    preset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "batch-size": self.batch_size >= 1,
            "grad-accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "min-lr": 0 <= self.min_lr <= self.lr,
            "warmup": self.warmup >= 0,
            "weight-decay": self.weight_decay >= 0,
            "beta2": 0 < self.beta2 < 1,
            "grad-clip": self.grad_clip >= 0,
            "val-fraction": 0 < self.val_fraction < 1,
            "eval-every": self.eval_every >= 1,
            "eval-batches": self.eval_batches >= 1,
            "save-every": self.save_every >= 1,
        }
        for flag, ok in checks.items():
            if not ok:
                value = getattr(self, flag.replace("-", "_"))
                raise UserError(f"--{flag} has an impossible value: {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _from_dict(cls: type, d: dict[str, Any]):  # noqa: ANN202 - generic helper
    """Build a dataclass from a dict, ignoring keys it does not know (forward compatibility)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------
# Presets: named model sizes with a training recipe that suits them. Flags given on the command line
# override a preset's values. `expected_val_loss` is the band of validation losses measured for the
# preset on the built-in corpus (see docs/decisions.md), shown beside the live value while training.

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "about": "2 layers, 64 wide: trains in seconds, for tests and first looks",
        "model": {"n_layers": 2, "n_heads": 4, "dim": 64, "block_size": 64},
        "train": {"steps": 300, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup": 30, "eval_every": 100},
        "vocab_size": 512,
        "expected_val_loss": (2.52, 2.60),
    },
    "small": {
        "about": "the default: 4 layers, 128 wide; about 3 minutes on a 2-core CPU",
        "model": {"n_layers": 4, "n_heads": 4, "dim": 128, "block_size": 128},
        "train": {"steps": 2000, "batch_size": 16, "lr": 5e-3, "min_lr": 5e-4, "warmup": 100, "eval_every": 250},
        "vocab_size": 1024,
        "expected_val_loss": (2.52, 2.59),
    },
    "nanogpt-cpu": {
        "about": "nanoGPT's CPU Shakespeare shape: 4 layers, 4 heads, 128 wide, block 64",
        "model": {"n_layers": 4, "n_heads": 4, "dim": 128, "block_size": 64, "bias": False},
        "train": {"steps": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "beta2": 0.99},
        "vocab_size": 1024,
        "expected_val_loss": (2.61, 2.68),
    },
    "medium": {
        "about": "6 layers, 384 wide, block 256 (nanoGPT's GPU Shakespeare shape): wants a GPU",
        "model": {"n_layers": 6, "n_heads": 6, "dim": 384, "block_size": 256, "dropout": 0.2},
        "train": {"steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "beta2": 0.99},
        "vocab_size": 2048,
        "expected_val_loss": None,
    },
}
DEFAULT_PRESET = "small"


def preset(name: str) -> dict[str, Any]:
    """Look up a preset by name (UserError listing the choices if unknown)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def make_train_config(preset_name: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a preset's recipe, then the flags the user gave (None means 'not given')."""
    name = preset_name or DEFAULT_PRESET
    values = {**preset(name)["train"], **{k: v for k, v in overrides.items() if v is not None}}
    cfg = TrainConfig(**values, preset=name)
    cfg.extra["steps_given"] = overrides.get("steps") is not None
    cfg.validate()
    return cfg
