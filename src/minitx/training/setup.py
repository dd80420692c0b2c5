"""A training run as `minitx train` sets it up: from files on disk to a run directory, fresh or resumed.

A fresh run builds everything the training loop (loop.py) needs, in this order:

    data      = DATA_DIR (minitx prepare), the corpus files        its text's sha256 goes into config.json
                through the token cache, or the built-in stories   (dataset/training_data.py)
    tokenizer = DATA_DIR's, --tokenizer PATH, `char`, or a BPE trained on the text
    ids       = memory maps of the prepared train / val tokens (the built-in stories: in memory)
    model     = the preset's shape with the model flags on top;  vocab_size comes from the tokenizer
    RUN_DIR   = tokenizer.json + config.json; the Trainer adds weights, optimizer state and metrics

An existing non-empty RUN_DIR is only reused with --resume (or replaced with --force). --resume reads
the tokenizer, model and recipe back from RUN_DIR and keeps them: the corpus must have the same sha256,
and a flag given that differs from its saved value is a UserError naming it -- unless its field's
`Flag.resume` says it changes no result (SAVED: --steps is the new total) or says where the run computes
(NOW: --device, --threads); `config.changeable_on_resume()` lists them, and so does `--help`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import rundir
from minitx.config import (
    ARCH_PRESETS,
    DEFAULT_PRESET,
    NOW,
    PRESETS,
    RECIPE,
    ModelConfig,
    TrainConfig,
    flag_fields,
    flag_of,
    flag_text,
    given,
    make_model_config,
    make_train_config,
    preset,
)
from minitx.dataset import load_training_data
from minitx.device import resolve_device, resolve_dtype
from minitx.errors import UserError
from minitx.fileio import check_writable
from minitx.model import check_model_config
from minitx.training import distributed
from minitx.training.distributed import World
from minitx.training.loop import Trainer, TrainProgress, TrainResult

if TYPE_CHECKING:
    from minitx.text.tokenizer import Tokenizer


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to clobber another run: an existing non-empty RUN_DIR needs --resume or --force."""
    run_dir = Path(run_dir)
    if resume:
        if not rundir.is_run_dir(run_dir):
            raise UserError(f"--resume: {run_dir} is not a run directory to resume (no config.json)")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; choose a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not force:
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it, --force to replace it, "
            "or choose another --out"
        )


def clear_run_dir(run_dir: Path) -> None:
    """With --force: remove the files a previous run left (only minitx's own files and its checkpoints)."""
    import shutil

    for name in rundir.RUN_FILES:
        p = Path(run_dir) / name
        if p.is_file():
            p.unlink()
    rundir.remove_leftovers(run_dir)
    for _, path in rundir.list_checkpoints(run_dir):
        shutil.rmtree(path)


# ---------------------------------------------------------------------------------------------
# From files on disk (or the built-in corpus) to a finished run directory.

def run_training(
    files: list[Path],
    out: Path,
    *,
    flags: dict[str, Any],
    resume: bool = False,
    force: bool = False,
    show_progress: bool = True,
    world: World | None = None,
    notify: Callable[[str], None] | None = None,
    prepare_progress: Callable[[], AbstractContextManager[Any]] | None = None,
    progress: TrainProgress | None = None,
) -> tuple[Trainer, TrainResult]:
    """Everything `minitx train` does, as one call: corpus → tokenizer → ids → model → run dir.

    `flags` are the ModelConfig and TrainConfig flags by field name (None or absent: not given); a fresh
    run puts them on top of the preset, `--resume` refuses any that would change the saved recipe.
    Under torchrun (`world` of several ranks) rank 0 checks and writes RUN_DIR and sends its tokenizer
    to the other ranks, so every rank builds the same model from the same ids. --resume reads RUN_DIR
    on every rank: on several machines it must be on a filesystem they share. `notify` receives
    one-line notes for the user (e.g. that prepared tokens are reused); `progress` the training's reports.
    """
    out = Path(out)
    if not resume:
        flags = with_architecture_preset(flags)
    train_config = make_train_config(flags.get("preset"), flags)  # impossible values fail first
    world = world if world is not None else World.from_env()
    if world.is_main:
        check_run_dir(out, resume, force)
        check_writable(out)
    if resume:
        run = rundir.load_run(out)
        refuse_recipe_changes(run, flags)
        tokenizer, model_config = run.tokenizer, run.model_config
        train_config = resumed_train_config(run.train_config, flags)
        files = files or [Path(f) for f in train_config.corpus_files]
    vocab_size = flags.get("vocab_size") or preset(train_config.preset or DEFAULT_PRESET)["model"]["vocab_size"]
    if not resume:  # a bad shape fails before preparing
        proposed = make_model_config(train_config.preset, flags, vocab_size=vocab_size)
        check_model_config(proposed)
        arch = proposed.arch
    else:
        arch = model_config.arch
    if resume:
        chosen_tokenizer = tokenizer
    elif world.distributed and not world.is_main:  # every rank encodes with rank 0's tokenizer
        from minitx.text.tokenizer import Tokenizer

        chosen_tokenizer = Tokenizer.from_json_str(distributed.broadcast_from_main(None, world))
    else:
        chosen_tokenizer = train_config.tokenizer
    data = load_training_data(files, tokenizer=chosen_tokenizer, vocab_size=vocab_size,
                              val_fraction=train_config.val_fraction,
                              val_fraction_given=flags.get("val_fraction") is not None,
                              prepared_hint=train_config.prepared_data if resume else None,
                              text_field=train_config.text_field, arch=arch,
                              pair_fields=(train_config.source_field, train_config.target_field),
                              show_progress=show_progress, notify=notify, prepare_progress=prepare_progress)
    if resume and train_config.corpus_sha256 not in (None, data.text_sha256):
        raise UserError(
            f"the corpus ({data.source}) is not the text this run was trained on (its sha256 changed); "
            "resume with the same files, or start a new run"
        )
    if not resume:
        tokenizer = data.tokenizer
        if world.distributed and world.is_main:
            distributed.broadcast_from_main(tokenizer.to_json_str(), world)
        model_config = make_model_config(train_config.preset, flags, vocab_size=tokenizer.vocab_size)
    if data.prepared is not None:
        train_config.val_fraction = data.prepared.meta["val_fraction"]  # the split the data was prepared with
    for name, value in data.record().items():
        setattr(train_config, name, value)
    split = data.split(model_config.block_size, train_config.val_fraction, train_config.doc_aligned)
    for note in data.notes if notify is not None else []:
        notify(note)
    resolve_dtype(train_config.dtype, resolve_device(train_config.device))  # fail before touching RUN_DIR
    if train_config.log == "tensorboard":
        from minitx.training.scalars import require_tensorboard

        require_tensorboard()
    if not resume and world.is_main:
        if force:
            clear_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save(out / rundir.TOKENIZER)
    trainer = Trainer(out, model_config, train_config, split, resume=resume, world=world)
    if world.is_main:
        rundir.save_config(out, model_config, train_config)  # on --resume: records a longer --steps
    band = expected_band(train_config) if is_stock(files, flags) and not resume else None
    result = trainer.fit(progress=progress, expected_band=band)
    return trainer, result


def with_architecture_preset(flags: dict[str, Any]) -> dict[str, Any]:
    """A fresh run of an architecture with a preset of its own (`ARCH_PRESETS`) and no --preset takes that preset.

    `minitx train --arch encoder-decoder` alone is then the translation recipe, not the story model's shape.
    """
    arch = flags.get("arch")
    if flags.get("preset") is None and arch in ARCH_PRESETS:
        return {**flags, "preset": ARCH_PRESETS[arch]}
    return flags


def is_stock(files: list[Path], flags: dict[str, Any]) -> bool:
    """Built-in corpus, the preset's tokenizer, shape and length: the setting `expected_val_loss` was measured in."""
    shape_or_length = {f.name for f in dataclasses.fields(ModelConfig)} | {"tokenizer", "steps"}
    changed = {**given(flags, ModelConfig), **given(flags, TrainConfig)}
    adamw = changed.get("optimizer", "adamw") == "adamw"  # the bands were measured with AdamW; Muon gets lower
    return not files and not changed.keys() & shape_or_length and adamw


# ---------------------------------------------------------------------------------------------
# Resuming: the run keeps the recipe it started with.


def refuse_recipe_changes(run: rundir.Run, flags: dict[str, Any]) -> None:
    """--resume continues a run with the recipe it started with; a flag that would change it is a UserError.

    Ignoring `--resume --lr 0.01` in silence would let the user believe the learning rate changed,
    so every recipe flag given (not None) must equal the saved value, else the error names it:
    saved lr 0.005 and `--lr 0.01` -> "--resume keeps the run's recipe: --lr 0.01 differs from the
    saved 0.005; drop the flag, or start a new run with --force". --vocab-size is compared with the
    run's vocabulary, --tokenizer with its tokenizer.json. Flags that are no recipe (`Flag.recipe`
    False, see `Flag.resume`) may differ. Nothing is written: call it before touching RUN_DIR.
    """
    saved = {**run.train_config.to_dict(), **run.model_config.to_dict()}  # no field name is in both
    recipe = {f.name for f in flag_fields(ModelConfig, TrainConfig) if flag_of(f).recipe} - {"tokenizer"}
    changes = [
        f"{flag_text(name, value)} differs from the saved {_saved_text(name, saved[name])}"
        for name, value in flags.items()
        if name in recipe and value is not None and value != saved[name]
    ]
    spec = flags.get("tokenizer")
    if spec is not None and not _is_runs_tokenizer(spec, run.tokenizer):
        changes.append(f"--tokenizer {spec} is not the run's own {rundir.TOKENIZER}")
    if changes:
        these = "the flag" if len(changes) == 1 else "these flags"
        raise UserError(
            f"--resume keeps the run's recipe: {', '.join(changes)}; drop {these}, or start a new run with --force"
        )


def _saved_text(field: str, value: Any) -> str:
    """A saved value in the words of `flag_text`: 0.005 -> "0.005", True -> "--bias", None -> "auto"."""
    if value is None:
        return "auto"
    return flag_text(field, value) if isinstance(value, bool) else str(value)


def _is_runs_tokenizer(spec: str, saved: Tokenizer) -> bool:
    """Would `--tokenizer spec` (a tokenizer.json or 'char') build the run's own tokenizer again?"""
    from minitx.text.tokenizer import Tokenizer

    if spec == "char":  # the corpus is checked to be the same, so a char tokenizer of it is the same too
        return saved.kind == "char"
    return Tokenizer.load(spec).to_json_str() == saved.to_json_str()


def resumed_train_config(saved: TrainConfig, flags: dict[str, Any]) -> TrainConfig:
    """A resumed run keeps its recipe; each other flag follows its `Flag.resume`: SAVED takes the value
    given, else keeps the saved one (--steps given is the new total); NOW takes the value given, else
    the default (how the run computes now: --device, --threads)."""
    for f in flag_fields(TrainConfig):
        rule, value = flag_of(f).resume, flags.get(f.name)
        if rule == RECIPE:
            continue
        if value is not None:
            setattr(saved, f.name, value)
        elif rule == NOW:
            setattr(saved, f.name, f.default)
    return saved


def expected_band(cfg: TrainConfig) -> tuple[float, float] | None:
    """The validation-loss band measured for this preset on the built-in corpus (stock settings only)."""
    return PRESETS.get(cfg.preset or DEFAULT_PRESET, {}).get("expected_val_loss")
