"""Will it fit? The memory a model, a training batch or a KV cache needs, estimated before allocating it.

`--dim 100000`, `--layers 100000`, `--batch-size 100000` or a config.json with `block_size: 1000000000`
used to allocate first and fail later -- seconds to minutes of work, then a traceback or the
kernel's OOM killer. Every such size is now estimated from the configuration alone (arithmetic, no
torch) and compared with the memory the device has free; what cannot fit is one line that gives both:

    minitx: error: training this model needs about 61.0 GB (weights 0.3 GB, gradients and AdamW moments
    0.9 GB, activations of a batch 59.8 GB) but the machine has 20.1 GB available; lower --batch-size ...

The estimates count what must exist at once, in float32 (bfloat16 autocast only shrinks activations):

    parameters P     embeddings V·C (+ C·V untied) + positions T·C (learned) + per block (4 + 2·r)·C²
                     (an encoder-decoder: encoder blocks too, and 4·C² of cross-attention per decoder block)
    training         4 bytes × P × 4 (weights, gradients, two AdamW moments)
                     + activations: 4 bytes × B·T × (L·(12 + 2·r)·C + 3·V)   (kept for backward; logits ×3)
    inference        4 bytes × P + the KV cache 2 × L × B × T × C × 4 bytes

They are lower bounds, deliberately (a refusal must never be wrong): a model that passes may still
not fit, but one refused certainly does not. The memory available is psutil's (or /proc/meminfo's
MemAvailable, or the cgroup's limit when lower) for the CPU, and `torch.cuda.mem_get_info` for a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minitx.errors import UserError

FLOAT_BYTES = 4


def block_counts(model: Any) -> tuple[int, int]:
    """(blocks of attention and MLP, cross-attention sub-layers) in a model of this configuration: its
    architecture counts them (`Architecture.block_counts`)."""
    from minitx.model.registry import architecture

    return architecture(model.arch).block_counts(model)


def parameter_estimate(model: Any) -> int:
    """About how many parameters a ModelConfig has (exact to within the biases and LayerNorms)."""
    c, v, t, r = model.dim, model.vocab_size, model.block_size, model.mlp_ratio
    stacked, cross = block_counts(model)
    blocks = stacked * (4 + 2 * r) * c * c + cross * 4 * c * c
    embeddings = v * c * (1 if model.tie_embeddings else 2)
    positions = t * c if model.pos == "learned" else 0
    return embeddings + positions + blocks


def training_bytes(model: Any, batch_size: int) -> dict[str, int]:
    """Weights, gradients + AdamW moments, and the activations of one micro-batch, in bytes."""
    p = parameter_estimate(model)
    layers = block_counts(model)[0]
    tokens = batch_size * model.block_size
    activations = tokens * (layers * (12 + 2 * model.mlp_ratio) * model.dim + 3 * model.vocab_size)
    return {"weights": FLOAT_BYTES * p, "gradients and AdamW moments": 3 * FLOAT_BYTES * p,
            "activations of a batch": FLOAT_BYTES * activations}


def inference_bytes(model: Any, batch_size: int = 1) -> dict[str, int]:
    """The weights and a KV cache of `batch_size` sequences as long as the block, in bytes."""
    cache = 2 * model.n_layers * batch_size * model.block_size * model.dim
    return {"weights": FLOAT_BYTES * parameter_estimate(model), "KV cache": FLOAT_BYTES * cache}


def available_bytes(device: str = "cpu") -> int | None:
    """The memory free for a new allocation on `device`, or None where it cannot be told."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index
        return int(torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())[0])
    if device != "cpu":
        return None
    found = _psutil_available() or _meminfo_available()
    limit = _cgroup_room()
    return min(x for x in (found, limit) if x is not None) if found or limit else None


def _psutil_available() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """A cgroup v2 memory limit less what the group uses (containers see the host's /proc/meminfo)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def require_fits(parts: dict[str, int], what: str, device: str, fix: str) -> None:
    """UserError when the `parts` (bytes each) together exceed what `device` has available."""
    need = sum(parts.values())
    have = available_bytes(device)
    if have is None or need <= have:
        return
    detail = ", ".join(f"{name} {gigabytes(size)}" for name, size in parts.items())
    where = "the machine" if device == "cpu" else device
    raise UserError(f"{what} needs about {gigabytes(need)} ({detail}) but {where} has {gigabytes(have)} "
                    f"available; {fix}")


def require_training_fits(model: Any, batch_size: int, device: str) -> None:
    """Refuse, before anything is allocated, a model and micro-batch whose training cannot fit in memory."""
    require_fits(training_bytes(model, batch_size), "training this model", device,
                 "lower --batch-size (raise --grad-accum to keep the batch), --block-size, --dim or --layers")


def require_inference_fits(model: Any, device: str, batch_size: int = 1, where: str = "") -> None:
    """Refuse, before the model is built, weights and a KV cache that cannot fit (e.g. a hand-edited block_size)."""
    require_fits(inference_bytes(model, batch_size), f"this model{where}", device,
                 "use a machine with more memory, fewer samples at once, or check the run's config.json")
