"""One engine for every experiment: runs per variant × seed, trained alike, measured alike, resumable.

An experiment is one module with one `Experiment` subclass that declares

    runs()                      its variants × seeds: a `RunSpec` each (a name and the flags that differ)
    prepare(out, observer)      what every run shares (a corpus, one tokenizer, test sets): a `Shared`
    measure(run_dir, spec, shared)   one trained run's measures, as plain data (RUN/lab.json)

and the engine does the rest, the same way for all of them:

    DIR/experiment.json         the settings; a rerun must use the same recipe (more seeds or fewer
                                variants are fine: they only add runs or report on a subset)
    DIR/runs/<name>/            a run directory exactly as `minitx train` writes it, + lab.json

A run with lab.json is reused as it is; a trained run without it is only measured; an interrupted run
continues from its last checkpoint (`minitx train --resume` semantics); Ctrl-C stops after saving, and
the same command picks up where it stopped. Seeds are outermost, so after the first round every
variant has a result. The report (mean ± spread over seeds, intervals) is each experiment's own,
built from the list of lab.json records `run_experiment` returns (`summarise` helps).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.errors import UserError
from minitx.fileio import atomic_write_json, read_json

if TYPE_CHECKING:
    from minitx.training.loop import TrainProgress

SETTINGS_FILE = "experiment.json"
#: lab.json sits next to the run's own files; its presence means "this run is measured".
LAB_FILE = "lab.json"


@dataclass
class RunSpec:
    """One run: its variant, its seed, its directory name and the training flags that make it this variant."""

    variant: str
    seed: int
    name: str
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shared:
    """What every run of an experiment shares: corpus files (none for built-in pairs), flags (a tokenizer, a
    preset, pair files) and anything the measures need (test sets)."""

    files: list[Path] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunStatus:
    """What the experiment knows about one run when it reaches it."""

    kind: str  # the variant's name
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


class Experiment:
    """Base class of an experiment's settings (a dataclass with `model`, `train` and `seeds` fields).

    `SELECTION` names the settings that only choose which runs there are (ignored when a rerun is compared
    with the saved experiment.json).
    """

    SELECTION: tuple[str, ...] = ("kinds", "seeds")
    model: dict[str, Any]
    train: dict[str, Any]
    seeds: int

    def validate(self) -> None: ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def runs(self) -> list[RunSpec]:
        raise NotImplementedError

    def prepare(self, out: Path, observer: Observer) -> Shared:
        return Shared()

    def training(self, spec: RunSpec) -> AbstractContextManager[Any]:
        """What surrounds a run's training (e.g. hooks that perturb it); nothing by default."""
        return nullcontext()

    def files(self, spec: RunSpec, shared: Shared) -> list[Path]:
        """The corpus (or pairs) file a run trains on: the shared ones unless a variant trains on its own."""
        return shared.files

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        raise NotImplementedError


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


def recipe(settings: dict[str, Any], selection: tuple[str, ...] = ("kinds", "seeds")) -> dict[str, Any]:
    """The settings that decide each run's numbers: all but which runs there are (`selection`), where they
    compute (--device, --threads) and the flags that change no number (--save-every, --keep, ...;
    `Flag.resume`). The step budget does decide them."""
    from minitx.config import TrainConfig, flag_fields, flag_of

    elsewhere = {f.name for f in flag_fields(TrainConfig) if not flag_of(f).recipe} - {"steps"}
    kept = {k: v for k, v in settings.items() if k not in selection}
    return {**kept, "train": {k: v for k, v in settings.get("train", {}).items() if k not in elsewhere}}


def claim(out: Path, experiment: Experiment) -> None:
    """DIR/experiment.json: written the first time; a rerun with another recipe, or a non-empty DIR of
    something else, is refused (nothing is touched)."""
    experiment.validate()
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / SETTINGS_FILE
    wanted = json.loads(json.dumps(experiment.to_dict()))  # as it reads back from JSON
    if settings_path.is_file():
        saved = read_json(settings_path, f"remove it or choose another --out than {out}")
        old, new = recipe(saved, experiment.SELECTION), recipe(wanted, experiment.SELECTION)
        if old != new:
            changed = sorted(k for k in new if old.get(k) != new[k])
            raise UserError(f"{out} holds an experiment with other settings ({', '.join(changed)} differ); "
                            "rerun with the same flags to continue it, or choose another --out")
    elif any(out.iterdir()):
        raise UserError(f"{out} is not empty and holds no {SETTINGS_FILE}; choose an empty or new --out")
    atomic_write_json(settings_path, wanted)


def run_experiment(
    out: Path,
    experiment: Experiment,
    observer: Observer | None = None,
    show_progress: bool = True,
    progress: Callable[[], TrainProgress] | None = None,
) -> ExperimentResult:
    """Train and measure every run that is not done yet; return every run's measures (lab.json), in run order."""
    from minitx.training.setup import run_training

    observer = observer or Observer()
    out = Path(out)
    started = time.perf_counter()
    claim(out, experiment)
    shared = experiment.prepare(out, observer)
    specs = experiment.runs()
    durations: list[float] = []
    results: list[dict[str, Any]] = []

    def stopped() -> ExperimentResult:
        return ExperimentResult(False, results, time.perf_counter() - started)

    for index, spec in enumerate(specs):
        run_dir = out / "runs" / spec.name
        steps = {**experiment.train, **spec.flags}["steps"]
        status = RunStatus(spec.variant, spec.seed, spec.name, run_state(run_dir, steps))
        eta = statistics.fmean(durations) * (len(specs) - index) if durations else None
        observer.run_started(index, len(specs), status, eta)
        run_started = time.perf_counter()
        if status.state in ("new", "partial"):  # the very code of `minitx train`, fresh or --resume
            flags = {**experiment.model, **experiment.train, **spec.flags, "seed": spec.seed, **shared.flags}
            with experiment.training(spec):
                _, trained = run_training(experiment.files(spec, shared), run_dir, flags=flags,
                                          resume=status.state == "partial",
                                          force=status.state == "new", show_progress=show_progress,
                                          progress=progress() if progress is not None and show_progress else None)
            if trained.interrupted:
                return stopped()
        if status.state != "measured":
            observer.measuring(status)
            try:
                lab = experiment.measure(run_dir, spec, shared)
            except KeyboardInterrupt:  # Ctrl-C while measuring: the run is trained; it is measured next time
                return stopped()
            atomic_write_json(run_dir / LAB_FILE, lab)
            durations.append(time.perf_counter() - run_started)
        lab = read_json(run_dir / LAB_FILE, "delete it to measure the run again")
        observer.run_done(status, lab)
        results.append(lab)
    return ExperimentResult(True, results, time.perf_counter() - started)


def shared_tokenizer(out: Path, text: Callable[[], str], vocab_size: int, observer: Observer) -> Path:
    """DIR/tokenizer.json: one BPE trained once on `text()`, shared by every run of the experiment."""
    path = out / "tokenizer.json"
    if not path.is_file():
        from minitx.text.tokenizer import Tokenizer

        observer.preparing(f"training one BPE tokenizer ({vocab_size} tokens) for every run")
        Tokenizer.train_bpe([text()], vocab_size=vocab_size, show_progress=False).save(path)
    return path


#: The 97.5% quantile of Student's t with df = 1 .. 10 degrees of freedom (then the normal's 1.96).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def summarise(values: list[float | None]) -> dict[str, Any]:
    """mean, sd (sample; 0 for one value) and n over seeds, None values left out, with the 95% t-interval of
    the mean (low, high) when there are 2+ values, else None: the error bar every experiment reports."""
    from minitx.evaluation.intervals import mean_and_spread

    kept = [float(v) for v in values if v is not None]
    mean, sd = mean_and_spread(kept)
    low = high = None
    if mean is not None and sd is not None and len(kept) > 1:
        t = T975[len(kept) - 2] if len(kept) - 1 <= len(T975) else 1.96
        half = t * sd / len(kept) ** 0.5
        low, high = mean - half, mean + half
    return {"mean": mean, "sd": sd, "n": len(kept), "low": low, "high": high}


def by_variant(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The lab.json records of each variant (key "variant"), in the variants' order."""
    return {v: [r for r in runs if r.get("variant") == v] for v in variants}
