"""Turning what a user types into what the inspect library reads: the preparation the `inspect-*` commands do.

A decoder-only run reads a text as a document starts (`<|doc|>` in front, `inspect.capture.prompt_ids`).
An encoder-decoder run reads a *source* sentence through its encoder and a translation so far through
its decoder; when no translation is given, the one read is the built-in corpus's rendering of the
source (which brings gold word links), else the model's own (`choose_target`). A patching contrast
whose answers are not given takes each prompt's own top next token (`with_answers`).

These are the pieces of input preparation that lived only in `minitx.commands` (inspect.py,
circuits.py); the API and the commands share them from here.
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
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if pairs is not None and answer is not None:
        raise UserError("--answer is for --clean/--corrupt; the pairs bring their own answers")
    if pairs is not None and prompt is not None:
        raise UserError("--prompt is for --clean/--corrupt; the pairs bring their own translation so far")


def pair_document(capture: Any, *, run: str, target_from: str, gold: list | None, report: Any, over: Any,
                  layer: int, head: int) -> dict[str, Any]:
    """What `inspect-attention --json` writes for an encoder-decoder run: the pair's three attentions, the gold
    links and the alignment of every cross-attention head (`report`, None without gold), over held-out pairs
    (`over`, or None), and the head shown with its links."""
    links = capture.head_links(layer, head)
    return {"run": run, "target_from": target_from, "pair": capture.to_dict(),
            "gold": [list(link) for link in gold] if gold is not None else None,
            "alignment": report.to_dict() if report is not None else None,
            "over": over.to_dict() if over is not None else None,
            "shown": {"layer": layer, "head": head, "links": [list(link) for link in links]}}
