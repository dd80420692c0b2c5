"""`minitx translate RUN SENTENCE...`: translate sentences with an encoder-decoder run, print one per line.

Translations stream: each batch is printed (and flushed) as soon as it is done, in input order, so
`--file -` fed by a pipe answers while later lines are still coming, memory stays flat over any
number of lines, and a Ctrl-C keeps every line already printed (exit 130, one line on stderr).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

from minitx.commands.loading import open_run
from minitx.console import printable
from minitx.errors import UserError


def read_sentences(sentences: list[str], file: Path | None, batch_size: int = 32) -> Iterator[list[str]]:
    """The sentences given as arguments, else the non-blank lines of FILE ('-': stdin), a batch at a time.

    Arguments are checked all at once (an empty one is named before anything is printed); a file is
    read as it is translated (`text.files.line_batches`).
    """
    from minitx.text.files import line_batches

    if sentences and file is not None:
        raise UserError("give sentences as arguments or with --file, not both")
    if file is not None:
        return _not_empty(line_batches(file, batch_size))
    if not sentences:
        raise UserError("nothing to translate; give sentences as arguments, or --file FILE (one per line, '-': stdin)")
    return iter([sentences[i : i + batch_size] for i in range(0, len(sentences), batch_size)])


def _not_empty(batches: Iterator[list[str]]) -> Iterator[list[str]]:
    any_batch = False
    for batch in batches:
        any_batch = True
        yield batch
    if not any_batch:
        raise UserError("nothing to translate: the --file input has no sentences (one per line, '-': stdin)")


def run_translate(
    run_dir: str | Path, sentences: list[str], *, file: Path | None, beam: int, batch_size: int,
    max_new_tokens: int | None, device: str, quiet: bool, threads: int = 0, quantize: str | None = None,
) -> None:
    """Print the translation of every sentence on stdout, in order, a batch at a time; sentences/s on stderr.

    `quantize` "int8" translates with int8 weights (`model/quantize.py`), as generate's --quantize;
    an unknown kind, a batch size, beam or length that cannot be are refused before any sentence or
    file is read. Ctrl-C ends it with exit 130, keeping the lines printed.
    """
    from minitx.generation.translate import check_translate_settings, encode_sentences, translate_batches
    from minitx.model.memory import require_inference_fits
    from minitx.model.quantize import check_quantize

    check_quantize(quantize)
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if beam < 1:
        raise UserError(f"--beam must be at least 1, got {beam}")
    batches = read_sentences(sentences, file, batch_size)
    run = open_run(run_dir, device, threads, quantize, command="minitx translate")
    model = run.model
    check_translate_settings(model, run.tokenizer, beam, max_new_tokens)
    require_inference_fits(model.config, str(model.wte.weight.device), batch_size * beam,
                           where=f" translating {batch_size} sentences × beam {beam} at once")
    if sentences:  # arguments: every one checked before the first line is printed
        encode_sentences(run.tokenizer, sentences, model.config.block_size)
    started = time.perf_counter()
    done = 0
    try:
        for lines in translate_batches(model, run.tokenizer, batches, beam=beam, max_new_tokens=max_new_tokens):
            sys.stdout.write("".join(printable(line, one_line=True) + "\n" for line in lines))
            sys.stdout.flush()
            done += len(lines)
    except KeyboardInterrupt:
        sys.stderr.write(f"minitx: stopped (Ctrl-C) after {done} sentence{'s' if done != 1 else ''}; "
                         "each line printed above is a complete translation\n")
        raise SystemExit(130) from None
    except BrokenPipeError:  # `minitx translate ... | head`: the reader has all it wants
        raise SystemExit(0) from None
    seconds = time.perf_counter() - started
    if not quiet:
        how = "greedy" if beam == 1 else f"beam {beam}"
        sys.stderr.write(f"{done} sentence{'s' if done != 1 else ''} in {seconds:.2f} s "
                         f"({done / max(seconds, 1e-9):.1f} sentences/s, {how}, batch {batch_size}"
                         f"{', int8 weights' if quantize == 'int8' else ''})\n")
