"""`minitx eval RUN [FILES]`: loss, perplexity and bits per byte; optionally grammaticality of samples,
minimal pairs (--minimal-pairs N), the order test (--order-test) and length extrapolation (--context L)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from minitx.commands.interop import IMPORTED_FROM
from minitx.commands.loading import load_for_inference
from minitx.config import DEFAULT_TEMPERATURE
from minitx.console import safe

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.evaluation.extrapolation import Extrapolation
    from minitx.evaluation.minimal_pairs import PairResult
    from minitx.evaluation.order import OrderTest


def run_eval(
    run_dir: Path,
    files: list[Path],
    *,
    grammar: int,
    device: str,
    seed: int,
    as_json: bool,
    temperature: float = DEFAULT_TEMPERATURE,
    quantize: str | None = None,
    threads: int = 0,
    minimal_pairs: int = 0,
    order_test: bool = False,
    context: int | None = None,
) -> None:
    """`minitx eval`: print loss/perplexity/bits-per-byte and each measure asked for."""
    from rich.console import Console
    from rich.table import Table

    from minitx.errors import UserError
    from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

    if minimal_pairs < 0:
        raise UserError(f"--minimal-pairs must be 0 or more, not {minimal_pairs}")
    if context is not None and quantize not in (None, "none"):
        raise UserError(f"--context rebuilds the model for a longer window and needs its float weights; "
                        f"drop --quantize {quantize} to measure length extrapolation")
    model, run = load_for_inference(run_dir, device, threads, quantize, command="minitx eval")
    if not files and IMPORTED_FROM in run.raw_config:
        raise UserError(f"{run_dir} was imported, not trained here, so it has no validation split; "
                        f"give text files to score: minitx eval {run_dir} FILE")
    if context is not None:  # refuse (learned positions, too little text) before any slow work
        from minitx.evaluation.extrapolation import stretched_model

        stretched_model(model, max(context, model.config.block_size))
    if files:
        from minitx.text.files import read_corpus

        text = read_corpus(files)
        ids = torch.tensor(run.tokenizer.encode(text), dtype=torch.long)
        n_bytes, source = len(text.encode("utf-8")), ", ".join(map(str, files))
    else:
        ids, n_bytes, source = validation_ids(run)
        text = None
    score = score_ids(model, ids, n_bytes)
    result: dict[str, Any] = {"source": source, "weights": quantize or "none", **asdict(score)}
    report = pairs = order = stretch = None
    if grammar > 0:
        stories = sample_stories(model, run.tokenizer, grammar, seed, temperature=temperature)
        report = grammar_score(stories)
        result["grammar"] = {**report.to_dict(), "temperature": temperature, "seed": seed}
    if minimal_pairs > 0:
        from minitx.corpus.pairs import minimal_pairs as make_pairs
        from minitx.evaluation.minimal_pairs import score_pairs

        pairs = score_pairs(model, run.tokenizer, make_pairs(minimal_pairs, seed))
        result["minimal_pairs"] = {**pairs.to_dict(), "seed": seed}
    if order_test:
        from minitx.evaluation.order import documents_of
        from minitx.evaluation.order import order_test as run_order_test

        held_out = text if text is not None else run.tokenizer.decode(ids.tolist())
        order = run_order_test(model, run.tokenizer, documents_of(held_out), seed=seed)
        result["order_test"] = order.to_dict()
    if context is not None:
        from minitx.evaluation.extrapolation import extrapolation

        stretch = extrapolation(model, ids, context)
        result["extrapolation"] = stretch.to_dict()
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console = Console()
    table = Table(title=f"eval {safe(run_dir)} on {safe(source)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    if quantize not in (None, "none"):
        table.add_row("weights", f"{quantize} (--quantize)")
    table.add_row("tokens scored", f"{score.tokens:,}")
    table.add_row("loss (nats/token)", f"{score.loss:.4f}")
    table.add_row("perplexity", f"{score.perplexity:.3f}")
    table.add_row("bits per byte", f"{score.bits_per_byte:.4f}")
    console.print(table)
    if report is not None:
        from minitx.corpus import render_report

        console.print(f"grammar: {grammar} sampled stories (temperature {temperature:g}, seed {seed})")
        console.print(render_report(report, max_examples=5))
    if pairs is not None:
        print_pairs(pairs, seed, console)
    if order is not None:
        print_order_test(order, console)
    if stretch is not None:
        print_extrapolation(stretch, model.config.pos, console)


def _percent(accuracy: dict[str, Any]) -> tuple[str, str, str]:
    return (f"{accuracy['accuracy']:.1%}", f"{accuracy['low']:.1%} – {accuracy['high']:.1%}",
            f"{accuracy['right']}/{accuracy['total']}")


def print_pairs(pairs: PairResult, seed: int, console: Console) -> None:
    """Minimal-pair accuracy per phenomenon and per agreement distance."""
    from rich.table import Table

    table = Table(title=f"minimal pairs (seed {seed}): share where log p(good) > log p(bad)", title_justify="left")
    for column in ("phenomenon", "accuracy", "95% interval", "right"):
        table.add_column(column, justify="left" if column == "phenomenon" else "right")
    data = pairs.to_dict()
    for name, accuracy in data["by_phenomenon"].items():
        table.add_row(name, *_percent(accuracy))
    for name, accuracy in data["agreement_by_distance"].items():
        table.add_row(f"[dim]agreement, {name} word{'s' if name != '1' else ''} apart[/]", *_percent(accuracy))
    table.add_row("[bold]overall[/]", *_percent(data))
    console.print(table)


def print_order_test(order: OrderTest, console: Console) -> None:
    """The two gaps, in bits per byte and nats per token, with their intervals."""
    from rich.table import Table

    table = Table(title=f"order test on {order.documents} documents ({order.bytes:,} bytes): original "
                        f"{order.original_bits_per_byte:.4f} bits/byte", title_justify="left")
    for column in ("shuffled", "Δ bits/byte", "95% interval", "Δ nats/token", "95% interval"):
        table.add_column(column, justify="left" if column == "shuffled" else "right", no_wrap=True)
    for gap in (order.words, order.sentences):
        table.add_row("words in sentences" if gap.what == "words" else "sentences in docs",
                      f"{gap.bits_per_byte:+.4f}", "{:+.4f} – {:+.4f}".format(*gap.bits_per_byte_interval),
                      f"{gap.nats_per_token:+.4f}", "{:+.4f} – {:+.4f}".format(*gap.nats_per_token_interval))
    console.print(table)


def print_extrapolation(stretch: Extrapolation, pos: str, console: Console) -> None:
    """Loss per bucket of positions; buckets past the training block are marked."""
    from rich.table import Table

    table = Table(title=f"length extrapolation ({pos}): {stretch.windows} windows of {stretch.context} tokens, "
                        f"trained on {stretch.block_size}", title_justify="left")
    for column in ("positions", "loss (nats/token)", "95% interval", ""):
        table.add_column(column, justify="left" if column == "positions" else "right")
    for bucket in stretch.buckets:
        note = "" if bucket.end <= stretch.block_size else "beyond the training block"
        table.add_row(f"{bucket.start}–{bucket.end - 1}", f"{bucket.loss:.4f}", f"{bucket.low:.4f} – {bucket.high:.4f}",
                      note)
    console.print(table)
