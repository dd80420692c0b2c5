"""Everything the lab measures on one trained run, written to RUN/lab.json.

    validation loss, bits per byte     the run's own validation split, every window (scoring.score_ids)
    validation curve                   the losses logged while training (metrics.jsonl)
    minimal pairs                      the same pairs for every run (same seed), accuracy per phenomenon
    order test                         words / sentences shuffled, gaps in bits per byte
    grammar of sampled stories         share of sentences the checker accepts, and the errors by kind
    extrapolation at 2x block          loss on positions [B, 2B) of windows of 2B tokens (not for learned)
    training time                      seconds spent in optimisation steps

Every measure is deterministic for a given run and `LabSettings` (seeded pairs, shuffles and
samples), so two runs differ only because their models do.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: lab.json sits next to the run's own files; its presence means "this run is measured".
LAB_FILE = "lab.json"


@dataclass(frozen=True)
class LabSettings:
    """How much of each measure to take; the same for every run of an experiment."""

    pairs: int = 600
    stories: int = 60
    order_documents: int = 300
    extrapolation_windows: int = 120
    seed: int = 0  # pairs, shuffles and samples


def error_kind(reason: str) -> str:
    """The checker's reason grouped into a kind: "agreement: ..." -> "agreement",
    "pronoun 'he' has no earlier ..." -> "pronoun", "not a sentence of the grammar ..." -> "structure"."""
    if reason.startswith("not a sentence") or reason.startswith("empty sentence"):
        return "structure"
    if reason.startswith("pronoun '"):
        return "pronoun"
    head = reason.split(":")[0] if ":" in reason else reason.split(" ")[0]
    return "unknown word" if head == "unknown" else head


def measure_run(run_dir: Path, settings: LabSettings) -> dict[str, Any]:
    """Load the run, take every measure, and return them as plain data (see the module docstring)."""
    from minitx import rundir
    from minitx.corpus.pairs import minimal_pairs
    from minitx.evaluation.extrapolation import extrapolation
    from minitx.evaluation.intervals import wilson
    from minitx.evaluation.minimal_pairs import score_pairs
    from minitx.evaluation.order import documents_of, order_test
    from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

    started = time.perf_counter()
    model, run = rundir.load_model(run_dir)
    model.eval()
    config = model.config
    history = rundir.read_metrics(run_dir)
    ids, n_bytes, _ = validation_ids(run)
    score = score_ids(model, ids, n_bytes)
    pairs = score_pairs(model, run.tokenizer, minimal_pairs(settings.pairs, settings.seed))
    documents = documents_of(run.tokenizer.decode(ids.tolist()), settings.order_documents)
    order = order_test(model, run.tokenizer, documents, seed=settings.seed)
    stories = sample_stories(model, run.tokenizer, settings.stories, settings.seed)
    grammar = grammar_score(stories)
    errors: dict[str, int] = {}
    for rejection in grammar.rejected:
        errors[error_kind(rejection.reason)] = errors.get(error_kind(rejection.reason), 0) + 1
    low, high = wilson(grammar.accepted, grammar.total)
    if not model.positions.extrapolates:
        stretch = None
        stretch_note = model.positions.stretch_refusal
    else:
        stretch = extrapolation(model, ids, 2 * config.block_size, max_windows=settings.extrapolation_windows)
        stretch_note = ""
    beyond = stretch.beyond_block() if stretch else None
    return {
        "kind": config.pos,
        "seed": run.train_config.seed,
        "steps": run.train_config.steps,
        "parameters": model.num_parameters(),
        "train_seconds": history[-1].get("train_seconds") if history else None,
        "val_loss": score.loss,
        "val_bpb": score.bits_per_byte,
        "curve": [{"step": m["step"], "val_loss": m["val_loss"], "val_bpb": m["val_bpb"]} for m in history],
        "minimal_pairs": pairs.to_dict(),
        "order_test": order.to_dict(),
        "grammar": {"stories": len(stories), "sentences": grammar.total, "accepted": grammar.accepted,
                    "share": grammar.share, "low": low, "high": high, "incomplete": grammar.incomplete,
                    "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1]))},
        "extrapolation": {
            "context": 2 * config.block_size,
            "in_block_loss": stretch.buckets[0].loss if stretch else None,
            "beyond_block_loss": beyond.loss if beyond else None,
            "beyond_block_low": beyond.low if beyond else None,
            "beyond_block_high": beyond.high if beyond else None,
            "note": stretch_note,
        },
        "settings": asdict(settings),
        "eval_seconds": time.perf_counter() - started,
    }
