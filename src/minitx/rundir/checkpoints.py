"""Checkpoints as a unit: a save is either wholly there or not there at all.

A checkpoint is three files that must agree -- weights, optimizer moments (+ RNG states), trainer
state -- so they are never written one by one over the previous ones. A save of step 336 goes:

    checkpoints/.step-000336.partial/     1. a new directory; the three files written and fsynced
    checkpoints/step-000336/              2. renamed in one atomic step: the switch
    checkpoints/step-000330/ -> .step-000330.deleting -> gone     3. older ones beyond --keep, after the switch

Every name `step-NNNNNN` therefore holds a complete checkpoint, and the newest complete checkpoint
is simply the highest step among them: no pointer file is needed (one would be a second truth that a
crash between the rename and the pointer's rewrite could make disagree). A crash at any moment leaves
the previous checkpoint intact and, at worst, a `.partial` or `.deleting` directory, which readers
ignore and `--resume` removes (`remove_leftovers`).

Run directories of format 1 kept the three files at the top of RUN_DIR; they are read when no
`checkpoints/step-*` exists, and removed after the first checkpoint of the new layout is in place.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import fileio
from minitx.errors import UserError
from minitx.fileio import crash_point, fsync_dir
from minitx.rundir.files import (
    CHECKPOINTS,
    OPTIMIZER,
    TRAINER_STATE,
    WEIGHTS,
    Run,
    _tensor_bytes,
    load_run,
    load_weights_into,
    model_state,
    read_tensors,
    tensor_shapes,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

_STEP_DIR = re.compile(r"step-(\d+)")
_LEFTOVER = re.compile(r"\.step-\d+\.(partial|deleting)")
_FLAT_FILES = (WEIGHTS, OPTIMIZER, TRAINER_STATE)


def checkpoint_name(step: int) -> str:
    """The directory of the checkpoint after `step` steps: 336 -> "step-000336" (sorts by name too)."""
    return f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run, oldest first, as (step, directory)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint's directory; RUN_DIR itself for a format-1 run; None if there is none."""
    checkpoints = list_checkpoints(run_dir)
    if checkpoints:
        return checkpoints[-1][1]
    if (Path(run_dir) / WEIGHTS).is_file():
        return Path(run_dir)
    return None


def require_checkpoint(run_dir: Path) -> Path:
    """`latest_checkpoint`, or a UserError saying the run has none yet."""
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(
            f"{run_dir} has no checkpoint yet (no {CHECKPOINTS}/step-*/); let `minitx train` reach its first "
            "--save-every, or stop it with Ctrl-C, which saves"
        )
    return found


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step a checkpoint directory holds, from its name (None for a format-1 run directory)."""
    match = _STEP_DIR.fullmatch(Path(checkpoint).name)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# saving


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    rng_tensors: dict[str, torch.Tensor],
    keep: int = 1,
) -> Path:
    """Write the checkpoint of `state["step"]` as one unit, then keep only the newest `keep`; return its directory.

    Between any two writes the process may die (`crash_point` marks each such moment for the crash
    tests); whatever the moment, the previous checkpoint stays complete. A write that fails (a full
    disk) removes the partial directory and raises a UserError saying the previous checkpoint is intact.
    """
    run_dir = Path(run_dir)
    step = int(state["step"])
    root = run_dir / CHECKPOINTS
    final = root / checkpoint_name(step)
    partial = root / f".{final.name}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
        crash_point("started")
        meta = {"step": str(step)}
        fileio.write_synced(partial / WEIGHTS, _tensor_bytes(model_state(model), meta))
        crash_point("weights")
        fileio.write_synced(partial / OPTIMIZER, _tensor_bytes(optimizer_tensors(optimizer, rng_tensors), meta))
        crash_point("optimizer")
        groups = [dict(g) for g in optimizer.state_dict()["param_groups"]]
        state_json = json.dumps({**state, "param_groups": groups}, indent=2) + "\n"
        fileio.write_synced(partial / TRAINER_STATE, state_json.encode("utf-8"))
        crash_point("trainer_state")
        fsync_dir(partial)
        if final.exists():
            raise FileExistsError(errno.EEXIST, "a checkpoint of this step already exists", str(final))
        os.rename(partial, final)  # the switch: from here on this is the newest checkpoint
        fsync_dir(root)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        previous = latest_checkpoint(run_dir)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise UserError(
            f"could not save the checkpoint of step {step}: {e.strerror or e} ({e.filename or root}); {kept}; "
            "free some space (or fix the directory) and continue with --resume"
        ) from None
    crash_point("renamed")
    prune_checkpoints(run_dir, keep)
    crash_point("pruned")
    return final


def optimizer_tensors(optimizer: torch.optim.Optimizer, rng_tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """AdamW moments as `state.{param index}.{name}` and RNG states as `rng.{name}`: tensors safetensors can store."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    for idx, pstate in optimizer.state_dict()["state"].items():
        for key, value in pstate.items():
            tensors[f"state.{idx}.{key}"] = value if hasattr(value, "shape") else torch.tensor(value)
    for name, t in rng_tensors.items():
        tensors[f"rng.{name}"] = t
    return tensors


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (and format-1 files once a checkpoint dir exists).

    Each is first renamed to `.step-N.deleting`, so a crash in the middle of deleting leaves a name
    readers ignore, never a `step-N` directory with files missing.
    """
    checkpoints = list_checkpoints(run_dir)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        doomed = path.with_name(f".{path.name}.deleting")
        os.rename(path, doomed)
        crash_point("doomed")
        shutil.rmtree(doomed)
    if checkpoints:
        for name in _FLAT_FILES:
            (Path(run_dir) / name).unlink(missing_ok=True)


def leftovers(run_dir: Path) -> list[Path]:
    """What interrupted saves left behind: `.partial` / `.deleting` directories and `.*.tmp` files."""
    run_dir = Path(run_dir)
    found = [p for p in run_dir.glob(".*.tmp") if p.is_file()]
    root = run_dir / CHECKPOINTS
    if root.is_dir():
        found += [p for p in root.iterdir() if _LEFTOVER.fullmatch(p.name)]
    return sorted(found)


def remove_leftovers(run_dir: Path) -> list[str]:
    """Remove what interrupted saves left behind; return the names removed (for a one-line note)."""
    removed = []
    for path in leftovers(run_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path.relative_to(run_dir)))
    return removed


# ---------------------------------------------------------------------------------------------
# loading


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, Run]:
    """Rebuild the model of a run directory -- the registry's class for its `arch` -- from its newest complete
    checkpoint (strictly: every name, every shape)."""
    from minitx.model import build_model
    from minitx.model.memory import require_inference_fits

    run = load_run(run_dir)
    weights = require_checkpoint(run.path) / WEIGHTS
    # config.json's sizes are checked against memory before anything is built: a hand-edited
    # block_size of 10**9 is one line, not 128 GB asked of the allocator
    require_inference_fits(run.model_config, "cpu", where=f" of {run.path}")
    tensors, _ = read_tensors(weights, "weights file")
    model = build_model(run.model_config)
    load_weights_into(model, tensors, weights)
    model.to(device)
    model.eval()
    return model, run




def saved_step(run_dir: Path) -> int:
    """How many steps the newest complete checkpoint of a run holds (0 before the first save)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return 0
    step = checkpoint_step(checkpoint)
    if step is None:  # format 1: the step is in the trainer state at the top of RUN_DIR
        state = fileio.read_json(checkpoint / TRAINER_STATE, "the run directory is damaged")
        step = state.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise UserError(f"{checkpoint / TRAINER_STATE} holds no step count; the run directory is damaged")
    return step


def require_weights_match_config(run_dir: Path) -> None:
    """UserError when the newest checkpoint's weights are not those of the model config.json describes.

    Read from the weights file's header alone against a model built on the `meta` device (no memory,
    no numbers), so a config.json edited by hand (another `arch`, `dim`, `n_layers`) is named as the
    cause before anything else -- the corpus, the optimizer -- is blamed.
    """
    import torch

    from minitx.model import build_model

    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return
    run = load_run(run_dir)
    shapes = tensor_shapes(checkpoint / WEIGHTS)
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in model_state(build_model(run.model_config)).items()}
    if shapes != expected:
        names = sorted(set(shapes) ^ set(expected)) or sorted(n for n in shapes if shapes[n] != expected[n])
        raise UserError(
            f"{Path(run_dir) / 'config.json'} does not describe the weights of {checkpoint} (e.g. {names[0]}): "
            "config.json was changed since the run was saved (arch or a size?); restore it, or start a new run"
        )


def load_trainer_state(
    checkpoint: Path, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore optimizer moments from a checkpoint directory; return (trainer_state, rng_tensors)."""
    checkpoint = Path(checkpoint)
    path = checkpoint / TRAINER_STATE
    if not path.is_file():
        raise UserError(f"{checkpoint} has no {TRAINER_STATE}: nothing to resume (train without --resume)")
    state = fileio.read_json(path, "cannot resume")
    tensors, meta = read_tensors(checkpoint / OPTIMIZER, "optimizer state")
    if meta.get("step") != str(state.get("step")):
        raise UserError(
            f"{checkpoint}: optimizer state is from step {meta.get('step')} but {TRAINER_STATE} says "
            f"step {state.get('step')}; the checkpoint is damaged -- cannot resume exactly"
        )
    opt_state: dict[int, dict[str, Any]] = {}
    rng: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.startswith("rng."):
            rng[key[4:]] = value
            continue
        _, idx, name = key.split(".", 2)
        opt_state.setdefault(int(idx), {})[name] = value
    current = optimizer.state_dict()
    groups = state.get("param_groups", current["param_groups"])
    if len(groups) != len(current["param_groups"]):
        raise UserError(f"{checkpoint}: optimizer layout does not match the model; cannot resume")
    for g, cur in zip(groups, current["param_groups"], strict=True):
        g["params"] = cur["params"]
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    return state, rng
