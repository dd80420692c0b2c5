"""`minitx inspect-lens RUN` and `minitx inspect-patch RUN`: what the model computes, layer by layer and head by head.

These functions load a run (`open_run`), refuse flags of the other architecture, call the API's verbs
(`LoadedRun.lens`, `.patch`: `minitx.api.inside`, which prepare the inputs through `minitx.api.inputs`)
and print the results with the views of `minitx.inspect.views`; they compute nothing themselves.

On an encoder-decoder run both read the decoder given a source sentence: `inspect-lens --source S
[--prompt TRANSLATION-SO-FAR]` (default: the whole translation, the built-in corpus's or the model's
own), and `inspect-patch` patches between two *sources* (`--clean S --corrupt S [--prompt ...]`, or the
built-in `--pairs noun|gender`) with the translation so far fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from minitx.api.inputs import DEFAULT_PAIRS, check_patch_choice, check_phenomenon
from minitx.commands.inspect import refuse_existing_outputs
from minitx.commands.loading import open_run, run_architecture
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.api import LoadedRun
    from minitx.model.architecture import Architecture

#: A clean − corrupt logit gap below this (in logits) makes the recovered fractions unstable: say so.
SMALL_GAP = 0.5


def check_arch_flags(run_dir: str | Path, arch: Architecture, *, source: str | None = None,
                     prompt: str | None = None, html: str | Path | None = None, command: str) -> None:
    """UserErrors for flags of the other kind of architecture: --source on a run that reads no source sentence
    (a GPT's), --prompt without --source (lens) or --html on one that does (an encoder-decoder's)."""
    if not arch.reads_source:
        if source is not None:
            raise UserError(f"--source reads an encoder-decoder; {run_dir} is {arch.noun} run: give --prompt "
                            "instead")
        return
    if html is not None:
        raise UserError(f"{command} --html draws a decoder-only run's attention page; for {run_dir}'s use "
                        f"minitx inspect-attention {run_dir} --source SENTENCE --html FILE")
    if command == "minitx inspect-lens" and prompt is not None and source is None:
        raise UserError(f"{run_dir} is {arch.noun} run: --prompt is the translation so far; give the "
                        "sentence it translates with --source")


def run_inspect_lens(
    run_dir: str | Path,
    *,
    prompt: str | None = None,
    target: str | None = None,
    attribute: tuple[str, str] | None = None,
    source: str | None = None,
    png: str | Path | None = None,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    device: str = "auto",
    console: Console | None = None,
    threads: int = 0,
    force: bool = False,
) -> None:
    """`minitx inspect-lens RUN_DIR`: the logit lens of `prompt` ("-": stdin); --attribute GOOD BAD adds the
    direct logit attribution at the last position; --png / --html / --json also write those files.

    On an encoder-decoder run the decoder is read given `source` ("-": stdin; default the sentence
    inspect-attention reads): `prompt` is the translation so far, by default the whole translation
    (the built-in corpus's rendering, else the model's own), whose last position predicts the end token.
    """
    from rich.console import Console

    from minitx.inspect.views import lens as views
    from minitx.text.files import read_stdin

    arch = run_architecture(run_dir)
    check_arch_flags(run_dir, arch, source=source, prompt=prompt, html=html, command="minitx inspect-lens")
    refuse_existing_outputs({"--png": png, "--html": html, "--json": json_path}, force)
    console = console if console is not None else Console()
    run = open_run(run_dir, device, threads, command="minitx inspect-lens")
    tokenizer = run.tokenizer
    if source == "-":
        source = read_stdin().strip()
    result = run.lens(read_stdin() if prompt == "-" else prompt, target=target, attribute=attribute, source=source)
    report, ids = result.report, result.report.token_ids
    if arch.reads_source:
        where = result.read_from or "--prompt"
        console.print(Text(f"source: {result.source}\ntranslation so far ({where}): {result.prompt or '(nothing yet)'}"
                           "\nthe stream read is the decoder's; the source reaches it only through cross-attention"))
    console.print(Text(views.HOW_TO_READ_LENS))
    console.print(views.lens_table(report, tokenizer, console.width))
    console.print(views.lens_summary(report, tokenizer))
    if result.attribution is not None:
        console.print(views.attribution_view(result.attribution.report, tokenizer))

    if png is not None:
        console.print(Text(f"wrote {views.save_lens_png(report, tokenizer, png)}"))
    if html is not None:
        from minitx.inspect.views.html import lens_section

        path = _save_page(run, ids, html, f"logit lens of {Path(run_dir).name}: {len(ids)} tokens",
                          lens=lens_section(report, tokenizer))
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.inspect.views.document import save_document

        console.print(Text(f"wrote {save_document(result.to_dict(), json_path)}"))


def run_inspect_patch(
    run_dir: str | Path,
    *,
    pairs: str | None = None,
    n: int = DEFAULT_PAIRS,
    clean: str | None = None,
    corrupt: str | None = None,
    answer: tuple[str, str] | None = None,
    prompt: str | None = None,
    seed: int = 0,
    png: str | Path | None = None,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    device: str = "auto",
    console: Console | None = None,
    threads: int = 0,
    force: bool = False,
) -> None:
    """`minitx inspect-patch RUN_DIR`: activation patching on `n` built-in pairs of a phenomenon, or on one
    --clean/--corrupt pair; prints every grid of recovered fractions and writes --png / --html / --json.

    On an encoder-decoder run the pairs are of *sources*: --clean/--corrupt are two sentences, `prompt`
    the translation so far (default: where their translations part), or --pairs noun|gender.
    """
    from rich.console import Console

    from minitx.inspect.views import patching as views

    check_patch_choice(pairs, clean, corrupt, n, answer, prompt)
    arch = run_architecture(run_dir)
    check_arch_flags(run_dir, arch, html=html, command="minitx inspect-patch")
    if not arch.reads_source and prompt is not None:
        raise UserError(f"--prompt is the translation so far of an encoder-decoder run; {run_dir} is {arch.noun} "
                        "run: the prompts are --clean and --corrupt")
    refuse_existing_outputs({"--png": png, "--html": html, "--json": json_path}, force)
    if pairs is not None:  # before loading: naming the phenomena needs no model
        check_phenomenon(pairs, arch.reads_source)
    console = console if console is not None else Console()
    run = open_run(run_dir, device, threads, command="minitx inspect-patch")
    tokenizer = run.tokenizer
    result = run.patch(pairs, clean=clean, corrupt=corrupt, answer=answer, prompt=prompt, n=n, seed=seed)
    report, contrasts, skipped = result.report, result.contrasts, result.skipped
    first = contrasts[0]
    good_text, bad_text = (repr(tokenizer.id_to_token_text(i)) for i in (first.good, first.bad))
    so_far = ("" if first.prompt_text is None else f" (translation so far {first.prompt_text!r})" if first.prompt_text
              else " (translation so far: nothing yet, the first word is scored)")
    if pairs is not None:
        good_text, bad_text = (("the clean source's next token", "the corrupt source's") if arch.reads_source else
                               ("the clean verb", "the other form"))
        left_out = "; ".join(f"{v} {k}" for k, v in skipped.items())
        fewer = f" (only {len(contrasts)} of the {n} asked could be made)" if len(contrasts) < n else ""
        console.print(Text(f"{len(contrasts)} {pairs} pairs{fewer}, e.g. clean {first.clean_text!r} → "
                           f"{tokenizer.id_to_token_text(first.good)!r}, corrupt {first.corrupt_text!r} → "
                           f"{tokenizer.id_to_token_text(first.bad)!r}{so_far}" +
                           (f" (left out: {left_out})" if left_out else "")))
    elif first.prompt_text is not None:
        console.print(Text(f"clean source {first.clean_text!r}, corrupt source {first.corrupt_text!r}{so_far}; "
                           "the decoder reads the same tokens in both runs, so only cross-attention can tell them "
                           "apart"))
    console.print(views.patch_view(report, good_text, bad_text))
    for note in report.notes:
        console.print(Text(f"note: {note}"))
    gap = float(report.clean.mean() - report.corrupt.mean())
    if abs(gap) < SMALL_GAP:
        console.print(Text(f"note: the clean and corrupt Δ differ by only {gap:+.3f} logits, so the fractions "
                           "above divide by almost nothing; choose prompts the model tells apart", style="yellow"))
    for grid in report.grids[1:]:
        best = ", ".join(f"{row} {col} {value:.2f}" for row, col, value in views.strongest(grid))
        console.print(Text(f"strongest {grid.title}: {best}"))

    if png is not None:
        console.print(Text(f"wrote {views.save_patch_png(report, png)}"))
    if html is not None:
        from minitx.inspect.views.html import patch_sections

        title = f"activation patching of {Path(run_dir).name}: {len(contrasts)} pairs"
        path = _save_page(run, first.clean, html, title, patching=patch_sections(report))
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.inspect.views.document import save_document

        console.print(Text(f"wrote {save_document(result.to_dict(), json_path)}"))


def _save_page(run: LoadedRun, ids: list[int], path: str | Path, title: str, **sections) -> Path:
    """The attention explorer page of `ids`, with the lens tab or the patching heatmaps added."""
    from minitx.inspect.views.html import save_attention_html

    found = run.attention_of_ids(ids)
    return save_attention_html(found.capture, found.roles, path, title=title, **sections)
