"""`minitx eval RUN [FILES]`: loss, perplexity and bits per byte; optionally grammaticality of samples."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from minitx.commands.interop import IMPORTED_FROM
from minitx.commands.loading import load_for_inference
from minitx.config import DEFAULT_TEMPERATURE
from minitx.console import safe


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
) -> None:
    """`minitx eval`: print loss/perplexity/bits-per-byte and, with --grammar N, grammaticality."""
    from rich.console import Console
    from rich.table import Table

    from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

    model, run = load_for_inference(run_dir, device, threads, quantize)
    if not files and IMPORTED_FROM in run.raw_config:
        from minitx.errors import UserError

        raise UserError(f"{run_dir} was imported, not trained here, so it has no validation split; "
                        f"give text files to score: minitx eval {run_dir} FILE")
    if files:
        from minitx.text.files import read_corpus

        text = read_corpus(files)
        ids = torch.tensor(run.tokenizer.encode(text), dtype=torch.long)
        n_bytes, source = len(text.encode("utf-8")), ", ".join(map(str, files))
    else:
        ids, n_bytes, source = validation_ids(run)
    score = score_ids(model, ids, n_bytes)
    result: dict[str, Any] = {"source": source, "weights": quantize or "none", **asdict(score)}
    report = None
    if grammar > 0:
        stories = sample_stories(model, run.tokenizer, grammar, seed, temperature=temperature)
        report = grammar_score(stories)
        result["grammar"] = {**report.to_dict(), "temperature": temperature, "seed": seed}
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
