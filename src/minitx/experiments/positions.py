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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minitx.config import POSITIONAL_ENCODINGS
from minitx.errors import UserError
from minitx.experiments.engine import (  # noqa: F401  (re-exported: the lab's public names before the engine)
    SETTINGS_FILE,
    Experiment,
    ExperimentResult,
    Observer,
    RunSpec,
    RunStatus,
    Shared,
    run_experiment,
    run_state,
    shared_tokenizer,
)
from minitx.experiments.measure import LAB_FILE, LabSettings, measure_run  # noqa: F401
from minitx.fileio import atomic_write_text

#: The default model and recipe: chosen so that 5 kinds x 2 seeds finish in about 20 minutes on a
#: 2-core CPU, measures included (docs/decisions.md, "the positional-encoding lab").
DEFAULT_MODEL: dict[str, Any] = {"n_layers": 3, "n_heads": 4, "dim": 96, "block_size": 64}
DEFAULT_TRAIN: dict[str, Any] = {"steps": 1200, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup": 60,
                                 "eval_every": 100, "eval_batches": 10, "save_every": 200}
DEFAULT_VOCAB = 1024
DEFAULT_CORPUS_BYTES = 2_000_000
DEFAULT_SEEDS = 2


@dataclass
class PositionsExperiment(Experiment):
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

    def runs(self) -> list[RunSpec]:
        return [RunSpec(kind, seed, name, {"pos": kind}) for kind, seed, name in self.run_names()]

    def prepare(self, out: Path, observer: Observer) -> Shared:
        """The corpus (the built-in stories unless CORPUS files are given) and one tokenizer for every run."""
        if self.corpus_files:
            files = [Path(f) for f in self.corpus_files]
        else:
            corpus = out / "corpus.txt"
            if not corpus.is_file():
                from minitx.corpus.generate import generate_corpus

                observer.preparing(f"writing {self.corpus_bytes:,} bytes of built-in stories")
                atomic_write_text(corpus, generate_corpus(self.corpus_bytes, seed=0))
            files = [corpus]

        def text() -> str:
            from minitx.corpus.sources import load_training_text

            return load_training_text(files)[0]

        tokenizer = shared_tokenizer(out, text, self.vocab_size, observer)
        return Shared(files, {"tokenizer": str(tokenizer)})

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        return measure_run(run_dir, self.lab)
