"""Configuration as dataclasses that round-trip through `config.json`, and the flags that set them.

`ModelConfig` fixes the shape of a network: with it and the weights, a model can be rebuilt
exactly. `TrainConfig` records how it was trained, so a run can be resumed or repeated.
Both are plain dataclasses -- no globals, no environment variables.

A field that the user may set on the command line carries a `Flag` in its metadata: its help text,
its `--name`, the help panel it is listed in, its choices, and whether `--resume` must keep it.
`minitx train` has one option per such field (cli.py derives them, `config_options`), so a flag is
declared once, here, beside the field it sets; a new training flag is one new field.

    >>> [option_name(f) for f in flag_fields(ModelConfig)][:3]
    ['--vocab-size', '--block-size', '--layers']

This module imports no torch: `minitx --help` reads it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from enum import Enum
from typing import Any

from minitx.device import Device, DType
from minitx.errors import UserError

# ---------------------------------------------------------------------------------------------
# Choices, and the defaults the command line shows (defined here, once, so that `--help` needs no torch).


class PositionKind(str, Enum):
    """How a model learns where a token stands (`--pos`): one class each in model/positions.py."""

    sinusoidal = "sinusoidal"
    learned = "learned"
    rope = "rope"
    alibi = "alibi"
    none = "none"


POSITIONAL_ENCODINGS = tuple(p.value for p in PositionKind)
#: The MLP's nonlinearity: "gelu" is the exact x·Φ(x); "gelu_tanh" is GPT-2's tanh approximation of it.
ACTIVATIONS = ("gelu", "gelu_tanh")


class Arch(str, Enum):
    """The architecture of a model (`--arch`, config.json's `arch`): one registered class each in model/registry.py."""

    gpt = "gpt"
    encoder_decoder = "encoder-decoder"
    rnn = "rnn"
    rnn_attention = "rnn-attention"


ARCHITECTURES = tuple(a.value for a in Arch)


class CellKind(str, Enum):
    """`--cell`: the recurrence of the rnn and rnn-attention architectures (model/rnn.py)."""

    gru = "gru"
    lstm = "lstm"


class AttentionScore(str, Enum):
    """`--attention`: rnn-attention's score e(s, a): Bahdanau's additive, or Luong's dot or general."""

    additive = "additive"
    dot = "dot"
    general = "general"


CELLS = tuple(c.value for c in CellKind)
ATTENTION_SCORES = tuple(a.value for a in AttentionScore)


class NormPlace(str, Enum):
    """Where a block normalizes (`--norm`): one class each in model/norm.py."""

    pre = "pre"
    post = "post"
    none = "none"


class NormKind(str, Enum):
    """Which normalization a block uses (`--norm-kind`): LayerNorm or RMSNorm."""

    layer = "layer"
    rms = "rms"


NORM_PLACES = tuple(n.value for n in NormPlace)
NORM_KINDS = tuple(n.value for n in NormKind)


class WordOrder(str, Enum):
    """`minitx data translation --order`: where the target language puts its verbs."""

    svo = "svo"
    sov = "sov"


class Quantize(str, Enum):
    """`--quantize` of the commands that load a run: none, or int8 weights (model/quantize.py)."""

    none = "none"
    int8 = "int8"


class ExportFormat(str, Enum):
    """`minitx export --format`: hf, a folder Hugging Face transformers loads (interop/hf_export.py)."""

    hf = "hf"


class TokenizerKind(str, Enum):
    """`minitx tokenize train --kind`: byte-level BPE, or one token per character."""

    bpe = "bpe"
    char = "char"


#: The softmax temperature of `minitx generate` and `minitx eval --grammar` (docs/decisions.md:
#: on the default story model, 0.7 / 0.8 / 1.0 gave 97% / 96% / 90% grammatical sentences).
DEFAULT_TEMPERATURE = 0.7

#: How much of the built-in corpus `train` and `tokenize train` use when given no files, and the
#: default of `minitx data grammar`, so that it writes exactly the stories a plain `train` learns.
BUILTIN_CORPUS_BYTES = 2_000_000
BUILTIN_CORPUS_SEED = 0


# ---------------------------------------------------------------------------------------------
# Presets: named model sizes with a training recipe that suits them. Flags given on the command line
# override a preset's values. `expected_val_loss` is the band of validation losses measured for the
# preset on the built-in corpus (see docs/decisions.md), shown beside the live value while training.

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "about": "2 layers, 64 wide: trains in seconds, for tests and first looks",
        "model": {"n_layers": 2, "n_heads": 4, "dim": 64, "block_size": 64, "vocab_size": 512},
        "train": {"steps": 300, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup": 30, "eval_every": 100},
        "expected_val_loss": (2.52, 2.60),
    },
    "small": {
        "about": "the default: 4 layers, 128 wide; under 3 minutes on a 2-core CPU",
        "model": {"n_layers": 4, "n_heads": 4, "dim": 128, "block_size": 128, "vocab_size": 1024},
        # Muon for 1,000 steps reaches the old AdamW 2,000-step recipe's loss in about half the time
        # (docs/decisions.md, "The default recipe by time to quality").
        "train": {"steps": 1000, "batch_size": 16, "lr": 5e-3, "min_lr": 5e-4, "warmup": 100, "eval_every": 250,
                  "optimizer": "muon"},
        "expected_val_loss": (2.52, 2.59),
    },
    "nanogpt-cpu": {
        "about": "nanoGPT's CPU Shakespeare shape: 4 layers, 4 heads, 128 wide, block 64",
        "model": {"n_layers": 4, "n_heads": 4, "dim": 128, "block_size": 64, "bias": False, "vocab_size": 1024},
        "train": {"steps": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "beta2": 0.99},
        "expected_val_loss": (2.61, 2.68),
    },
    "translate": {
        "about": "the encoder-decoder for the built-in translation pairs: 2 + 2 layers, 128 wide, Muon",
        "model": {"arch": "encoder-decoder", "n_layers": 2, "encoder_layers": 2, "n_heads": 4, "dim": 128,
                  "block_size": 64, "vocab_size": 2000, "pos": "rope"},
        "train": {"steps": 1200, "batch_size": 64, "lr": 5e-3, "min_lr": 3e-4, "warmup": 100, "eval_every": 200,
                  "eval_batches": 10, "optimizer": "muon"},
        "expected_val_loss": None,
    },
    # The recurrent translators (docs/rnn.md): one GRU layer each side, 128 wide, AdamW at 1e-2 (on the attention
    # experiment's long pairs, 300 steps of 32 reach val loss 0.47 for rnn-attention and 1.55 for rnn at 1e-2,
    # 1.35 / 2.05 at 3e-3: docs/decisions.md).
    "translate-rnn": {
        "about": "the RNN encoder-decoder (one fixed vector): 1 + 1 GRU layers, 128 wide",
        "model": {"arch": "rnn", "n_layers": 1, "encoder_layers": 1, "n_heads": 1, "dim": 128, "block_size": 128,
                  "vocab_size": 2000, "pos": "none"},
        "train": {"steps": 1500, "batch_size": 32, "lr": 1e-2, "min_lr": 1e-3, "warmup": 50, "eval_every": 250,
                  "eval_batches": 10},
        "expected_val_loss": None,
    },
    "translate-rnn-attention": {
        "about": "Bahdanau's RNNSearch: a bidirectional GRU encoder, a GRU decoder with additive attention, 128 wide",
        "model": {"arch": "rnn-attention", "n_layers": 1, "encoder_layers": 1, "n_heads": 1, "dim": 128,
                  "block_size": 128, "vocab_size": 2000, "pos": "none"},
        "train": {"steps": 1500, "batch_size": 32, "lr": 1e-2, "min_lr": 1e-3, "warmup": 50, "eval_every": 250,
                  "eval_batches": 10},
        "expected_val_loss": None,
    },
    "medium": {
        "about": "6 layers, 384 wide, block 256 (nanoGPT's GPU Shakespeare shape): wants a GPU",
        "model": {"n_layers": 6, "n_heads": 6, "dim": 384, "block_size": 256, "dropout": 0.2, "vocab_size": 2048},
        "train": {"steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100, "beta2": 0.99},
        "expected_val_loss": None,
    },
}
DEFAULT_PRESET = "small"

#: `--preset`: one choice per entry of PRESETS (the one list).
Preset = Enum("Preset", [(name, name) for name in PRESETS], type=str)


# ---------------------------------------------------------------------------------------------
# Flags: how a field is set on the command line.

MODEL, TRAINING, EVALUATION, RUN = "Model", "Training", "Evaluation", "Run"  # the help panels

#: What `--resume` does with a flag (`Flag.resume`), the one place the rule is written:
RECIPE = "recipe"  # part of how the model is trained: a value that differs from the saved one is refused
SAVED = "saved"  # changes no result: the value given, else the saved one (--steps: the new total)
NOW = "now"  # where the run computes now: the value given, else the default (--device, --threads)


@dataclass(frozen=True)
class Flag:
    """How one configuration field appears on the command line.

    Attributes:
        help: the help text of the option.
        panel: the group `--help` lists it in (MODEL, TRAINING, EVALUATION or RUN).
        name: the option when it is not the field's name with dashes (`n_layers` is `--layers`).
        choices: an Enum of the allowed values; Typer validates and lists them.
        resume: what `--resume` does with it: RECIPE (refuse a different value), SAVED (a value that
            changes no result: the one given, else the saved one) or NOW (how the run computes:
            the one given, else the default). `minitx train --help` lists the flags that may change.
    """

    help: str
    panel: str
    name: str = ""
    choices: type[Enum] | None = None
    resume: str = RECIPE

    def __post_init__(self) -> None:
        if self.resume not in (RECIPE, SAVED, NOW):
            raise ValueError(f"Flag.resume must be RECIPE, SAVED or NOW, not {self.resume!r}")

    @property
    def recipe(self) -> bool:
        """Part of how the model is trained: `--resume` refuses a value that differs from the saved one."""
        return self.resume == RECIPE


def flag(default: Any, help: str, panel: str, **how: Any) -> Any:
    """A dataclass field with a command-line flag: `lr: float = flag(1e-3, "Peak learning rate.", TRAINING)`."""
    return field(default=default, metadata={"flag": Flag(help, panel, **how)})


def flag_fields(*configs: type, exclude: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of `configs` that have a flag, in declaration order (those named in `exclude` left out)."""
    return [f for cls in configs for f in dataclasses.fields(cls) if "flag" in f.metadata and f.name not in exclude]


def flag_of(field_: dataclasses.Field) -> Flag:
    return field_.metadata["flag"]


def option_name(field_: dataclasses.Field) -> str:
    """The option that sets a field: its Flag's `name`, else the field name with dashes (`block_size`: --block-size)."""
    return flag_of(field_).name or "--" + field_.name.replace("_", "-")


def changeable_on_resume() -> list[str]:
    """The options `--resume` lets differ from the saved run (every flag whose Flag.resume is not RECIPE).

    >>> changeable_on_resume()[:3]
    ['--steps', '--eval-every', '--save-every']
    """
    return [option_name(f) for f in flag_fields(TrainConfig, ModelConfig) if not flag_of(f).recipe]


def option_of(field_name: str) -> str:
    """The option of a ModelConfig or TrainConfig field, by the field's name: "n_layers" -> "--layers"."""
    by_name = {f.name: f for f in flag_fields(ModelConfig, TrainConfig)}
    return option_name(by_name[field_name]) if field_name in by_name else "--" + field_name.replace("_", "-")


def flag_text(field_name: str, value: Any) -> str:
    """How the user types a value: ("lr", 0.01) -> "--lr 0.01"; ("bias", False) -> "--no-bias".

    >>> flag_text("n_layers", 2), flag_text("bias", False)
    ('--layers 2', '--no-bias')
    """
    option = option_of(field_name)
    if isinstance(value, bool):
        return option if value else "--no-" + option.removeprefix("--")
    return f"{option} {value}"


# ---------------------------------------------------------------------------------------------
# The configurations.


@dataclass
class ModelConfig:
    """The shape of a transformer: which architecture (`arch`), and its sizes.

    Attributes:
        arch: the architecture, one of `Arch` (model/registry.py builds it); run directories saved
            before the field existed hold decoder-only GPTs and load as "gpt".
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
        encoder_layers: an encoder-decoder's encoder blocks (None: as many as `n_layers`, the
            decoder's); unused by "gpt".
        encoder_pos: an encoder-decoder's encoder positions (None: the decoder's `pos`); unused by "gpt".
        cell: the recurrent cell of "rnn" and "rnn-attention", one of CELLS; unused by the transformers.
        attention: the score of "rnn-attention", one of ATTENTION_SCORES (additive: vᵀ tanh(W s + U a),
            dot: s·a, general: sᵀ W a); unused by the others.
        norm, norm_kind: where each block normalizes (pre, post, none) and with what (layer, rms); a run
            saved before they existed is pre-LN LayerNorm, their defaults.
    """

    vocab_size: int = flag(MISSING, "Vocabulary size of the BPE trained for the run (a --tokenizer brings its own).",
                           MODEL)
    block_size: int = flag(128, "Context length in tokens.", MODEL)
    n_layers: int = flag(4, "Transformer blocks.", MODEL, name="--layers")
    n_heads: int = flag(4, "Attention heads per block.", MODEL, name="--heads")
    dim: int = flag(128, "Width of the residual stream.", MODEL)
    pos: str = flag("learned", "How the model learns where a token stands.", MODEL, choices=PositionKind)
    dropout: float = flag(0.0, "Dropout while training.", MODEL)
    mlp_ratio: int = 4
    bias: bool = flag(True, "Biases in linears and LayerNorms.", MODEL)
    activation: str = "gelu"
    tie_embeddings: bool = True
    arch: str = flag("gpt", "The architecture: gpt (decoder-only), encoder-decoder (translation), rnn or "
                     "rnn-attention (the recurrent translators before it).", MODEL, choices=Arch)
    encoder_layers: int | None = flag(None, "encoder-decoder: the encoder's blocks (default: --layers).", MODEL)
    encoder_pos: str | None = flag(None, "encoder-decoder: the encoder's positions (default: --pos).", MODEL,
                                   choices=PositionKind)
    norm: str = flag("pre", "Where each block normalizes: pre (inside each branch, as GPT-2), post (after each "
                            "residual sum, as the 2017 transformer) or none.", MODEL, choices=NormPlace)
    norm_kind: str = flag("layer", "The normalization: layer (LayerNorm) or rms (RMSNorm).", MODEL,
                          choices=NormKind)
    cell: str = flag("gru", "rnn, rnn-attention: the recurrent cell.", MODEL, choices=CellKind)
    attention: str = flag("additive", "rnn-attention: the score, Bahdanau's additive or Luong's dot or general.",
                          MODEL, choices=AttentionScore)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError naming the first impossible setting.

        What a positional kind needs of the shape (rope: an even head size) its class checks when the
        model is built (`check_config` in model/positions.py; `model.check_model_config` checks it early).
        """
        check_types(self)
        if self.arch not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        for kind in (self.pos, self.encoder_pos):
            if kind is not None and kind not in POSITIONAL_ENCODINGS:
                choices = ", ".join(POSITIONAL_ENCODINGS)
                raise UserError(f"unknown positional encoding {kind!r}; choose one of {choices}")
        if self.norm not in NORM_PLACES:
            raise UserError(f"unknown --norm {self.norm!r}; choose one of {', '.join(NORM_PLACES)}")
        if self.norm_kind not in NORM_KINDS:
            raise UserError(f"unknown --norm-kind {self.norm_kind!r}; choose one of {', '.join(NORM_KINDS)}")
        if self.encoder_layers is not None and int(self.encoder_layers) < 1:
            raise UserError(f"encoder_layers must be at least 1, got {self.encoder_layers}")
        if self.cell not in CELLS:
            raise UserError(f"unknown recurrent cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.attention not in ATTENTION_SCORES:
            raise UserError(f"unknown attention score {self.attention!r}; choose one of {', '.join(ATTENTION_SCORES)}")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "dim", "mlp_ratio"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise UserError(f"dim ({self.dim}) must be divisible by heads ({self.n_heads})")
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


class OptimizerKind(str, Enum):
    """`--optimizer`: AdamW for every weight, or Muon for the hidden matrices (training/optim.py)."""

    adamw = "adamw"
    muon = "muon"


class LogKind(str, Enum):
    """`--log`: metrics.jsonl only (none), or also TensorBoard event files in RUN_DIR/tensorboard."""

    none = "none"
    tensorboard = "tensorboard"


@dataclass
class TrainConfig:
    """How a model is trained (AdamW, warmup then cosine decay, periodic evaluation), and on what.

    The flag fields are the recipe `minitx train` was given; `tokenizer` and the `corpus*` fields
    record where the text and its tokenizer came from, so `--resume` and `minitx eval` can find them again.
    """

    preset: str | None = flag(None, f"A model size with a recipe to suit it (default: {DEFAULT_PRESET}); "
                                    "the other flags override its values.", MODEL, choices=Preset)
    tokenizer: str | None = flag(None, "tokenizer.json, or 'char'; default: train a BPE on the corpus.", MODEL)
    steps: int = flag(2000, "Optimisation steps.", TRAINING, resume=SAVED)
    batch_size: int = flag(32, "Sequences per micro-batch.", TRAINING)
    grad_accum: int = flag(1, "Micro-batches per step.", TRAINING)
    lr: float = flag(1e-3, "Peak learning rate.", TRAINING)
    min_lr: float = flag(1e-4, "Learning rate at the end of the cosine.", TRAINING)
    warmup: int = flag(100, "Linear warmup steps.", TRAINING)
    weight_decay: float = flag(0.1, "AdamW weight decay.", TRAINING)
    beta1: float = 0.9
    beta2: float = flag(0.99, "AdamW beta2.", TRAINING)
    grad_clip: float = flag(1.0, "Clip the gradient norm (0: off).", TRAINING)
    # windows start only at <|doc|> (see batches.py); measured not to pay (docs/decisions.md)
    doc_aligned: bool = flag(False, "Start training windows at <|doc|> markers.", TRAINING)
    text_field: str = flag("text", "JSON Lines / Parquet corpora: the field that holds the text.", TRAINING)
    source_field: str = flag("source", "encoder-decoder: the JSON Lines field of the source sentence.", TRAINING)
    target_field: str = flag("target", "encoder-decoder: the JSON Lines field of its translation.", TRAINING)
    val_fraction: float = flag(0.1, "Share of tokens held out for validation.", EVALUATION)
    # every evaluation reads the same validation batches (training/loop.py), so the cadence changes no number
    eval_every: int = flag(250, "Steps between evaluations.", EVALUATION, resume=SAVED)
    eval_batches: int = flag(20, "Batches per evaluation.", EVALUATION)
    save_every: int = flag(500, "Steps between checkpoints.", RUN, resume=SAVED)
    seed: int = flag(1337, "Random seed (a CPU run is bit-for-bit repeatable).", RUN)
    device: str = flag("auto", "Where to compute.", RUN, choices=Device, resume=NOW)
    dtype: str = flag("auto", "Number type: bfloat16 autocast on a GPU with bf16 or a CPU with AMX tiles, else "
                                  "float32 (minitx info --device says which and why).", RUN, choices=DType)
    compile: bool | None = flag(None, "torch.compile the model (default: where it pays, see training/loop.py).",
                                RUN)
    threads: int = flag(0, "CPU threads (0: the idle cores, or OMP_NUM_THREADS).", RUN, resume=NOW)
    keep: int = flag(1, "Checkpoints to keep: the newest K (older ones are deleted after each save).", RUN,
                     resume=SAVED)
    detect_anomaly: bool = flag(False, "Autograd anomaly mode: at the first NaN, show the operation that made it "
                                       "(slow).", RUN, resume=NOW)
    optimizer: str = flag("adamw", "adamw, or muon: Muon for the hidden matrices, AdamW for the rest.", TRAINING,
                          choices=OptimizerKind)
    muon_lr: float = flag(0.02, "Muon's peak learning rate (--optimizer muon; --lr stays AdamW's).", TRAINING)
    muon_momentum: float = 0.95
    log: str = flag("none", "Also write the metrics as TensorBoard scalars into RUN_DIR/tensorboard (needs the "
                            "optional tensorboard extra).", RUN, choices=LogKind, resume=NOW)
    corpus: str | None = None  # a name for the text: the file names, or "built-in stories"
    corpus_files: list[str] = field(default_factory=list)  # absolute paths; none: the built-in stories
    corpus_bytes: int | None = None  # its size in UTF-8 bytes
    corpus_sha256: str | None = None  # --resume refuses a corpus whose sha256 differs
    prepared_data: str | None = None  # the token files trained on: DATA_DIR, or the token cache's entry

    def validate(self) -> None:
        """Raise UserError naming the first value of a wrong type (`check_types`) or out of its range."""
        check_types(self)
        checks = {  # field: (holds, the range in words)
            "steps": (self.steps >= 1, "at least 1"),
            "batch_size": (self.batch_size >= 1, "at least 1"),
            "grad_accum": (self.grad_accum >= 1, "at least 1"),
            "lr": (self.lr > 0, "above 0"),
            "min_lr": (0 <= self.min_lr <= self.lr, "between 0 and --lr"),
            "warmup": (self.warmup >= 0, "at least 0"),
            "weight_decay": (self.weight_decay >= 0, "at least 0"),
            "beta1": (0 <= self.beta1 < 1, "in [0, 1)"),
            "beta2": (0 < self.beta2 < 1, "in (0, 1)"),
            "grad_clip": (self.grad_clip >= 0, "at least 0 (0: off)"),
            "val_fraction": (0 < self.val_fraction < 1, "in (0, 1)"),
            "eval_every": (self.eval_every >= 1, "at least 1"),
            "eval_batches": (self.eval_batches >= 1, "at least 1"),
            "save_every": (self.save_every >= 1, "at least 1"),
            "keep": (self.keep >= 1, "at least 1"),
            "muon_lr": (self.muon_lr > 0, "above 0"),
            "muon_momentum": (0 <= self.muon_momentum < 1, "in [0, 1)"),
            "seed": (0 <= self.seed <= MAX_SEED, f"between 0 and {MAX_SEED} (2**63 - 1)"),
            "threads": (0 <= self.threads <= MAX_THREADS, f"between 0 (the idle cores) and {MAX_THREADS}"),
        }
        for name, (ok, must) in checks.items():
            if not ok:
                raise UserError(f"{option_of(name)} has an impossible value: {getattr(self, name)} (it must be {must})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Read a saved config; runs saved before the corpus fields were typed kept them in an `extra` dict."""
        old = d.get("extra") if isinstance(d.get("extra"), dict) else {}
        return _from_dict(cls, {**old, **d})


def _from_dict(cls: type, d: dict[str, Any]):
    """Build a dataclass from a dict, ignoring keys it does not know (forward compatibility).

    Every value is checked against its field's type hint first (`check_value`), so a hand-edited
    `"dim": "32"` is one line naming the field, not an error deep inside whatever first uses it.
    """
    hints = _hints(cls)
    known = {k: v for k, v in d.items() if k in hints}
    for name, value in known.items():
        check_value(cls.__name__, name, value, hints[name])
    return cls(**known)


# ---------------------------------------------------------------------------------------------
# The schema of config.json: each field's own type hint, checked strictly.

#: torch.manual_seed takes seeds below 2**64; the run uses seed + 1 (validation) and seed + rank.
MAX_SEED = 2**63 - 1
#: More CPU threads than any machine minitx runs on has cores.
MAX_THREADS = 4096


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_words(hint: Any) -> str:
    """A type hint in words: int -> "an integer", `int | None` -> "an integer or null"."""
    words = {int: "an integer", float: "a finite number", bool: "true or false", str: "text", type(None): "null"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_words(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return "a list of " + {str: "texts"}.get(typing.get_args(hint)[0], "values")
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def value_words(value: Any) -> str:
    """What a JSON value is, in words: "32" -> 'the text "32"', 7 -> "the integer 7", None -> "null"."""
    import json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    kind = {int: "integer", float: "number", str: "text", list: "list", dict: "object"}.get(type(value), "value")
    shown = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return f"the {kind} {shown[:60]}"


def fits_type(value: Any, hint: Any) -> bool:
    """Does `value` (as JSON gives it) have the type `hint` strictly: bool is no int, 7 no bool, "32" no int.

    >>> fits_type(32, int), fits_type("32", int), fits_type(True, int), fits_type(7, bool), fits_type(3, float)
    (True, False, False, False, True)
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(fits_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(item is Any or fits_type(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an integer is a number too; NaN and the infinities are no setting
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return True


def check_value(owner: str, name: str, value: Any, hint: Any) -> None:
    """UserError unless `value` fits the type `hint` of field `name` (of `owner`, e.g. "ModelConfig")."""
    if not fits_type(value, hint):
        raise UserError(f"{name!r} is {value_words(value)}, but it must be {_type_words(hint)}")


def check_types(config: Any) -> None:
    """UserError naming the first field of a dataclass whose value is not of its declared type."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        check_value(type(config).__name__, f.name, getattr(config, f.name), hints[f.name])


# ---------------------------------------------------------------------------------------------
# From a preset and the flags given to the configurations.


def preset(name: str) -> dict[str, Any]:
    """Look up a preset by name (UserError listing the choices if unknown)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def given(flags: dict[str, Any], config: type) -> dict[str, Any]:
    """The flags of `config` the user gave: those present and not None ('not given').

    >>> given({"lr": 0.01, "steps": None, "dim": 64}, TrainConfig)
    {'lr': 0.01}
    """
    names = {f.name for f in dataclasses.fields(config)}
    return {k: v for k, v in flags.items() if k in names and v is not None}


def make_train_config(preset_name: str | None, flags: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a preset's recipe, then the flags the user gave (None means 'not given').

    >>> make_train_config("tiny", {"lr": 0.01, "steps": None}).steps  # tiny's 300 steps, at lr 0.01
    300
    """
    name = preset_name or DEFAULT_PRESET
    cfg = TrainConfig(**{**preset(name)["train"], **given(flags, TrainConfig), "preset": name})
    cfg.validate()
    return cfg


def make_model_config(preset_name: str | None, flags: dict[str, Any], vocab_size: int) -> ModelConfig:
    """ModelConfig from a preset's shape, then the model flags given; `vocab_size` is the tokenizer's.

    >>> make_model_config("tiny", {"pos": "rope", "dim": None}, vocab_size=300).dim
    64
    """
    values = {**preset(preset_name or DEFAULT_PRESET)["model"], **given(flags, ModelConfig)}
    return ModelConfig(**{**values, "vocab_size": vocab_size})
