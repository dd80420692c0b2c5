"""`minitx eval RUN [FILES]`: loss, perplexity and bits per byte; optionally grammaticality of samples,
minimal pairs (--minimal-pairs N), the order test (--order-test) and length extrapolation (--context L).

On an encoder-decoder run: the held-out sentence pairs (or FILE.jsonl), target loss and bits per byte,
exact match, chrF, BLEU and grammaticality of the translations, overall and by phenomenon.

The command refuses the other architecture's flags, loads the run (`open_run`), calls `LoadedRun.evaluate`
(`minitx.api.evaluate`, which measures) and prints its `Evaluation`: the --json document is its `to_dict()`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.api.inputs import check_eval_choice
from minitx.commands.loading import open_run, run_architecture
from minitx.config import DEFAULT_TEMPERATURE
from minitx.console import safe
from minitx.rundir.files import IMPORTED_FROM

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.evaluation.extrapolation import Extrapolation
    from minitx.evaluation.minimal_pairs import PairResult
    from minitx.evaluation.order import OrderTest
    from minitx.evaluation.translation_eval import TranslationEval


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
    sentences: int | None = None,
    beam: int = 1,
) -> None:
    """`minitx eval`: print loss/perplexity/bits-per-byte and each measure asked for."""
    from rich.console import Console
    from rich.table import Table

    from minitx.errors import UserError

    arch = run_architecture(run_dir)
    if arch.reads_source:
        refused = {"--grammar": grammar > 0, "--minimal-pairs": minimal_pairs > 0, "--order-test": order_test,
                   "--context": context is not None}
        for flag, given in refused.items():
            if given:
                raise UserError(f"{flag} measures a decoder-only language model; {run_dir} is {arch.noun} "
                                f"run: drop {flag} (minitx eval scores its translations)")
        run_eval_translation(run_dir, files, device=device, seed=seed, as_json=as_json, threads=threads,
                             sentences=sentences, beam=beam, quantize=quantize)
        return
    if sentences is not None or beam != 1:
        raise UserError(f"--sentences and --beam score translations, and {run_dir} is {arch.noun} run; drop them")
    check_eval_choice(minimal_pairs=minimal_pairs, context=context, quantize=quantize)
    run = open_run(run_dir, device, threads, quantize, command="minitx eval")
    if not files and IMPORTED_FROM in run.files.raw_config:
        raise UserError(f"{run_dir} was imported, not trained here, so it has no validation split; "
                        f"give text files to score: minitx eval {run_dir} FILE")
    found = run.evaluate(files=files, grammar=grammar, minimal_pairs=minimal_pairs, order_test=order_test,
                         context=context, seed=seed, temperature=temperature)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False))
        return
    score, source, reports = found.reports["score"], found.data["source"], found.reports
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
    if "grammar" in reports:
        from minitx.corpus import render_report

        console.print(f"grammar: {grammar} sampled stories (temperature {temperature:g}, seed {seed})")
        console.print(render_report(reports["grammar"], max_examples=5))
    if "minimal_pairs" in reports:
        print_pairs(reports["minimal_pairs"], seed, console)
    if "order_test" in reports:
        print_order_test(reports["order_test"], console)
    if "extrapolation" in reports:
        print_extrapolation(reports["extrapolation"], run.model.config.pos, console)


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


def run_eval_translation(run_dir: Path, files: list[Path], *, device: str, seed: int, as_json: bool, threads: int = 0,
                         sentences: int | None = None, beam: int = 1, quantize: str | None = None) -> None:
    """`minitx eval` on an encoder-decoder run: score its translations of the held-out pairs (or FILE.jsonl),
    with int8 weights when `quantize` says so."""
    from rich.console import Console

    check_eval_choice(sentences=sentences, n_files=len(files), reads_source=True)
    run = open_run(run_dir, device, threads, quantize, command="minitx eval")
    found = run.evaluate(files=files, sentences=sentences, beam=beam, seed=seed)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False))
        return
    result, source = found.reports["translation"], found.data["source"]
    weights = f", {quantize} weights" if quantize not in (None, "none") else ""
    print_translation_eval(result, f"eval {safe(run_dir)} on {safe(source)}{weights}", beam, Console())


def _share(value: dict | None) -> tuple[str, str]:
    if value is None:
        return "–", ""
    return f"{value['share']:.1%}", f"{value['low']:.1%} – {value['high']:.1%}"


def _score(value: dict) -> tuple[str, str]:
    return f"{value['score']:.1f}", f"{value['low']:.1f} – {value['high']:.1f}"


def print_translation_eval(result: TranslationEval, title: str, beam: int, console: Console) -> None:
    """The target loss, the output scores with 95% intervals, the phenomenon table and a few wrong outputs."""
    from rich.table import Table
    from rich.text import Text

    loss = result.loss
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(justify="right", style="dim")
    table.add_row("pairs", f"{loss.pairs:,}", f"{loss.tokens:,} target tokens")
    table.add_row("target loss (nats/token)", f"{loss.loss:.4f}", "teacher forcing")
    table.add_row("target bits per byte", f"{loss.bits_per_byte:.4f}", "")
    outputs = result.overall
    how = "greedy" if beam == 1 else f"beam {beam}"
    table.add_row(f"exact match ({how})", *_share(outputs["exact_match"]))
    table.add_row("chrF", *_score(outputs["chrf"]))
    table.add_row("BLEU", *_score(outputs["bleu"]))
    order = f"checker, {result.order}" if result.order else "no checker: not the built-in language"
    table.add_row(f"grammatical ({order})", *_share(outputs["grammatical"]))
    console.print(table)
    names = {"adjective_phrases": "adj-noun phrases", "movement": "word movement"}
    phenomena = Table(title="by phenomenon (95% intervals)", title_justify="left")
    for column in ("phenomenon", "pairs", "exact match", "chrF", "grammatical"):
        phenomena.add_column(column, justify="left" if column == "phenomenon" else "right", no_wrap=True)
    for what, buckets in result.by_phenomenon.items():
        for bucket, scores in buckets.items():
            match, chrf = scores["exact_match"], scores["chrf"]
            phenomena.add_row(f"{names[what]} {bucket}", f"{scores['n']:,}",
                              f"{match['share']:.0%} ({match['low']:.0%}–{match['high']:.0%})",
                              f"{chrf['score']:.1f} ({chrf['low']:.1f}–{chrf['high']:.1f})",
                              _share(scores["grammatical"])[0])
    console.print(phenomena)
    for example in result.examples[:3]:
        console.print(Text(f"  {example['source']}\n    reference {example['reference']}\n    output    "
                           f"{example['output']}", style="dim"))
