"""The positional-encoding lab for the encoder-decoder: do positions matter for translation?

One encoder-decoder per variant and seed, trained on the same built-in pairs with one shared tokenizer,
the same shape, recipe and budget. A variant is a decoder kind and an encoder kind: every kind on both
stacks, and for each kind but none the same decoder with an encoder without positions (`enc-none`).
An encoder without positions is permutation-equivariant: "the big dog sees the red ball" and "the red
dog sees the big ball" give it the same bag of vectors, so it cannot tell which adjective belongs to
which noun when two adjective-noun phrases share a sentence. Each run is measured on held-out pairs
(exact match, chrF, AER of its best cross-attention head beside random heads, by phenomenon) and on
a test set of unseen sentences with 2+ adjective-noun phrases, where that failure should show.

    DIR/experiment.json   DIR/tokenizer.json   DIR/runs/<variant>-seed<k>/ (+ lab.json)   DIR/report.md|json

Resumable as the decoder-only lab (positions.py): a run with lab.json is reused, a partial one resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minitx.config import POSITIONAL_ENCODINGS, PRESETS
from minitx.errors import UserError
from minitx.experiments.engine import Experiment, Observer, RunSpec, Shared, run_experiment, shared_tokenizer
from minitx.model.positions import NoPositions, encoding_class

#: The kind without positions, and the suffix of a variant whose encoder has none: "rope+enc-none".
NO_POSITIONS = NoPositions.kind
ENCODER_WITHOUT = f"+enc-{NO_POSITIONS}"
#: The default shape and recipe of each run: the "translate" preset's (the default of `train --arch
#: encoder-decoder`), with fewer evaluation batches; every kind and seed trains exactly that recipe.
_PRESET = PRESETS["translate"]
DEFAULT_MODEL: dict[str, Any] = {k: v for k, v in _PRESET["model"].items() if k not in ("vocab_size", "pos")}
DEFAULT_TRAIN: dict[str, Any] = {**_PRESET["train"], "eval_batches": 5, "save_every": 400}
DEFAULT_VOCAB: int = _PRESET["model"]["vocab_size"]


@dataclass
class TranslationLab(Experiment):
    """Everything that decides the numbers; stored in DIR/experiment.json."""

    kinds: list[str] = field(default_factory=lambda: list(POSITIONAL_ENCODINGS))
    seeds: int = 2
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN))
    vocab_size: int = DEFAULT_VOCAB
    test_pairs: int = 300  # held-out pairs each run translates
    two_phrase_pairs: int = 100  # unseen sentences with 2+ adjective-noun phrases
    align_pairs: int = 50  # held-out pairs for the AER of every head
    encoder_none: bool = True  # add the enc-none variants

    def validate(self) -> None:
        unknown = [k for k in self.kinds if k not in POSITIONAL_ENCODINGS]
        if unknown or not self.kinds:
            raise UserError(f"--kinds: unknown positional encoding {', '.join(unknown) or '(none given)'}; "
                            f"choose from {','.join(POSITIONAL_ENCODINGS)}")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {self.seeds}")
        for flag, value in (("--pairs", self.test_pairs), ("two-phrase pairs", self.two_phrase_pairs),
                            ("alignment pairs", self.align_pairs)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1, not {value}")

    def variants(self) -> list[tuple[str, str, str]]:
        """(name, decoder kind, encoder kind): every kind on both stacks, then `<kind>+enc-none` for each kind that
        gives a positional signal."""
        both = [(kind, kind, kind) for kind in self.kinds]
        bare = [(f"{kind}{ENCODER_WITHOUT}", kind, NO_POSITIONS) for kind in self.kinds
                if encoding_class(kind).has_signal]
        return both + (bare if self.encoder_none else [])

    def run_names(self) -> list[tuple[str, str, str, int, str]]:
        return [(name, pos, encoder_pos, seed, f"{name}-seed{seed}") for seed in range(self.seeds)
                for name, pos, encoder_pos in self.variants()]

    def runs(self) -> list[RunSpec]:
        return [RunSpec(variant, seed, name, {"pos": pos, "encoder_pos": encoder_pos})
                for variant, pos, encoder_pos, seed, name in self.run_names()]

    def prepare(self, out: Path, observer: Observer) -> Shared:
        """One BPE tokenizer of the built-in pairs, and the test set of sentences with 2+ adjective-noun phrases."""
        from minitx.evaluation.translation_eval import builtin_pairs_once

        observer.preparing("the shared tokenizer and the test set of sentences with 2+ adjective-noun phrases")
        tokenizer = shared_tokenizer(
            out, lambda: "\n".join(p["source"] + "\t" + p["target"] for p in builtin_pairs_once()) + "\n",
            self.vocab_size, observer)
        return Shared([], {"tokenizer": str(tokenizer), "preset": "translate"},
                      {"two_phrase": two_phrase_test_set(self.two_phrase_pairs)})

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        return {"variant": spec.variant, "seed": spec.seed, **measure(run_dir, self, shared.extra["two_phrase"])}


def two_phrase_test_set(n: int) -> list[dict]:
    """`n` pairs of sentences with 2+ adjective-noun phrases, none of them among the built-in pairs."""
    from minitx.corpus.translation import translation_pairs
    from minitx.evaluation.translation_eval import builtin_pairs_once

    seen = [p["source"] for p in builtin_pairs_once()]
    return translation_pairs(n, seed=7919, min_adjective_phrases=2, exclude=seen)


def measure(run_dir: Path, lab: TranslationLab, two_phrase: list[dict]) -> dict[str, Any]:
    """lab.json of one run: the eval on held-out pairs, exact match on the 2+ set, and every head's AER."""
    from minitx.evaluation.translation_eval import evaluate_translation, held_out_pairs
    from minitx.inspect.alignment import alignment_report, capture_pair
    from minitx.rundir import load_model

    model, run = load_model(run_dir)
    held_out = held_out_pairs(run)
    result = evaluate_translation(model, run.tokenizer, held_out[: lab.test_pairs])
    hard = evaluate_translation(model, run.tokenizer, two_phrase)
    aligned = [p for p in held_out if p.get("alignment")][: lab.align_pairs]
    report = alignment_report([capture_pair(model, run.tokenizer, p["source"], p["target"]) for p in aligned],
                              [p["alignment"] for p in aligned])
    return {"run": run_dir.name, "pos": model.config.pos, "encoder_pos": model.config.encoder_pos or model.config.pos,
            "eval": result.to_dict(), "two_phrases": hard.overall, "alignment": report.to_dict()}


def run_lab(out: Path, lab: TranslationLab, observer: Observer | None = None,
            show_progress: bool = False) -> tuple[bool, list[dict[str, Any]], float]:
    """Train and measure every run not done yet (the engine, `minitx.experiments.engine`); (finished, each
    run's lab.json, seconds)."""
    result = run_experiment(out, lab, observer, show_progress=show_progress)
    return result.finished, result.runs, result.seconds
