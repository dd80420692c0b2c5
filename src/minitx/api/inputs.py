"""Turning what a user types into what the inspect library reads: the preparation the `inspect-*` commands do.

A decoder-only run reads a text as a document starts (`<|doc|>` in front, `inspect.capture.prompt_ids`).
An encoder-decoder run reads a *source* sentence through its encoder and a translation so far through
its decoder; when no translation is given, the one read is the built-in corpus's rendering of the
source (which brings gold word links), else the model's own (`choose_target`). A patching contrast
whose answers are not given takes each prompt's own top next token (`with_answers`).

The `check_*` functions refuse choices that cannot work together before any model runs: the
commands call them before reading a file, the verbs again (so a notebook gets the same one line).
Their messages name the command's flags, as the commands' tests read them. Everything here is
written once: the commands (minitx.commands.inspect, .circuits, .eval) prepare nothing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from minitx.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from minitx.inspect.contrasts import Contrast
    from minitx.text.tokenizer import Tokenizer

#: The sentence an encoder-decoder run reads when no source is given (as `inspect-attention` does).
DEFAULT_SOURCE = "The big dog sees the red ball."
#: Pairs `patch(pairs=...)` averages over unless `n` says otherwise (as `inspect-patch --pairs`).
DEFAULT_PAIRS = 64
#: Validation windows `ablate` scores each ablated model on (`inspect-attention --ablate`, unless --over N).
ABLATION_WINDOWS = 32


@dataclass(frozen=True)
class Target:
    """The translation an encoder-decoder reads for a source: its text, where it came from, gold links or None."""

    text: str
    source: str
    gold: list[Any] | None


def choose_target(model: nn.Module, tokenizer: Tokenizer, source: str, target: str | None) -> Target:
    """`target` as given, else the built-in corpus's rendering of `source` (with its gold alignment), else the
    model's own greedy translation."""
    if target is not None:
        if not target.strip():
            raise UserError("--target is empty; give the translation to read, or leave it out")
        return Target(target.strip(), "--target", None)
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import translate as render

    try:
        pair = render(source.strip())
        return Target(pair["target"], "the built-in corpus's rendering, with its gold alignment", pair["alignment"])
    except (SentenceRejected, ValueError):
        from minitx.generation.translate import translate

        return Target(translate(model, tokenizer, [source])[0], "the model's own translation", None)


def two_translations(model: nn.Module, tokenizer: Tokenizer, clean: str, corrupt: str) -> tuple[str, str]:
    """The two sources' translations: the built-in corpus's renderings when both are story sentences, else the
    model's own (greedy), so that like is compared with like."""
    from minitx.inspect.contrasts import encoder_ids

    for flag, sentence in (("--clean", clean), ("--corrupt", corrupt)):
        encoder_ids(tokenizer, sentence, model.config.block_size, flag)  # empty or too long: say which, first
    first, second = (choose_target(model, tokenizer, s.strip(), None) for s in (clean, corrupt))
    if first.source != second.source:  # one rendered, one not: compare the model's own
        from minitx.generation.translate import translate

        made = translate(model, tokenizer, [clean.strip(), corrupt.strip()])
        return made[0], made[1]
    return first.text, second.text


def with_answers(model: nn.Module, tokenizer: Tokenizer, contrast: Contrast) -> Contrast:
    """The contrast with missing answers (-1) filled in: each prompt's own top next token."""
    import torch

    from minitx.inspect.lens import lens_logits

    if contrast.good >= 0 and contrast.bad >= 0:
        return contrast
    sources = None if contrast.clean_source is None else [contrast.clean_source, contrast.corrupt_source]
    _, logits = lens_logits(model, torch.tensor([contrast.clean, contrast.corrupt]), sources)
    good, bad = logits[:, -1].argmax(dim=-1).tolist()
    good = contrast.good if contrast.good >= 0 else good
    bad = contrast.bad if contrast.bad >= 0 else bad
    if good == bad:
        raise UserError(f"both prompts' top next token is {tokenizer.id_to_token_text(good)!r}; give --answer GOOD BAD")
    return replace(contrast, good=good, bad=bad)


def check_fits(ids: list[int], block_size: int) -> None:
    """A UserError when the prompt is longer than the block the model reads."""
    if len(ids) > block_size:
        raise UserError(f"the prompt is {len(ids)} tokens but this model reads at most {block_size}; shorten it")


def check_patch_choice(pairs: str | None, clean: str | None, corrupt: str | None, n: int,
                       answer: tuple[str, str] | None, prompt: str | None = None) -> None:
    """UserErrors for patching choices that cannot work together, before the model runs."""
    if (pairs is None) == (clean is None and corrupt is None):
        raise UserError("give either --pairs PHENOMENON or --clean TEXT --corrupt TEXT")
    if pairs is None and (clean is None or corrupt is None):
        raise UserError("--clean and --corrupt go together: give both")
    for flag, text in (("--clean", clean), ("--corrupt", corrupt)):
        if text is not None and not text.strip():
            raise UserError(f"{flag} is empty; give the {flag[2:]} prompt's text")
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if pairs is not None and answer is not None:
        raise UserError("--answer is for --clean/--corrupt; the pairs bring their own answers")
    if pairs is not None and prompt is not None:
        raise UserError("--prompt is for --clean/--corrupt; the pairs bring their own translation so far")


def check_max_tokens(max_tokens: int | None) -> None:
    """A UserError when --max-tokens asks for no token at all."""
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")


def check_attention_choice(*, over: int | None = None, induction: bool = False, length: int | None = None,
                           repeats: int | None = None, generate: int = 0) -> None:
    """UserErrors for `inspect-attention` measurements that cannot work, before any file is read."""
    if over is not None and over < 1:
        raise UserError(f"--over must be at least 1, got {over}")
    if generate < 0:
        raise UserError(f"--generate must be 0 or more tokens, got {generate}")
    if not induction and (length is not None or repeats is not None):
        raise UserError("--length and --repeats shape the --induction test; add --induction")


def check_eval_choice(*, minimal_pairs: int = 0, context: int | None = None, quantize: str | None = None,
                      sentences: int | None = None, n_files: int = 0, reads_source: bool = False) -> None:
    """UserErrors for `eval` measurements that cannot work, before any weights are read."""
    if reads_source:
        if sentences is not None and sentences < 1:
            raise UserError(f"--sentences must be at least 1, got {sentences}")
        if n_files > 1:
            raise UserError("an encoder-decoder run is scored on one JSON Lines file of pairs; give one FILE.jsonl")
        return
    if minimal_pairs < 0:
        raise UserError(f"--minimal-pairs must be 0 or more, not {minimal_pairs}")
    if context is not None and quantize not in (None, "none"):
        raise UserError(f"--context rebuilds the model for a longer window and needs its float weights; "
                        f"drop --quantize {quantize} to measure length extrapolation")


def check_phenomenon(pairs: str, reads_source: bool) -> None:
    """A UserError naming the choices when `pairs` is not a phenomenon this kind of run can patch (needs no model):
    a decoder-only run's minimal-pair phenomena, an encoder-decoder's source pairs."""
    from minitx.inspect.contrasts import check_phenomenon as check_text_phenomenon
    from minitx.inspect.contrasts import check_translation_phenomenon

    (check_translation_phenomenon if reads_source else check_text_phenomenon)(pairs)
