"""Minimal-pair accuracy: does the model prefer the grammatical twin?

For each pair from `minitx.corpus.pairs` the model reads both documents from `<|doc|>` and the
pair counts as right when

    log p(good) > log p(bad)          (total log-probability of all tokens, in nats)

Totals, not means per token: the twins tell the same story in the same bytes, and a per-token mean
would reward the twin that happens to split into more tokens. A tie counts as wrong. There is no
sampling here -- the same model and pairs always give the same accuracy -- so the only error bar is
the one from having finitely many pairs (a Wilson interval), and across runs the spread over seeds.

Accuracy is reported overall, per phenomenon, and for long-distance agreement per distance (words
between the subject's noun and its verb).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minitx.evaluation.intervals import wilson
from minitx.evaluation.likelihood import total_log_probs
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    from minitx.corpus.pairs import MinimalPair
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer



@dataclass
class Accuracy:
    """k right out of n, with the 95% Wilson interval."""

    right: int
    total: int

    @property
    def value(self) -> float:
        return self.right / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.right, self.total)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {"accuracy": self.value, "right": self.right, "total": self.total, "low": low, "high": high}


@dataclass
class PairResult:
    """Accuracy overall, per phenomenon and per agreement distance; `margins` = log p(good) - log p(bad) per pair."""

    overall: Accuracy
    by_phenomenon: dict[str, Accuracy]
    by_distance: dict[str, Accuracy]
    margins: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.overall.to_dict(),
            "by_phenomenon": {name: acc.to_dict() for name, acc in self.by_phenomenon.items()},
            "agreement_by_distance": {name: acc.to_dict() for name, acc in self.by_distance.items()},
        }


def distance_bucket(distance: int) -> str:
    """Words between subject and verb, grouped so each group has enough pairs: '1', '2-4', '5-6', '7+'."""
    if distance <= 1:
        return "1"
    if distance <= 4:
        return "2-4"
    return "5-6" if distance <= 6 else "7+"


def score_pairs(model: GPT, tokenizer: Tokenizer, pairs: list[MinimalPair]) -> PairResult:
    """Score every pair with the model; see the module docstring."""
    texts = [text for pair in pairs for text in pair.texts()]  # good, bad, good, bad, ...
    totals = total_log_probs(model, [tokenizer.encode(DOC_TOKEN + text) for text in texts])
    margins = [totals[2 * i] - totals[2 * i + 1] for i in range(len(pairs))]
    overall = Accuracy(0, 0)
    by_phenomenon: dict[str, Accuracy] = defaultdict(lambda: Accuracy(0, 0))
    by_distance: dict[str, Accuracy] = defaultdict(lambda: Accuracy(0, 0))
    for pair, margin in zip(pairs, margins, strict=True):
        groups = [overall, by_phenomenon[pair.phenomenon]]
        if pair.phenomenon.startswith("agreement"):
            groups.append(by_distance[distance_bucket(pair.distance)])
        for group in groups:
            group.total += 1
            group.right += margin > 0
    order = ("1", "2-4", "5-6", "7+")
    return PairResult(overall, dict(by_phenomenon), {k: by_distance[k] for k in order if k in by_distance}, margins)
