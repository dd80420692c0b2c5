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

A run directory has one writer at a time: rank 0 holds RUN_DIR/.lock (rundir/lock.py) from before the
first check to the end of training, so two `train --out R` started together cannot both pass the
"is it free?" check. Setup is a unit: config.json is written last, after the tokenizer; a setup that
fails removes what it wrote (the whole directory if it made it), and a directory that a kill left
without config.json -- only a tokenizer.json, the lock, a temporary file -- is recognised as a setup
that never finished and is set up again by a plain rerun. Before the model is built its training
memory is estimated (`memory.require_training_fits`) and what cannot fit is refused in one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import rundir
from minitx.config import (
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
from minitx.fileio import check_writable, crash_point
from minitx.model import check_model_config
from minitx.model.memory import require_training_fits
from minitx.rundir.lock import LOCK, run_lock
from minitx.tokens.sources import is_stream
from minitx.training import distributed
from minitx.training.distributed import World
from minitx.training.loop import Trainer, TrainProgress, TrainResult

if TYPE_CHECKING:
    from minitx.text.tokenizer import Tokenizer


#: What a setup writes into RUN_DIR before config.json, the file that makes it a run (rundir.is_run_dir).
SETUP_FILES = (rundir.TOKENIZER, rundir.METRICS, LOCK)


def unfinished_setup(run_dir: Path) -> bool:
    """A directory that a setup stopped in (a kill, a crash, a power cut) before writing config.json.

    It holds nothing but what setup writes before config.json (`SETUP_FILES`) and minitx's temporary
    files (`.NAME.*.tmp`): no config.json and no checkpoint. Empty directories count too.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or rundir.is_run_dir(run_dir):
        return False
    for entry in run_dir.iterdir():
        temporary = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if entry.name not in SETUP_FILES and not temporary:
            return False
    return True


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to clobber another run: an existing non-empty RUN_DIR needs --resume or --force.

    An unfinished setup (`unfinished_setup`) is no run: a plain rerun sets it up again; --resume says so.
    """
    run_dir = Path(run_dir)
    if resume:
        if unfinished_setup(run_dir) and (run_dir / rundir.TOKENIZER).exists():
            raise UserError(f"--resume: {run_dir} holds a setup that never finished (no config.json yet); "
                            "start it again without --resume")
        if not rundir.is_run_dir(run_dir):
            raise UserError(f"--resume: {run_dir} is not a run directory to resume (no config.json)")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; choose a directory")
    if run_dir.is_dir() and not unfinished_setup(run_dir) and not force:
        what = "a run" if rundir.is_run_dir(run_dir) or rundir.list_checkpoints(run_dir) else "files"
        raise UserError(
            f"{run_dir} already holds {what}; pass --resume to continue it, --force to replace it, "
            "or choose another --out"
        )


def clear_run_dir(run_dir: Path) -> None:
    """With --force (or after an unfinished setup): remove what a previous run left (only minitx's own
    files, its checkpoints and temporary files); the lock stays, it is ours now."""
    import shutil

    for name in rundir.RUN_FILES:
        p = Path(run_dir) / name
        if p.is_file():
            p.unlink()
    for p in Path(run_dir).glob(".*.tmp"):
        if p.is_file():
            p.unlink()
    rundir.remove_leftovers(run_dir)
    for _, path in rundir.list_checkpoints(run_dir):
        shutil.rmtree(path)


class RunComplete(Exception):
    """--resume of a run that has done all its --steps: nothing to do (`minitx train` says so, exit 0)."""

    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(f"{run_dir} is already complete at step {step}; pass a larger --steps to train it further")
        self.run_dir, self.step = run_dir, step


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
    world = world if world is not None else World.from_env()
    with owned_setup(out, world):
        if not resume:
            flags = with_architecture_preset(flags)
        train_config = make_train_config(flags.get("preset"), flags)  # impossible values fail first
        if world.is_main:
            check_run_dir(out, resume, force)
        if resume:
            run = rundir.load_run(out)
            refuse_recipe_changes(run, flags)
            if world.is_main:
                removed = rundir.remove_leftovers(out)  # what an interrupted save left behind
                if removed and notify is not None:
                    notify(f"note: removed what an interrupted save left behind in {out}: {', '.join(removed)}")
            done = rundir.saved_step(out)
            wanted = flags.get("steps")
            if wanted is not None and wanted < done:
                raise UserError(f"--steps {wanted} is fewer than the {done} steps {out} has already done; "
                                "--steps is the run's new total: pass more than that, or leave it out")
            if done >= (wanted if wanted is not None else run.train_config.steps):
                raise RunComplete(out, done)
            rundir.require_weights_match_config(out)  # a hand-edited arch or shape, named before the corpus is read
            tokenizer, model_config = run.tokenizer, run.model_config
            train_config = resumed_train_config(run.train_config, flags)
            files = files or [Path(f) for f in train_config.corpus_files]
        vocab_size = flags.get("vocab_size") or preset(train_config.preset or DEFAULT_PRESET)["model"]["vocab_size"]
        if not resume:  # a bad shape fails before preparing
            proposed = make_model_config(train_config.preset, flags, vocab_size=vocab_size)
            check_model_config(proposed)
            require_training_fits(proposed, train_config.batch_size, resolve_device(train_config.device))
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
        streams = [str(f) for f in files if str(f) != "-" and is_stream(str(f))]
        if streams:  # a pipe gives its bytes once, and training reads a corpus more than once to cache its tokens
            raise UserError(f"{streams[0]} is a pipe or FIFO, which minitx train cannot cache; prepare it first: "
                            f"minitx prepare {streams[0]} --out DATA_DIR, then minitx train DATA_DIR")
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
        require_training_fits(model_config, train_config.batch_size, resolve_device(train_config.device))
        if not resume and world.is_main:
            if force or unfinished_setup(out):
                clear_run_dir(out)
            out.mkdir(parents=True, exist_ok=True)
            tokenizer.save(out / rundir.TOKENIZER)
        trainer = Trainer(out, model_config, train_config, split, resume=resume, world=world)
        if world.is_main:
            crash_point("setup")
            rundir.save_config(out, model_config, train_config)  # last: from here on RUN_DIR is a run
        band = expected_band(train_config) if is_stock(files, flags) and not resume else None
        result = trainer.fit(progress=progress, expected_band=band)
        return trainer, result


@contextmanager
def owned_setup(out: Path, world: World) -> Iterator[None]:
    """RUN_DIR held by this process while a run is set up and trained (rank 0; the other ranks read what it
    writes): --out must be a writable directory, one writer at a time (`run_lock`), and a setup that fails
    leaves no half-made directory behind."""
    if not world.is_main:
        yield
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a directory")
    check_writable(out)
    made = not out.exists()
    with run_lock(out):
        try:
            yield
        except BaseException:
            if not rundir.is_run_dir(out):  # setup did not finish: leave no half-made directory behind
                _undo_setup(out, made)
            raise


def _undo_setup(out: Path, made: bool) -> None:
    """Remove what a setup that failed wrote: the whole RUN_DIR if this process made it, else its own files."""
    import shutil

    if made:
        shutil.rmtree(out, ignore_errors=True)
    elif unfinished_setup(out):
        clear_run_dir(out)


def with_architecture_preset(flags: dict[str, Any]) -> dict[str, Any]:
    """A fresh run of an architecture with a preset of its own (its `preset` answer) and no --preset takes that
    preset.

    `minitx train --arch encoder-decoder` alone is then the translation recipe, not the story model's shape.
    """
    from minitx.model.registry import architecture

    preset = architecture(flags["arch"]).preset if flags.get("arch") is not None else None
    if flags.get("preset") is None and preset is not None:
        return {**flags, "preset": preset}
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
