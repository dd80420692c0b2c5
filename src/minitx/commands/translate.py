"""`minitx translate RUN SENTENCE...`: translate sentences with an encoder-decoder run, print one per line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from minitx.commands.loading import load_for_inference
from minitx.errors import UserError


def read_sentences(sentences: list[str], file: Path | None) -> list[str]:
    """The sentences given as arguments, else one per line of FILE ('-': stdin); blank lines are skipped."""
    from minitx.text.files import read_stdin, read_text_file

    if sentences and file is not None:
        raise UserError("give sentences as arguments or with --file, not both")
    if file is not None:
        text = read_stdin() if str(file) == "-" else read_text_file(file)
        sentences = [line for line in text.splitlines() if line.strip()]
    if not sentences:
        raise UserError("nothing to translate; give sentences as arguments, or --file FILE (one per line, '-': stdin)")
    return sentences


def run_translate(
    run_dir: str | Path, sentences: list[str], *, file: Path | None, beam: int, batch_size: int,
    max_new_tokens: int | None, device: str, quiet: bool, threads: int = 0, quantize: str | None = None,
) -> None:
    """Print the translation of every sentence on stdout, in order; sentences/s on stderr (unless quiet).

    `quantize` "int8" translates with int8 weights (`model/quantize.py`), as generate's --quantize;
    an unknown kind is refused before any sentence or file is read.
    """
    from minitx.generation.translate import translate
    from minitx.model.quantize import check_quantize

    check_quantize(quantize)
    sentences = read_sentences(sentences, file)
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    model, run = load_for_inference(run_dir, device, threads, quantize, arch="encoder-decoder",
                                    command="minitx translate")
    started = time.perf_counter()
    out = translate(model, run.tokenizer, sentences, beam=beam, batch_size=batch_size, max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - started
    for line in out:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if not quiet:
        how = "greedy" if beam == 1 else f"beam {beam}"
        sys.stderr.write(f"{len(sentences)} sentence{'s' if len(sentences) != 1 else ''} in {seconds:.2f} s "
                         f"({len(sentences) / max(seconds, 1e-9):.1f} sentences/s, {how}, batch {batch_size}"
                         f"{', int8 weights' if quantize == 'int8' else ''})\n")
