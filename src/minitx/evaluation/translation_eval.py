"""Evaluating an encoder-decoder run on its held-out sentence pairs.

Two kinds of number, from the same pairs:

    target loss    mean -log p(y_t | y_<t, source) over the reference's tokens and its end (teacher forcing),
                   and bits per byte = loss / ln 2 × target tokens / target bytes
    output scores  translate every source (greedy), then exact match, chrF, BLEU and the share of outputs
                   the target-language checker accepts (`translation.translation_scores`)

Each share comes with a 95% Wilson interval; chrF and BLEU with a bootstrap over sentences (the
per-sentence n-gram counts are resampled and summed, as sacrebleu's own significance test does). The
same scores are split by phenomenon (0 / 1 / 2+ adjective-noun phrases, how far words move).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from minitx.evaluation.intervals import wilson
from minitx.evaluation.translation import ADJECTIVE_BUCKETS, MOVEMENT_BUCKETS, movement_bucket

if TYPE_CHECKING:
    from minitx.model.encoder_decoder import EncoderDecoder
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer

#: Resamples of the chrF / BLEU bootstrap (their counts are summed, so each resample is cheap).
BOOTSTRAP_RESAMPLES = 500


@functools.cache
def builtin_pairs_once() -> tuple[dict, ...]:
    """The built-in pairs, generated once per process (about 5 s each time otherwise); do not modify them."""
    from minitx.dataset.pairs import builtin_pairs

    return tuple(builtin_pairs())


def held_out_pairs(run: Run) -> list[dict]:
    """The pairs the run held out when it trained: the built-in ones, or the last share of its JSONL file."""
    from minitx.dataset.pairs import BUILTIN_NAME, split_pairs
    from minitx.errors import UserError
    from minitx.text.pairs import read_pairs

    train = run.train_config
    if train.corpus == BUILTIN_NAME:
        pairs = list(builtin_pairs_once())
    elif train.corpus_files:
        from pathlib import Path

        path = Path(train.corpus_files[0])
        if not path.is_file():
            raise UserError(f"{run.path} was trained on {path}, which is gone; put it back to evaluate on its pairs")
        pairs = read_pairs(path, train.source_field, train.target_field)
    else:
        raise UserError(f"{run.path} records no corpus of sentence pairs to hold out")
    return split_pairs(pairs, train.val_fraction)[1]


def target_order(references: Sequence[str]) -> str | None:
    """The target word order ("svo"/"sov") under which the checker accepts most references; None if neither
    accepts at least half (the pairs are not in the built-in target language, so grammaticality is unknown)."""
    from minitx.corpus.target_check import check_target
    from minitx.corpus.translation import ORDERS

    sample = list(references[:200])
    if not sample:
        return None
    accepted = {order: sum(check_target(r, order)[0] for r in sample) for order in ORDERS}
    best = max(ORDERS, key=lambda order: accepted[order])
    return best if accepted[best] >= len(sample) / 2 else None


@dataclass
class TargetLoss:
    """Teacher-forced loss on the references: nats per target token and bits per byte of target text."""

    pairs: int
    tokens: int
    bytes: int
    loss: float
    bits_per_byte: float


@torch.no_grad()
def target_loss(model: EncoderDecoder, tokenizer: Tokenizer, pairs: Sequence[dict], batch_size: int = 64) -> TargetLoss:
    """Mean cross-entropy of every target token and end token, summed over pairs (longer than the block: left out)."""
    import torch.nn.functional as F

    from minitx.dataset.pairs import collate
    from minitx.model.inputs import end_token

    boundary = end_token(tokenizer)
    block = model.config.block_size
    sources = tokenizer.encode_pieces([p["source"] for p in pairs])
    targets = tokenizer.encode_pieces([p["target"] for p in pairs])
    kept = [i for i in range(len(pairs)) if len(sources[i]) < block and len(targets[i]) < block]
    device = model.wte.weight.device
    model.eval()
    nll, tokens = 0.0, 0
    for start in range(0, len(kept), batch_size):
        chunk = kept[start : start + batch_size]
        batch = collate([np.asarray(sources[i]) for i in chunk], [np.asarray(targets[i]) for i in chunk], boundary)
        source, target_in, padding, wanted = (t.to(device) for t in batch)
        logits, _ = model(source, target_in, padding)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        nll += float(F.cross_entropy(flat, wanted.reshape(-1), ignore_index=-1, reduction="sum"))
        tokens += int((wanted >= 0).sum())
    n_bytes = sum(len(pairs[i]["target"].encode("utf-8")) for i in kept)
    loss = nll / tokens if tokens else math.nan
    bpb = loss / math.log(2) * tokens / n_bytes if n_bytes else math.nan
    return TargetLoss(len(kept), tokens, n_bytes, loss, bpb)


def _corpus_stats(metric: Any, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """sacrebleu's per-sentence sufficient statistics [n, k]; a corpus score is the score of their sum."""
    return np.asarray(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


def score_with_interval(metric_name: str, hypotheses: Sequence[str], references: Sequence[str],
                        seed: int = 0) -> dict[str, float]:
    """{"score", "low", "high"}: corpus chrF or BLEU (0-100) and its 95% bootstrap interval over sentences."""
    from sacrebleu.metrics import BLEU, CHRF

    metric = CHRF() if metric_name == "chrf" else BLEU()
    if not references:
        return {"score": math.nan, "low": math.nan, "high": math.nan}
    stats = _corpus_stats(metric, hypotheses, references)
    score = float(metric._compute_score_from_stats(list(stats.sum(axis=0))).score)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(stats), size=(BOOTSTRAP_RESAMPLES, len(stats)))
    values = [metric._compute_score_from_stats(list(stats[p].sum(axis=0))).score for p in picks]
    low, high = np.quantile(values, [0.025, 0.975])
    return {"score": score, "low": float(low), "high": float(high)}


def share_with_interval(hits: int, n: int) -> dict[str, float]:
    """{"share", "low", "high", "hits", "n"}: k/n with its Wilson interval."""
    low, high = wilson(hits, n)
    return {"share": hits / n if n else math.nan, "low": low, "high": high, "hits": hits, "n": n}


def output_scores(hypotheses: Sequence[str], references: Sequence[str], order: str | None, seed: int = 0) -> dict:
    """{"n", "exact_match", "chrf", "bleu", "grammatical"}, each with a 95% interval (grammatical: None, no order)."""
    from minitx.corpus.target_check import check_target

    n = len(references)
    same = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    scores: dict[str, Any] = {"n": n, "exact_match": share_with_interval(same, n),
                              "chrf": score_with_interval("chrf", hypotheses, references, seed),
                              "bleu": score_with_interval("bleu", hypotheses, references, seed),
                              "grammatical": None}
    if order is not None:
        scores["grammatical"] = share_with_interval(sum(check_target(h, order)[0] for h in hypotheses), n)
    return scores


def phenomenon_buckets(pairs: Sequence[dict]) -> dict[str, dict[str, list[int]]]:
    """The indices of the pairs in each bucket: {"adjective_phrases": {"0": [...], ...}, "movement": {...}}."""
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import adjective_noun_phrases

    groups: dict[str, dict[str, list[int]]] = {"adjective_phrases": {}, "movement": {}}
    for index, pair in enumerate(pairs):
        try:
            phrases = adjective_noun_phrases(pair["source"])
            groups["adjective_phrases"].setdefault(ADJECTIVE_BUCKETS[min(phrases, 2)], []).append(index)
        except SentenceRejected:
            pass
        if pair.get("alignment"):
            groups["movement"].setdefault(movement_bucket(pair["alignment"]), []).append(index)
    order_of = {"adjective_phrases": list(ADJECTIVE_BUCKETS), "movement": [name for name, _ in MOVEMENT_BUCKETS]}
    return {what: {b: buckets[b] for b in order_of[what] if b in buckets} for what, buckets in groups.items()}


@dataclass
class TranslationEval:
    """Everything `minitx eval` reports for an encoder-decoder run (`to_dict` is its JSON)."""

    loss: TargetLoss
    order: str | None
    overall: dict
    by_phenomenon: dict[str, dict[str, dict]]
    examples: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"target": asdict(self.loss), "order": self.order, "outputs": self.overall,
                "by_phenomenon": self.by_phenomenon, "wrong_examples": self.examples}


def evaluate_translation(model: EncoderDecoder, tokenizer: Tokenizer, pairs: Sequence[dict], *, beam: int = 1,
                         seed: int = 0, batch_size: int = 32) -> TranslationEval:
    """Target loss, then translate every source and score the outputs overall and by phenomenon."""
    from minitx.generation.translate import translate

    block = model.config.block_size
    sources = tokenizer.encode_pieces([p["source"] for p in pairs])
    pairs = [p for p, ids in zip(pairs, sources, strict=True) if len(ids) + 1 <= block]  # what the model can read
    loss = target_loss(model, tokenizer, pairs)
    hypotheses = translate(model, tokenizer, [p["source"] for p in pairs], beam=beam, batch_size=batch_size)
    references = [p["target"] for p in pairs]
    order = target_order(references)
    by_phenomenon = {
        what: {bucket: output_scores([hypotheses[i] for i in indices], [references[i] for i in indices], order, seed)
               for bucket, indices in buckets.items()}
        for what, buckets in phenomenon_buckets(pairs).items()
    }
    wrong = [{"source": p["source"], "reference": r, "output": h}
             for p, r, h in zip(pairs, references, hypotheses, strict=True) if h.strip() != r.strip()][:5]
    return TranslationEval(loss, order, output_scores(hypotheses, references, order, seed), by_phenomenon, wrong)
