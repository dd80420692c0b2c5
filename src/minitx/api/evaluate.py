"""`run.evaluate(...)`: what `minitx eval` measures, as one `Evaluation` (its `to_dict()` is `eval --json`).

A language model (a run that reads no source) is scored on its validation split, on `text`, or on
`files`: loss, perplexity and bits per byte, and as asked the grammar of `grammar` sampled stories,
`minimal_pairs` minimal pairs, the order test and length extrapolation to `context` tokens.
A translator (an encoder-decoder) is scored on its held-out sentence pairs or on one JSON Lines
file of pairs: target loss, exact match, chrF, BLEU and grammaticality. `minitx eval` prints the
same figures from `Evaluation.reports`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.api.inputs import check_eval_choice
from minitx.api.results import Evaluation
from minitx.errors import UserError
from minitx.rundir.files import IMPORTED_FROM

if TYPE_CHECKING:
    from torch import nn

    from minitx.rundir import Run



def evaluate_language_model(model: nn.Module, run: Run, name: str, quantize: str | None, text: str | None,
                            files: Sequence[str | Path], *, grammar: int, minimal_pairs: int, order_test: bool,
                            context: int | None, seed: int, temperature: float) -> Evaluation:
    """Loss, perplexity and bits per byte of `text`, `files` or the validation split of `run` (`name` in
    messages; `quantize`: how its weights are stored), and each measure asked for."""
    import torch

    from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

    check_eval_choice(minimal_pairs=minimal_pairs, context=context, quantize=quantize)
    if text is not None and files:
        raise UserError("give text= or files=, not both")
    tokenizer = run.tokenizer
    if text is None and not files and IMPORTED_FROM in run.raw_config:
        raise UserError(f"{name} was imported, not trained here, so it has no validation split; "
                        "give the text to score: run.evaluate(TEXT)")
    if context is not None:  # refuse (learned positions, too little text) before any slow work
        from minitx.evaluation.extrapolation import stretched_model

        stretched_model(model, max(context, model.config.block_size))
    if files:
        from minitx.text.files import read_corpus

        text, source = read_corpus([Path(f) for f in files]), ", ".join(map(str, files))
    else:
        source = "the text given"
    if text is not None:
        ids, n_bytes = torch.tensor(tokenizer.encode(text), dtype=torch.long), len(text.encode("utf-8"))
    else:
        ids, n_bytes, source = validation_ids(run)
    score = score_ids(model, ids, n_bytes)
    data: dict[str, Any] = {"source": source, "weights": quantize or "none", **dataclasses.asdict(score)}
    reports: dict[str, Any] = {"score": score}
    if grammar > 0:
        report = grammar_score(sample_stories(model, tokenizer, grammar, seed, temperature=temperature))
        data["grammar"] = {**report.to_dict(), "temperature": temperature, "seed": seed}
        reports["grammar"] = report
    if minimal_pairs > 0:
        from minitx.corpus.pairs import minimal_pairs as make_pairs
        from minitx.evaluation.minimal_pairs import score_pairs

        pairs = score_pairs(model, tokenizer, make_pairs(minimal_pairs, seed))
        data["minimal_pairs"] = {**pairs.to_dict(), "seed": seed}
        reports["minimal_pairs"] = pairs
    if order_test:
        from minitx.evaluation.order import documents_of
        from minitx.evaluation.order import order_test as run_order_test

        held_out = text if text is not None else tokenizer.decode(ids.tolist())
        order = run_order_test(model, tokenizer, documents_of(held_out), seed=seed)
        data["order_test"] = order.to_dict()
        reports["order_test"] = order
    if context is not None:
        from minitx.evaluation.extrapolation import extrapolation

        stretch = extrapolation(model, ids, context)
        data["extrapolation"] = stretch.to_dict()
        reports["extrapolation"] = stretch
    return Evaluation(data, reports)


def evaluate_translator(model: nn.Module, run: Run, quantize: str | None, files: Sequence[str | Path], *,
                        sentences: int | None, beam: int, seed: int) -> Evaluation:
    """An encoder-decoder's translations of its held-out pairs (or of one JSON Lines file's), the first
    `sentences` of them: target loss and the output scores, overall and by phenomenon."""
    from minitx.evaluation.translation_eval import evaluate_translation, held_out_pairs

    check_eval_choice(sentences=sentences, n_files=len(files), reads_source=True)
    if files:
        from minitx.text.pairs import read_pairs

        train = run.train_config
        pairs, source = read_pairs(Path(files[0]), train.source_field, train.target_field), str(files[0])
    else:
        pairs, source = held_out_pairs(run), "the held-out pairs"
    pairs = pairs[:sentences] if sentences else pairs
    result = evaluate_translation(model, run.tokenizer, pairs, beam=beam, seed=seed)
    data = {"source": source, "beam": beam, "weights": quantize or "none", **result.to_dict()}
    return Evaluation(data, {"translation": result})
