"""A training run as `minitx train` sets it up: from files on disk to a run directory, fresh or resumed.

A fresh run builds everything the training loop (train.py) needs, in this order:

    text      = the corpus files, or the built-in stories         its sha256 goes into config.json
    tokenizer = --tokenizer PATH, `char`, or a BPE trained on text
    ids       = tokenizer.encode(text), split into train and val
    model     = the preset's shape with the model flags on top;  vocab_size comes from the tokenizer
    RUN_DIR   = tokenizer.json + config.json; the Trainer adds weights, optimizer state and metrics

An existing non-empty RUN_DIR is only reused with --resume (or replaced with --force). --resume reads
the tokenizer, model and recipe back from RUN_DIR and keeps them: the corpus must have the same sha256,
and of the flags only --steps (the new total), --device and --threads may differ from the saved values;
any other flag given that differs is a UserError naming it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx import rundir
from minitx.config import ModelConfig, TrainConfig
from minitx.corpus.sources import load_training_text
from minitx.device import resolve_device, resolve_dtype
from minitx.errors import UserError
from minitx.training import distributed
from minitx.training.distributed import World
from minitx.training.loop import Trainer, TrainResult

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
    """With --force: remove the files a previous run left (only minitx's own files)."""
    for name in rundir.RUN_FILES:
        p = Path(run_dir) / name
        if p.is_file():
            p.unlink()


# ---------------------------------------------------------------------------------------------
# From files on disk (or the built-in corpus) to a finished run directory.

def build_tokenizer(spec: str | None, text: str, vocab_size: int, show_progress: bool):  # noqa: ANN201
    """`--tokenizer PATH` loads one, `char` builds a character tokenizer, None trains a BPE on `text`."""
    from minitx.text.tokenizer import Tokenizer

    if spec == "char":
        return Tokenizer.train_char(text)
    if spec:
        return Tokenizer.load(spec)
    return Tokenizer.train_bpe([text], vocab_size=vocab_size, show_progress=show_progress)


def run_training(
    files: list[Path],
    out: Path,
    *,
    model_overrides: dict[str, Any],
    train_config: TrainConfig,
    tokenizer_spec: str | None = None,
    vocab_size: int | None = None,
    train_flags: dict[str, Any] | None = None,
    resume: bool = False,
    force: bool = False,
    show_progress: bool = True,
    world: World | None = None,
) -> tuple[Trainer, TrainResult]:
    """Everything `minitx train` does, as one call: corpus → tokenizer → ids → model → run dir.

    `train_flags` are the recipe flags the user typed, by TrainConfig field (None: not given); with
    `resume` they, `model_overrides`, `tokenizer_spec` and `vocab_size` must match the saved run.
    Under torchrun (`world` of several ranks) rank 0 checks and writes RUN_DIR and sends its tokenizer
    to the other ranks, so every rank builds the same model from the same ids. --resume reads RUN_DIR
    on every rank: on several machines it must be on a filesystem they share.
    """
    from minitx.config import DEFAULT_PRESET, preset

    out = Path(out)
    world = world if world is not None else World.from_env()
    if world.is_main:
        check_run_dir(out, resume, force)
    if resume:
        run = rundir.load_run(out)
        refuse_recipe_changes(run, model_overrides, train_flags or {}, tokenizer_spec, vocab_size)
        tokenizer, model_config = run.tokenizer, run.model_config
        train_config = _resumed_train_config(run.train_config, train_config)
        files = files or [Path(f) for f in train_config.extra.get("corpus_files", [])]
    text, source = load_training_text(files)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if resume and train_config.extra.get("corpus_sha256") not in (None, digest):
        raise UserError(
            f"the corpus ({source}) is not the text this run was trained on (its sha256 changed); "
            "resume with the same files, or start a new run"
        )
    if not resume:
        chosen = preset(train_config.preset or DEFAULT_PRESET)
        if world.is_main:
            tokenizer = build_tokenizer(tokenizer_spec, text, vocab_size or chosen["vocab_size"], show_progress)
        if world.distributed:  # every rank encodes with rank 0's tokenizer (machines need not share a disk)
            from minitx.text.tokenizer import Tokenizer

            tokenizer_json = distributed.broadcast_from_main(tokenizer.to_json_str() if world.is_main else None, world)
            tokenizer = Tokenizer.from_json_str(tokenizer_json)
        model_fields = {**chosen["model"], **model_overrides, "vocab_size": tokenizer.vocab_size}
        model_config = ModelConfig(**model_fields)
    train_config.extra = {
        **train_config.extra,
        "corpus": source,
        "corpus_files": [str(Path(f).resolve()) for f in files],
        "corpus_bytes": len(text.encode("utf-8")),
        "corpus_sha256": digest,
    }
    ids = tokenizer.encode(text)
    from minitx.text.tokenizer import DOC_TOKEN
    from minitx.training.batches import split_train_val

    doc_id = tokenizer.token_id(DOC_TOKEN) if train_config.doc_aligned else None
    split = split_train_val(ids, len(text.encode("utf-8")), model_config.block_size, train_config.val_fraction,
                            doc_id=doc_id)
    resolve_dtype(train_config.dtype, resolve_device(train_config.device))  # fail before touching RUN_DIR
    if not resume and world.is_main:
        if force:
            clear_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save(out / rundir.TOKENIZER)
    trainer = Trainer(out, model_config, train_config, split, resume=resume, world=world)
    if world.is_main:
        rundir.save_config(out, model_config, train_config)  # on --resume: records a longer --steps
    stock = not files and tokenizer_spec is None and vocab_size is None and not model_overrides
    stock = stock and not train_config.extra.get("steps_given")
    band = expected_band(train_config) if stock and not resume else None
    result = trainer.fit(show_progress=show_progress, expected_band=band)
    return trainer, result


# ---------------------------------------------------------------------------------------------
# Resuming: the run keeps the recipe it started with.

#: What --resume may change: the new total of steps, and where and on how many threads the run computes.
RESUME_MAY_CHANGE = ("steps", "device", "threads")
_FLAG_OF_FIELD = {"n_layers": "--layers", "n_heads": "--heads"}  # the other flags are named like their field


def refuse_recipe_changes(
    run: rundir.Run,
    model_flags: dict[str, Any],
    train_flags: dict[str, Any],
    tokenizer_spec: str | None,
    vocab_size: int | None,
) -> None:
    """--resume continues a run with the recipe it started with; a flag that would change it is a UserError.

    Ignoring `--resume --lr 0.01` in silence would let the user believe the learning rate changed,
    so every model or recipe flag given (not None) must equal the saved value, else the error names it:
    saved lr 0.005 and `--lr 0.01` -> "--resume keeps the run's recipe: --lr 0.01 differs from the
    saved 0.005; drop the flag, or start a new run with --force". Flags are keyed by config field
    (`n_layers` is --layers); --vocab-size is compared with the run's vocabulary, --tokenizer with
    its tokenizer.json. Only RESUME_MAY_CHANGE may differ. Nothing is written: call it before touching RUN_DIR.
    """
    saved = {**run.train_config.to_dict(), **run.model_config.to_dict()}  # no field name is in both
    given = {field: value for field, value in train_flags.items() if field not in RESUME_MAY_CHANGE}
    given.update(model_flags, vocab_size=vocab_size)
    changes = [
        f"{_flag_text(field, value)} differs from the saved {_saved_text(field, saved[field])}"
        for field, value in given.items()
        if value is not None and value != saved[field]
    ]
    if tokenizer_spec is not None and not _is_runs_tokenizer(tokenizer_spec, run.tokenizer):
        changes.append(f"--tokenizer {tokenizer_spec} is not the run's own {rundir.TOKENIZER}")
    if changes:
        these = "the flag" if len(changes) == 1 else "these flags"
        raise UserError(
            f"--resume keeps the run's recipe: {', '.join(changes)}; drop {these}, or start a new run with --force"
        )


def _flag_text(field: str, value: Any) -> str:
    """How the user typed it: ("lr", 0.01) -> "--lr 0.01"; ("bias", False) -> "--no-bias"."""
    flag = _FLAG_OF_FIELD.get(field, "--" + field.replace("_", "-"))
    if isinstance(value, bool):
        return flag if value else "--no-" + flag.removeprefix("--")
    return f"{flag} {value}"


def _saved_text(field: str, value: Any) -> str:
    """A saved value in the words of `_flag_text`: 0.005 -> "0.005", True -> "--bias", None -> "auto"."""
    if value is None:
        return "auto"
    return _flag_text(field, value) if isinstance(value, bool) else str(value)


def _is_runs_tokenizer(spec: str, saved: Tokenizer) -> bool:
    """Would `--tokenizer spec` (a tokenizer.json or 'char') build the run's own tokenizer again?"""
    from minitx.text.tokenizer import Tokenizer

    if spec == "char":  # the corpus is checked to be the same, so a char tokenizer of it is the same too
        return saved.kind == "char"
    return Tokenizer.load(spec).to_json_str() == saved.to_json_str()


def _resumed_train_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """A resumed run keeps its recipe; only --steps (the new total), device and threads may change."""
    if given.extra.get("steps_given"):
        saved.steps = given.steps
    saved.device, saved.threads = given.device, given.threads
    return saved


def expected_band(cfg: TrainConfig) -> tuple[float, float] | None:
    """The validation-loss band measured for this preset on the built-in corpus (stock settings only)."""
    from minitx.config import DEFAULT_PRESET, PRESETS

    return PRESETS.get(cfg.preset or DEFAULT_PRESET, {}).get("expected_val_loss")
