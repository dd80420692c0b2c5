"""`minitx export RUN --format hf --out DIR` and `minitx import-hf DIR --out RUN`: to and from transformers."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.text import Text

from minitx.config import ExportFormat
from minitx.errors import UserError
from minitx.rundir.files import IMPORTED_FROM

EXPORT_FORMATS = tuple(f.value for f in ExportFormat)
ARCHITECTURE_NAMES = {"gpt2": "GPT-2", "gpt_neox": "GPT-NeoX", "mpt": "MPT"}


def run_export(run_dir: str | Path, *, format: str, out: Path, force: bool, console: Console | None = None) -> None:
    """Write a run as a transformers checkpoint folder (config.json, model.safetensors, tokenizer files)."""
    from safetensors.torch import save

    from minitx.commands.loading import require_command
    from minitx.fileio import atomic_directory, atomic_write_bytes, atomic_write_text
    from minitx.interop.hf_export import export_hf, hf_architecture
    from minitx.rundir import load_model, load_run

    console = console if console is not None else Console()
    if format not in EXPORT_FORMATS:
        raise UserError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    require_command(load_run(run_dir), "minitx export")
    hf_architecture(load_run(run_dir).model_config)  # an unexportable kind fails before the weights are read
    model, run = load_model(run_dir, device="cpu")
    exported = export_hf(model, run.tokenizer)
    tensors = {name: t.contiguous() for name, t in exported.tensors.items()}
    boundary = exported.config["eos_token_id"]
    generation = {"bos_token_id": boundary, "eos_token_id": boundary, "pad_token_id": boundary}
    with atomic_directory(out, force) as tmp:
        atomic_write_text(tmp / "config.json", json.dumps(exported.config, indent=2) + "\n")
        atomic_write_text(tmp / "generation_config.json", json.dumps(generation, indent=2) + "\n")
        atomic_write_bytes(tmp / "model.safetensors", save(tensors, metadata={"format": "pt"}))
        for name, text in exported.tokenizer_files.items():
            atomic_write_text(tmp / name, text)
    name = ARCHITECTURE_NAMES[exported.architecture]
    console.print(Text(f"exported {run_dir} ({run.model_config.pos} positions) as {name} to {out}"))
    console.print(Text("use it with transformers (offline):", style="dim"))
    folder = repr(str(out))
    console.print(Text(
        "  from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"  model, tok = AutoModelForCausalLM.from_pretrained({folder}), AutoTokenizer.from_pretrained({folder})\n"
        "  print(tok.decode(model.generate(**tok(tok.bos_token + 'The dog', return_tensors='pt'),"
        " max_new_tokens=30)[0]))"
    ), soft_wrap=True)  # code to copy: never wrapped


def run_import_hf(directory: str | Path, *, out: Path, force: bool, console: Console | None = None) -> None:
    """Turn a GPT-2-family checkpoint folder into a minitx run directory."""
    from minitx.config import TrainConfig
    from minitx.fileio import atomic_directory, atomic_write_json
    from minitx.interop.hf_import import import_hf
    from minitx.rundir import CONFIG, TOKENIZER, save_config, save_weights

    console = console if console is not None else Console()
    if Path(out).exists() and not force and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise UserError(f"{out} already exists; pass --force to replace it or choose another --out")
    imported = import_hf(directory)
    model, config = imported.model, imported.model.config
    with atomic_directory(out, force) as tmp:
        save_config(tmp, config, TrainConfig())
        # Where the weights came from, beside the usual sections: eval looks for it (no training split).
        raw = json.loads((tmp / CONFIG).read_text(encoding="utf-8"))
        raw[IMPORTED_FROM] = {"path": str(imported.source), "architecture": imported.architecture}
        atomic_write_json(tmp / CONFIG, raw)
        save_weights(tmp, model)
        imported.tokenizer.save(tmp / TOKENIZER)
    head = "tied" if config.tie_embeddings else "untied"
    console.print(Text(
        f"imported {ARCHITECTURE_NAMES[imported.architecture]} from {imported.source} into {out}: "
        f"{config.n_layers} layers × {config.n_heads} heads, {config.dim} wide, {config.pos} positions, "
        f"{config.activation}, {head} output layer, {model.num_parameters():,} parameters, "
        f"{imported.tokenizer.kind} tokenizer of {imported.tokenizer.vocab_size:,} tokens"
    ))
    hint = f"look inside: minitx inspect-attention {out} --prompt 'When Mary and John went to the store,'"
    console.print(Text(hint, style="dim"), soft_wrap=True)
