"""`minitx inspect-lens RUN` and `minitx inspect-patch RUN`: what the model computes, layer by layer and head by head.

These functions load a run (`load_for_inference`), check the user's words and prompts, call
`minitx.inspect.lens` / `.attribution` / `.patching` and print their views; they compute nothing themselves.

On an encoder-decoder run both read the decoder given a source sentence: `inspect-lens --source S
[--prompt TRANSLATION-SO-FAR]` (default: the whole translation, the built-in corpus's or the model's
own), and `inspect-patch` patches between two *sources* (`--clean S --corrupt S [--prompt ...]`, or the
built-in `--pairs noun|gender`) with the translation so far fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from minitx.commands.inspect import refuse_existing_outputs
from minitx.commands.loading import load_for_inference, run_architecture
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from torch import nn

    from minitx.inspect.contrasts import Contrast
    from minitx.model import GPT
    from minitx.model.architecture import Architecture
    from minitx.text.tokenizer import Tokenizer

#: Pairs `inspect-patch --pairs` averages over unless --n says otherwise.
DEFAULT_PAIRS = 64
#: A clean − corrupt logit gap below this (in logits) makes the recovered fractions unstable: say so.
SMALL_GAP = 0.5


def check_fits(ids: list[int], block_size: int) -> None:
    """A UserError when the prompt is longer than the block the model reads."""
    if len(ids) > block_size:
        raise UserError(f"the prompt is {len(ids)} tokens but this model reads at most {block_size}; shorten it")


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

    from minitx.inspect.capture import DEFAULT_PROMPT, prompt_ids
    from minitx.inspect.contrasts import answer_token
    from minitx.inspect.lens import logit_lens
    from minitx.inspect.views import lens as views
    from minitx.text.files import read_stdin

    arch = run_architecture(run_dir)
    check_arch_flags(run_dir, arch, source=source, prompt=prompt, html=html, command="minitx inspect-lens")
    refuse_existing_outputs({"--png": png, "--html": html, "--json": json_path}, force)
    console = console if console is not None else Console()
    model, run = load_for_inference(run_dir, device, threads, command="minitx inspect-lens")
    tokenizer = run.tokenizer
    source_ids = following = None
    if arch.reads_source:
        source, source_ids, text, following = _translation_so_far(model, tokenizer, source, prompt, console)
        from minitx.model.inputs import decoder_ids

        ids = decoder_ids(tokenizer, text, model.config.block_size)
    else:
        text = DEFAULT_PROMPT if prompt is None else read_stdin() if prompt == "-" else prompt
        ids = prompt_ids(tokenizer, text)
        if len(ids) < 2:
            raise UserError("the prompt is empty after tokenizing; give --prompt some text")
    check_fits(ids, model.config.block_size)
    target_id = answer_token(tokenizer, target) if target is not None else None
    answers = tuple(answer_token(tokenizer, word) for word in attribute) if attribute is not None else None

    tokens = [tokenizer.id_to_token_text(i) for i in ids]
    report = logit_lens(model, ids, tokens, target=target_id, source=source_ids, following=following)
    console.print(Text(views.HOW_TO_READ_LENS))
    console.print(views.lens_table(report, tokenizer, console.width))
    console.print(views.lens_summary(report, tokenizer))
    attribution = None
    if answers is not None:
        from minitx.inspect.attribution import attribute as attribute_parts

        attribution = attribute_parts(model, ids, good=answers[0], bad=answers[1], source=source_ids)
        console.print(views.attribution_view(attribution, tokenizer))

    if png is not None:
        console.print(Text(f"wrote {views.save_lens_png(report, tokenizer, png)}"))
    if html is not None:
        from minitx.inspect.views.html import lens_section

        path = _save_page(model, tokenizer, ids, html, f"logit lens of {Path(run_dir).name}: {len(ids)} tokens",
                          lens=lens_section(report, tokenizer))
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.inspect.views.circuits_document import lens_document
        from minitx.inspect.views.document import save_document

        document = lens_document(report, tokenizer, run=str(run_dir), prompt=prompt if source is None else text,
                                 attribution=attribution, source=source)
        console.print(Text(f"wrote {save_document(document, json_path)}"))


def _translation_so_far(model: nn.Module, tokenizer: Tokenizer, source: str | None, prompt: str | None,
                        console: Console) -> tuple[str, list[int], str, int | None]:
    """(source text, the encoder's ids, the translation so far, the token known to follow it or None) of
    inspect-lens on an encoder-decoder run; prints what is read and where the translation came from."""
    from minitx.commands.inspect import DEFAULT_SOURCE, choose_target
    from minitx.inspect.contrasts import encoder_ids
    from minitx.model.inputs import end_token
    from minitx.text.files import read_stdin

    text = DEFAULT_SOURCE if source is None else read_stdin().strip() if source == "-" else source.strip()
    source_ids = encoder_ids(tokenizer, text, model.config.block_size)
    if prompt is None:
        translation, where, _ = choose_target(model, tokenizer, text, None)
        following: int | None = end_token(tokenizer)  # a whole translation is followed by its end token
    else:
        translation = read_stdin().strip() if prompt == "-" else prompt.strip()
        where, following = "--prompt", None
    console.print(Text(f"source: {text}\ntranslation so far ({where}): {translation or '(nothing yet)'}\n"
                       "the stream read is the decoder's; the source reaches it only through cross-attention"))
    return text, source_ids, translation, following


def check_patch_flags(pairs: str | None, clean: str | None, corrupt: str | None, n: int,
                      answer: tuple[str, str] | None, prompt: str | None = None) -> None:
    """UserErrors for flags that cannot work together, before any file is read."""
    if (pairs is None) == (clean is None and corrupt is None):
        raise UserError("give either --pairs PHENOMENON or --clean TEXT --corrupt TEXT")
    if pairs is None and (clean is None or corrupt is None):
        raise UserError("--clean and --corrupt go together: give both")
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if pairs is not None and answer is not None:
        raise UserError("--answer is for --clean/--corrupt; the pairs bring their own answers")
    if pairs is not None and prompt is not None:
        raise UserError("--prompt is for --clean/--corrupt; the pairs bring their own translation so far")


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

    from minitx.inspect.contrasts import phenomenon_contrasts, text_contrast
    from minitx.inspect.patching import patch
    from minitx.inspect.views import patching as views

    check_patch_flags(pairs, clean, corrupt, n, answer, prompt)
    arch = run_architecture(run_dir)
    check_arch_flags(run_dir, arch, html=html, command="minitx inspect-patch")
    if not arch.reads_source and prompt is not None:
        raise UserError(f"--prompt is the translation so far of an encoder-decoder run; {run_dir} is {arch.noun} "
                        "run: the prompts are --clean and --corrupt")
    refuse_existing_outputs({"--png": png, "--html": html, "--json": json_path}, force)
    if pairs is not None:  # before loading: naming the phenomena needs no model
        from minitx.inspect.contrasts import check_phenomenon, check_translation_phenomenon

        (check_translation_phenomenon if arch.reads_source else check_phenomenon)(pairs)
    console = console if console is not None else Console()
    model, run = load_for_inference(run_dir, device, threads, command="minitx inspect-patch")
    tokenizer = run.tokenizer
    skipped: dict[str, int] = {}
    good, bad = answer if answer is not None else (None, None)
    if pairs is not None:
        from minitx.inspect.contrasts import translation_contrasts

        make = translation_contrasts if arch.reads_source else phenomenon_contrasts
        contrasts, skipped = make(tokenizer, pairs, n, model.config.block_size, seed=seed)
        if not contrasts:
            reasons = ", ".join(f"{k}: {v}" for k, v in skipped.items())
            raise UserError(f"no {pairs} pair could be patched with this tokenizer ({reasons})")
    elif arch.reads_source:
        from minitx.inspect.contrasts import source_contrast

        translations = None if prompt is not None else _two_translations(model, tokenizer, clean or "", corrupt or "")
        contrasts = [_with_answers(model, tokenizer, source_contrast(
            tokenizer, clean or "", corrupt or "", prompt=prompt, translations=translations, good=good, bad=bad,
            block_size=model.config.block_size))]
    else:
        contrasts = [_with_answers(model, tokenizer, text_contrast(tokenizer, clean or "", corrupt or "", good, bad,
                                                                   model.config.block_size))]
    report = patch(model, contrasts, seed=seed)
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
        path = _save_page(model, tokenizer, first.clean, html, title, patching=patch_sections(report))
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.inspect.views.circuits_document import patch_document
        from minitx.inspect.views.document import save_document

        document = patch_document(report, contrasts, tokenizer, run=str(run_dir), phenomenon=pairs, skipped=skipped)
        console.print(Text(f"wrote {save_document(document, json_path)}"))


def _two_translations(model: nn.Module, tokenizer: Tokenizer, clean: str, corrupt: str) -> tuple[str, str]:
    """The two sources' translations: the built-in corpus's renderings when both are story sentences, else the
    model's own (greedy)."""
    from minitx.commands.inspect import choose_target
    from minitx.inspect.contrasts import encoder_ids

    for flag, sentence in (("--clean", clean), ("--corrupt", corrupt)):
        encoder_ids(tokenizer, sentence, model.config.block_size, flag)  # empty or too long: say which, first
    first, second = (choose_target(model, tokenizer, s.strip(), None) for s in (clean, corrupt))
    if first[1] != second[1]:  # one rendered, one not: compare like with like, the model's own
        from minitx.generation.translate import translate

        first_translation, second_translation = translate(model, tokenizer, [clean.strip(), corrupt.strip()])
        return first_translation, second_translation
    return first[0], second[0]


def _with_answers(model: GPT, tokenizer: Tokenizer, contrast: Contrast) -> Contrast:
    """The contrast with missing answers filled in: each prompt's own top next token."""
    from dataclasses import replace

    import torch

    from minitx.inspect.residual import run_model

    if contrast.good >= 0 and contrast.bad >= 0:
        return contrast
    sources = None if contrast.clean_source is None else [contrast.clean_source, contrast.corrupt_source]
    logits = run_model(model, torch.tensor([contrast.clean, contrast.corrupt]), sources)
    good, bad = logits[:, -1].argmax(dim=-1).tolist()
    good = contrast.good if contrast.good >= 0 else good
    bad = contrast.bad if contrast.bad >= 0 else bad
    if good == bad:
        raise UserError(f"both prompts' top next token is {tokenizer.id_to_token_text(good)!r}; give --answer GOOD BAD")
    return replace(contrast, good=good, bad=bad)


def _save_page(model: GPT, tokenizer: Tokenizer, ids: list[int], path: str | Path, title: str, **sections) -> Path:
    """The attention explorer page of `ids`, with the lens tab or the patching heatmaps added."""
    from minitx.inspect.capture import capture_ids
    from minitx.inspect.roles import head_roles
    from minitx.inspect.views.html import save_attention_html

    capture = capture_ids(model, tokenizer, ids)
    return save_attention_html(capture, head_roles(capture), path, title=title, **sections)
