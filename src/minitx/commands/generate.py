"""`minitx generate RUN`: sample text from a trained model and print it as it is written (`LoadedRun.generate`)."""

from __future__ import annotations

import sys
from pathlib import Path

from minitx.commands.loading import open_run


def run_generate(
    run_dir: str | Path,
    *,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    num_samples: int,
    stop: list[str],
    stream: bool,
    device: str,
    quiet: bool,
    quantize: str | None = None,
    threads: int = 0,
) -> None:
    """`minitx generate`: sample from a run and print prompt + text to stdout, statistics to stderr.

    `prompt` "-" reads stdin. One sample streams as it is written (unless --no-stream). Several samples
    are printed when all are done, each under a `── sample i ──` line: streaming them side by side
    would interleave.
    """
    from minitx.generation.sampling import SamplingConfig
    from minitx.text.files import read_stdin

    prompt = read_stdin() if prompt == "-" else prompt
    SamplingConfig(max_new_tokens, temperature, top_k, top_p, seed, num_samples, list(stop))  # refused before loading
    run = open_run(run_dir, device, threads, quantize, command="minitx generate")
    out = sys.stdout

    def write(piece: str) -> None:
        out.write(piece)
        out.flush()

    streaming = stream and num_samples == 1
    run.tokenizer.encode(prompt)  # an unencodable prompt fails here, before anything is printed
    if streaming:
        write(prompt)
    on_text = (lambda _, piece: write(piece)) if streaming else None
    samples = run.generate(prompt, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                           num_samples=num_samples, stop=stop, on_text=on_text)
    for i, text in enumerate(samples.texts):
        if not streaming:
            if num_samples > 1:
                write(f"── sample {i + 1} ──\n")
            write(prompt + text)
        if not (prompt + text).endswith("\n"):
            write("\n")
    if not quiet:
        rate = samples.steps * num_samples / max(samples.seconds, 1e-9)
        print(
            f"{samples.steps} tokens × {num_samples} sample{'s' if num_samples > 1 else ''} in "
            f"{samples.seconds:.2f} s: {rate:,.0f} tokens/s (seed {samples.seed}"
            f"{f', {run.quantize} weights' if run.quantize else ''})",
            file=sys.stderr,
        )
