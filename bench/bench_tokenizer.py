"""Benchmark: minitx's `Tokenizer.train_bpe` against calling Hugging Face `tokenizers` directly.

Both train byte-level BPE with the same settings (vocabulary 4096, min_frequency 2, `<|doc|>`
special token, all 256 bytes in the initial alphabet, no prefix space) on tiny Shakespeare.
Runs alternate A B A B so that drift in machine load hits both sides alike; the table shows the
median time of each, their ratio (goal: minitx / raw <= 1.1) and the bytes per token each reaches.

    python bench/bench_tokenizer.py [--data PATH] [--repeats N] [--vocab-size V]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from minitx.text.tokenizer import DOC_TOKEN, Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import shakespeare  # noqa: E402 - bench/ helper, importable once bench/ is on the path


def train_minitx(text: str, vocab_size: int) -> Tokenizer:
    return Tokenizer.train_bpe([text], vocab_size=vocab_size, show_progress=False)


def train_raw(text: str, vocab_size: int):
    """What a `tokenizers` user writes by hand for the same byte-level BPE."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[DOC_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def seconds_of(train, text: str, vocab_size: int):
    started = time.perf_counter()
    tok = train(text, vocab_size)
    return time.perf_counter() - started, tok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="UTF-8 text to train on (default: tiny Shakespeare, "
                                                                "fetched into bench/_work)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args(argv)
    console = Console()
    args.data = shakespeare(args.data)
    if args.data is None:
        console.print("[yellow]skipped:[/] no text to train on")
        return 0
    text = args.data.read_bytes().decode("utf-8")
    n_bytes = len(text.encode("utf-8"))

    times: dict[str, list[float]] = {"minitx": [], "raw tokenizers": []}
    for _ in range(args.repeats):  # A B A B ...
        seconds, ours = seconds_of(train_minitx, text, args.vocab_size)
        times["minitx"].append(seconds)
        seconds, raw = seconds_of(train_raw, text, args.vocab_size)
        times["raw tokenizers"].append(seconds)

    # Compression is measured outside the timed region, each with its own tokenizer.
    bytes_per_token = {
        "minitx": n_bytes / len(ours.encode(text)),
        "raw tokenizers": n_bytes / len(raw.encode(text, add_special_tokens=False).ids),
    }
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["minitx"] / medians["raw tokenizers"]

    table = Table(title=f"BPE training, vocab {args.vocab_size}, {n_bytes:,} bytes, {args.repeats} runs each")
    table.add_column("trainer")
    table.add_column("median s", justify="right")
    table.add_column("bytes/token", justify="right")
    for name in times:
        table.add_row(name, f"{medians[name]:.3f}", f"{bytes_per_token[name]:.3f}")
    verdict = "[green]ok[/]" if ratio <= 1.1 else "[red]over goal 1.1[/]"
    table.add_row("ratio minitx / raw", f"{ratio:.2f}", verdict, style="bold")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
