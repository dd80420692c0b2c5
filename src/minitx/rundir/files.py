"""The files of a run directory: config, tokenizer, weights, metrics -- and no pickle.

Safetensors stores raw tensors with a JSON header, so loading can never execute code (unlike
`torch.load` on a pickle). Every file is written atomically (see `fileio.py`); the set of files of a
checkpoint is written as a unit (see checkpoints.py). Loading validates everything and turns each
problem into a one-line `UserError`. The layout is described in `minitx/rundir/__init__.py`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import CHECKPOINT_FORMAT, READABLE_FORMATS, __version__
from minitx.config import ModelConfig, TrainConfig
from minitx.errors import UserError
from minitx.fileio import atomic_write_bytes, atomic_write_json, read_json

if TYPE_CHECKING:
    import torch

    from minitx.text.tokenizer import Tokenizer

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
#: config.json's section of a run imported from elsewhere: {"path": the checkpoint folder, "architecture": "gpt2"}
#: (such a run has no validation split to rebuild).
IMPORTED_FROM = "imported_from"
RUN_FILES = (CONFIG, TOKENIZER, WEIGHTS, OPTIMIZER, TRAINER_STATE, METRICS)  # WEIGHTS..: the flat layout of format 1


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    model_config: ModelConfig
    train_config: TrainConfig
    tokenizer: Tokenizer
    raw_config: dict[str, Any] = field(default_factory=dict)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


# ---------------------------------------------------------------------------------------------
# saving


def _tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights to save: unwrapped from torch.compile/DDP, a tied lm_head stored once (as wte).

    An untied lm_head (`ModelConfig.tie_embeddings=False`) is a matrix of its own and is saved
    as `lm_head.weight`.
    """
    module = getattr(model, "_orig_mod", model)
    module = getattr(module, "module", module)
    state = module.state_dict()
    if module.config.tie_embeddings:
        state.pop("lm_head.weight", None)  # tied to transformer.wte.weight; rebuilt on load
    return state


def save_config(run_dir: Path, model_config: ModelConfig, train_config: TrainConfig) -> None:
    atomic_write_json(
        Path(run_dir) / CONFIG,
        {
            "format": CHECKPOINT_FORMAT,
            "minitx_version": __version__,
            "model": model_config.to_dict(),
            "train": train_config.to_dict(),
        },
    )


def save_weights(run_dir: Path, model: torch.nn.Module, step: int | None = None) -> None:
    """Weights alone, at the top of RUN_DIR: a run to sample from and inspect, not to resume.

    Training saves checkpoints (checkpoints.py); this is for models made outside a training run.
    """
    meta = {"format": str(CHECKPOINT_FORMAT), "minitx_version": __version__}
    if step is not None:
        meta["step"] = str(step)  # compared with the trainer state on --resume
    atomic_write_bytes(Path(run_dir) / WEIGHTS, _tensor_bytes(model_state(model), meta))


# ---------------------------------------------------------------------------------------------
# loading


def read_config(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"run directory not found: {run_dir} (train one with `minitx train --out {run_dir}`)")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a minitx run directory: it has no {CONFIG}")
    raw = read_json(path, "the run directory is damaged")
    fmt = raw.get("format")
    if fmt not in READABLE_FORMATS:
        made_by = raw.get("minitx_version", "an unknown version")
        raise UserError(
            f"{run_dir} has checkpoint format {fmt!r} (written by minitx {made_by}); this minitx "
            f"{__version__} reads format {CHECKPOINT_FORMAT}: use a matching minitx version or retrain"
        )
    if "model" not in raw:
        raise UserError(f"{path} has no 'model' section; the run directory is damaged")
    return raw


def configs_of(raw: dict[str, Any], path: Path) -> tuple[ModelConfig, TrainConfig]:
    """The ModelConfig and TrainConfig of a config.json, every value checked by type and range.

    One schema: each field's own type hint (`config.fits_type`: "32" is no integer, 7 no boolean) and
    the ranges of `ModelConfig.validate` / `TrainConfig.validate`. A value that fails is one line
    naming the file, the field and the value: `R/config.json: 'dim' is the text "32", but it must be
    an integer; ...`.
    """
    sections = {"model": raw.get("model"), "train": raw.get("train") or {}}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise UserError(f"{path}: its '{name}' section is not a JSON object; the run directory is damaged")
    try:
        model_config = ModelConfig.from_dict(sections["model"])
        train_config = TrainConfig.from_dict(sections["train"])
        train_config.validate()
    except UserError as e:
        raise UserError(f"{path}: {e}; the run directory is damaged (fix the value, or restore the file)") from None
    except (TypeError, ValueError, AttributeError) as e:  # a required field missing, and the like
        raise UserError(f"{path} has an unusable setting ({e}); the run directory is damaged") from None
    return model_config, train_config


def load_run(run_dir: str | Path) -> Run:
    """Read config and tokenizer of a run directory (not the weights)."""
    from minitx.text.tokenizer import Tokenizer

    run_dir = Path(run_dir)
    raw = read_config(run_dir)
    model_config, train_config = configs_of(raw, run_dir / CONFIG)
    tok_path = run_dir / TOKENIZER
    if not tok_path.is_file():
        raise UserError(f"{run_dir} has no {TOKENIZER}; the run directory is incomplete")
    tokenizer = Tokenizer.load(tok_path)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise UserError(
            f"{tok_path} has {tokenizer.vocab_size} tokens but the model was built for "
            f"{model_config.vocab_size}; it is not this run's tokenizer"
        )
    return Run(run_dir, model_config, train_config, tokenizer, raw)


def read_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file, turning a missing, truncated or corrupt file into a UserError."""
    from safetensors import safe_open

    if not path.is_file():
        raise UserError(f"{what} not found: {path} (the run has not saved a checkpoint yet?)")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as e:  # safetensors raises several types for damaged files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is corrupt or truncated ({reason}); restore it or retrain") from None
    return tensors, metadata


def tensor_shapes(path: Path, what: str = "weights file") -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in a safetensors file, read from its header alone.

    A safetensors file starts with 8 bytes holding N (little-endian), then N bytes of JSON that
    describe every tensor, then the raw tensor data:

        N | {"transformer.wte.weight": {"dtype": "F32", "shape": [300, 32], "data_offsets": [0, 38400]},
             ..., "__metadata__": {"step": "10"}} | data ...

    So sizes can be known without reading (or even importing a library for) the data. A file whose
    data is shorter or longer than its header promises is a UserError.
    """
    if not path.is_file():
        raise UserError(f"{what} not found: {path} (the run has not saved a checkpoint yet?)")
    file_size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            header_size = int.from_bytes(f.read(8), "little")
            if not 2 <= header_size <= file_size - 8:
                raise ValueError(f"header of {header_size} bytes in a file of {file_size}")
            header = json.loads(f.read(header_size))
        header.pop("__metadata__", None)
        shapes = {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items()}
        data_size = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} is corrupt ({e}); restore it or retrain") from None
    if 8 + header_size + data_size != file_size:
        raise UserError(f"{path} is truncated or corrupt (its header does not match its size); restore it or retrain")
    return shapes


def parameter_count(path: Path) -> int:
    """How many numbers a weights file holds: the model's parameter count, without building the model.

    A tied lm_head is not stored (it is `transformer.wte`), so each parameter is counted once,
    exactly as `GPT.num_parameters()` counts it: [300, 32] + [32] + ... -> 9600 + 32 + ...
    """
    return sum(math.prod(shape) for shape in tensor_shapes(path).values())


def check_tensors_fit(
    expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], path: Path, what: str
) -> None:
    """Every name the model expects, no other, each with its shape; else a UserError naming the first misfit.

    `what` is the thing that is damaged when they do not fit ("the run directory", "the checkpoint").
    """
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(f"{path} does not match its config.json ({detail}); {what} is damaged")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise UserError(
                f"{path}: {name} has shape {tuple(t.shape)} but config.json implies "
                f"{tuple(expected[name].shape)}; {what} is damaged"
            )


def load_weights_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    check_tensors_fit(model_state(model), tensors, path, "the run directory")
    model.load_state_dict(tensors, strict=False)  # a tied lm_head is wte, not stored


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to metrics.jsonl (append is atomic enough for single short lines)."""
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    """Replace metrics.jsonl with `records` (atomically)."""
    from minitx.fileio import atomic_write_text

    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            out.append(record)
    return out
