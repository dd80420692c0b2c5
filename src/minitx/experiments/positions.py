"""The positional-encoding lab: does a transformer need to be told where its tokens are, and how?

One model per kind (sinusoidal, learned, rope, alibi, none) and per seed, all trained on the same
text with the same tokenizer, shape, recipe and budget -- only `pos` and the seed differ -- then
measured the same way (`measure.py`). Seed k means the same initial weights (where shapes agree)
and the same batches for every kind, so kinds are compared on equal terms and seeds show the noise.

    DIR/experiment.json            the settings; a rerun must use the same ones
    DIR/corpus.txt                 the built-in stories (when no CORPUS files are given)
    DIR/tokenizer.json             one tokenizer, trained once, shared by every run
    DIR/runs/<kind>-seed<k>/       a run directory exactly as `minitx train` writes it, + lab.json
    DIR/report.json, report.md, curves.png, metrics.png

Resumable: a run with lab.json is reused as it is; a finished run without it is only measured; an
interrupted run continues from its last checkpoint (`minitx train --resume` semantics); Ctrl-C
stops after saving and the same command picks up where it stopped. The same command with more
--seeds (or other --kinds) trains only the runs that are missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.config import POSITIONAL_ENCODINGS
from minitx.errors import UserError
from minitx.experiments.measure import LAB_FILE, LabSettings, measure_run
from minitx.fileio import atomic_write_json, atomic_write_text, read_json

if TYPE_CHECKING:
    from minitx.training.loop import TrainProgress

SETTINGS_FILE = "experiment.json"

#: The default model and recipe: chosen so that 5 kinds x 2 seeds finish in about 20 minutes on a
#: 2-core CPU, measures included (docs/decisions.md, "the positional-encoding lab").
DEFAULT_MODEL: dict[str, Any] = {"n_layers": 3, "n_heads": 4, "dim": 96, "block_size": 64}
DEFAULT_TRAIN: dict[str, Any] = {"steps": 1200, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup": 60,
                                 "eval_every": 100, "eval_batches": 10, "save_every": 200}
DEFAULT_VOCAB = 1024
DEFAULT_CORPUS_BYTES = 2_000_000
DEFAULT_SEEDS = 2


@dataclass
class PositionsExperiment:
    """Everything that decides the numbers of an experiment; stored in DIR/experiment.json."""

    kinds: list[str] = field(default_factory=lambda: list(POSITIONAL_ENCODINGS))
    seeds: int = DEFAULT_SEEDS
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN))
    vocab_size: int = DEFAULT_VOCAB
    corpus_files: list[str] = field(default_factory=list)
    corpus_bytes: int = DEFAULT_CORPUS_BYTES
    lab: LabSettings = field(default_factory=LabSettings)

    def validate(self) -> None:
        unknown = [k for k in self.kinds if k not in POSITIONAL_ENCODINGS]
        if unknown or not self.kinds:
            raise UserError(f"--kinds: unknown positional encoding {', '.join(unknown) or '(none given)'}; "
                            f"choose from {','.join(POSITIONAL_ENCODINGS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise UserError(f"--kinds names a kind twice: {','.join(self.kinds)}")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {self.seeds}")
        if "pos" in self.model:
            raise UserError("--pos is chosen by the experiment (one run per kind); use --kinds instead")

    def run_names(self) -> list[tuple[str, int, str]]:
        """(kind, seed, directory name) of every run, seeds outermost: after the first round every kind has a result."""
        return [(kind, seed, f"{kind}-seed{seed}") for seed in range(self.seeds) for kind in self.kinds]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunStatus:
    """What the experiment knows about one run when it reaches it."""

    kind: str
    seed: int
    name: str
    state: str  # "measured" | "trained" | "partial" | "new"


class Observer:
    """What an experiment tells its caller as it goes; the command prints it, tests may record it."""

    def preparing(self, what: str) -> None: ...
    def run_started(self, index: int, total: int, status: RunStatus, eta_seconds: float | None) -> None: ...
    def measuring(self, status: RunStatus) -> None: ...
    def run_done(self, status: RunStatus, lab: dict[str, Any]) -> None: ...


@dataclass
class ExperimentResult:
    finished: bool  # False when Ctrl-C stopped a run (it is saved; rerun to continue)
    runs: list[dict[str, Any]]
    seconds: float


def run_state(run_dir: Path, steps: int) -> str:
    """measured (lab.json), trained (all steps saved), partial (a checkpoint to resume) or new."""
    from minitx import rundir

    if (run_dir / LAB_FILE).is_file():
        return "measured"
    checkpoint = rundir.latest_checkpoint(run_dir) if rundir.is_run_dir(run_dir) else None
    if checkpoint is None:
        return "new"
    step = read_json(checkpoint / rundir.TRAINER_STATE, "the run's checkpoint is damaged").get("step", 0)
    return "trained" if step >= steps else "partial"


def _recipe(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide each run's numbers: all but which runs there are (--kinds, --seeds: more
    seeds add runs, fewer report on a subset), where they compute (--device, --threads) and the flags that
    change no number (--save-every, --keep, ...; `Flag.resume`). The step budget does decide them."""
    from minitx.config import TrainConfig, flag_fields, flag_of

    elsewhere = {f.name for f in flag_fields(TrainConfig) if not flag_of(f).recipe} - {"steps"}
    recipe = {k: v for k, v in settings.items() if k not in ("kinds", "seeds")}
    return {**recipe, "train": {k: v for k, v in settings.get("train", {}).items() if k not in elsewhere}}


def prepare(out: Path, experiment: PositionsExperiment, observer: Observer) -> tuple[list[Path], Path]:
    """DIR/experiment.json, the corpus and the shared tokenizer; refuses a DIR holding a different experiment."""
    experiment.validate()
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / SETTINGS_FILE
    wanted = json.loads(json.dumps(experiment.to_dict()))  # as it reads back from JSON
    if settings_path.is_file():
        saved = read_json(settings_path, f"remove it or choose another --out than {out}")
        if _recipe(saved) != _recipe(wanted):
            changed = sorted(k for k in _recipe(wanted) if _recipe(saved).get(k) != _recipe(wanted)[k])
            raise UserError(f"{out} holds an experiment with other settings ({', '.join(changed)} differ); "
                            "rerun with the same flags to continue it, or choose another --out")
    elif any(out.iterdir()):
        raise UserError(f"{out} is not empty and holds no {SETTINGS_FILE}; choose an empty or new --out")
    atomic_write_json(settings_path, wanted)

    if experiment.corpus_files:
        files = [Path(f) for f in experiment.corpus_files]
    else:
        corpus = out / "corpus.txt"
        if not corpus.is_file():
            from minitx.corpus.generate import generate_corpus

            observer.preparing(f"writing {experiment.corpus_bytes:,} bytes of built-in stories")
            atomic_write_text(corpus, generate_corpus(experiment.corpus_bytes, seed=0))
        files = [corpus]
    tokenizer_path = out / "tokenizer.json"
    if not tokenizer_path.is_file():
        from minitx.corpus.sources import load_training_text
        from minitx.text.tokenizer import Tokenizer

        observer.preparing(f"training one BPE tokenizer ({experiment.vocab_size} tokens) for every run")
        text, _ = load_training_text(files)
        Tokenizer.train_bpe([text], vocab_size=experiment.vocab_size, show_progress=False).save(tokenizer_path)
    return files, tokenizer_path


def run_experiment(
    out: Path,
    experiment: PositionsExperiment,
    observer: Observer | None = None,
    show_progress: bool = True,
    progress: Callable[[], TrainProgress] | None = None,
) -> ExperimentResult:
    """Train and measure every run that is not done yet; return every run's measures (lab.json)."""
    from minitx.training.setup import run_training

    observer = observer or Observer()
    out = Path(out)
    started = time.perf_counter()
    files, tokenizer_path = prepare(out, experiment, observer)
    names = experiment.run_names()
    durations: list[float] = []
    results = []
    for index, (kind, seed, name) in enumerate(names):
        run_dir = out / "runs" / name
        status = RunStatus(kind, seed, name, run_state(run_dir, experiment.train["steps"]))
        remaining = len(names) - index
        eta = sum(durations) / len(durations) * remaining if durations else None
        observer.run_started(index, len(names), status, eta)
        run_started = time.perf_counter()
        if status.state in ("new", "partial"):  # the very code of `minitx train`, fresh or --resume
            flags = {**experiment.model, **experiment.train, "pos": kind, "seed": seed,
                     "tokenizer": str(tokenizer_path)}
            _, trained = run_training(files, run_dir, flags=flags, resume=status.state == "partial",
                                      force=status.state == "new", show_progress=show_progress,
                                      progress=progress() if progress is not None and show_progress else None)
            if trained.interrupted:
                return ExperimentResult(False, results, time.perf_counter() - started)
        if status.state != "measured":
            observer.measuring(status)
            try:
                lab = measure_run(run_dir, experiment.lab)
            except KeyboardInterrupt:  # Ctrl-C while measuring: the run is trained; it is measured next time
                return ExperimentResult(False, results, time.perf_counter() - started)
            atomic_write_json(run_dir / LAB_FILE, lab)
            durations.append(time.perf_counter() - run_started)
        lab = read_json(run_dir / LAB_FILE, "delete it to measure the run again")
        observer.run_done(status, lab)
        results.append(lab)
    return ExperimentResult(True, results, time.perf_counter() - started)
