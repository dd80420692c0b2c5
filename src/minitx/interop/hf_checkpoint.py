"""Reading a Hugging Face checkpoint folder safely: find it, read its JSON and its safetensors -- never a pickle.

A checkpoint folder is what transformers' `save_pretrained` writes, or a snapshot in the Hugging
Face cache. The cache keeps one folder per model, with the files of each revision under
snapshots/ and the name of the current one in refs/main:

    ~/.cache/huggingface/hub/models--gpt2/
      refs/main                        "607a30d7..."
      snapshots/607a30d7.../           config.json, model.safetensors, vocab.json, merges.txt, ...

so that models--gpt2 folder may be given too. Weights are read from model.safetensors, or from the
shards listed in model.safetensors.index.json ({"weight_map": {name: "model-00001-of-00002.safetensors"}}).
A pickle (pytorch_model.bin, *.pt, ...) can run code while it loads: one lying beside the
safetensors is never opened, and a folder with nothing else is refused with the line that converts it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import fileio
from minitx.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: Buffers some checkpoints carry beside the weights, causal masks ("h.0.attn.bias") and rotary tables:
#: every model rebuilds them, so they are skipped. (The real biases are one level deeper: "h.0.attn.c_attn.bias".)
BUFFER = re.compile(r"(^|\.)(attn|attention)\.(bias|masked_bias)$|rotary_emb\.inv_freq$")


def checkpoint_directory(path: Path) -> Path:
    """`path` itself, or for a Hugging Face cache folder (models--gpt2) the snapshot its refs/main names."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; give the folder holding config.json and model.safetensors")
    if (path / "config.json").is_file():
        return path
    snapshots = path / "snapshots"
    if snapshots.is_dir():
        ref = path / "refs" / "main"
        if ref.is_file() and (snapshots / ref.read_text().strip() / "config.json").is_file():
            return snapshots / ref.read_text().strip()
        found = sorted(p for p in snapshots.iterdir() if (p / "config.json").is_file())
        if len(found) == 1:
            return found[0]
    raise UserError(f"{path} has no config.json; give a checkpoint folder (e.g. a snapshot in the Hugging Face cache)")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from the checkpoint folder (config.json, the shard index), or a UserError saying what is wrong."""
    if not path.is_file():
        raise UserError(f"{path} not found; a checkpoint folder needs its config.json")
    return fileio.read_json(path, "the checkpoint is damaged")


def read_safetensors(directory: Path) -> dict[str, Tensor]:
    """Every tensor of the checkpoint's safetensors file(s); never opens a pickle."""
    from minitx.rundir import read_tensors

    if (directory / SAFETENSORS).is_file():
        return _without_buffers(read_tensors(directory / SAFETENSORS, "weights file")[0])
    if (directory / SAFETENSORS_INDEX).is_file():  # sharded: {"weight_map": {name: "model-00001-of-00002...", ...}}
        weight_map = read_json(directory / SAFETENSORS_INDEX).get("weight_map", {})
        tensors: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if Path(shard).name != shard:
                raise UserError(f"{directory / SAFETENSORS_INDEX} names a shard outside the folder: {shard!r}")
            tensors.update(read_tensors(directory / shard, "weights shard")[0])
        return _without_buffers(tensors)
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UserError(
            f"{directory} has only a pickle checkpoint ({pickles[0]}), which can run code when loaded, so minitx "
            f"never opens it; convert it once, if you trust it: python -c \"from transformers import "
            f"AutoModelForCausalLM as M; M.from_pretrained('{directory}').save_pretrained('{directory}')\""
        )
    raise UserError(f"{directory} has no {SAFETENSORS}; a checkpoint folder needs its weights")


def _without_buffers(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: t for name, t in tensors.items() if not BUFFER.search(name)}
