"""The verbs that look inside a run: what `minitx inspect-attention`, `inspect-lens` and `inspect-patch` compute.

`LoadedRun` inherits them (`InspectVerbs`); each prepares its input as its command does (through
`api.inputs`) and returns a result whose `to_dict()` is the command's --json document. The commands
call these verbs and print the results; they prepare nothing themselves.

    attention(text)                  every head's pattern and role        inspect-attention --prompt TEXT
    attention(source=S)              encoder, decoder and cross heads     inspect-attention --source S
    roles_over(n), induction(), ablate(n)                                 inspect-attention --over/--induction/--ablate
    alignment_over(n)                cross heads' AER on held-out pairs   inspect-attention --source S --over N
    lens(text), attribute(text, g, b)  the logit lens, attribution        inspect-lens
    patch(pairs), patch(clean=, corrupt=)  activation patching            inspect-patch
    run_with_cache(text, names)      the named activations of one forward
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from minitx.api import inputs
from minitx.api.results import (
    AttentionResult,
    AttributionResult,
    CacheResult,
    LensResult,
    PairAttentionResult,
    PatchResult,
)
from minitx.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.alignment import AlignmentReport, Link
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.over_data import RoleSpread
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer


class InspectVerbs:
    """The inspect verbs of a `LoadedRun` (which supplies `model`, `tokenizer`, `files`, `name`, `_require`)."""

    model: nn.Module
    files: Run
    name: str
    tokenizer: Tokenizer
    reads_source: bool
    _validation: torch.Tensor | None = None

    def _require(self, translator: bool, verb: str) -> None:  # LoadedRun's
        raise NotImplementedError

    def _refuse_source(self, source: str | None, verb: str) -> None:
        if source is not None and not self.reads_source:
            raise UserError(f"source= reads an encoder-decoder; {self.name} is a decoder-only run: give the text "
                            f"to run.{verb} instead")

    # -- the inputs, as the commands read them ---------------------------------------------------------

    def token_ids(self, text: str) -> list[int]:
        """`text` as the inspect verbs read it: as a document starts, with `<|doc|>` in front when the tokenizer
        knows it (as in training and generation)."""
        from minitx.inspect.capture import prompt_ids

        return prompt_ids(self.tokenizer, text)

    def _decoder_input(self, text: str | None, source: str | None
                       ) -> tuple[str, list[int], str, list[int], int | None, str | None]:
        """An encoder-decoder's reading: (source text, source ids, translation so far, decoder ids, the token known
        to follow it or None, where the translation came from or None when given). No `text`: the whole
        translation (the corpus's rendering or the model's own), followed by the end token."""
        from minitx.model.inputs import decoder_ids, encode_source, end_token

        source = inputs.DEFAULT_SOURCE if source is None else source.strip()
        source_ids = encode_source(self.tokenizer, source, self.model.config.block_size)
        if text is None:
            chosen = inputs.choose_target(self.model, self.tokenizer, source, None)
            text, following, read_from = chosen.text, end_token(self.tokenizer), chosen.source
        else:
            text, following, read_from = text.strip(), None, None
        ids = decoder_ids(self.tokenizer, text, self.model.config.block_size)
        return source, source_ids, text, ids, following, read_from

    def _validation_ids(self) -> torch.Tensor:
        """The run's validation split, rebuilt as `minitx eval` does (once; --over and --ablate share it)."""
        if self._validation is None:
            from minitx.evaluation.scoring import validation_ids

            self._validation = validation_ids(self.files)[0]
        return self._validation

    # -- one forward -----------------------------------------------------------------------------------

    def run_with_cache(self, text: str = "", names: Any = None, *, source: str | None = None) -> CacheResult:
        """One forward over `text` keeping the named activations (`names`: None for all, a list, or a predicate on
        the name), through the model's `run_with_cache`. On an encoder-decoder `text` is the translation so far
        and `source` the sentence read (its names carry `encoder.` / `decoder.`)."""
        import torch

        self._refuse_source(source, "run_with_cache")
        if not hasattr(self.model, "run_with_cache"):
            raise UserError("this version of the model has no named hook points (model.run_with_cache)")
        device = next(self.model.parameters()).device
        if self.reads_source:
            _, source_ids, _, ids, _, _ = self._decoder_input(text or None, source)
            model_inputs = (torch.tensor([source_ids], device=device), torch.tensor([ids], device=device))
        else:
            ids = self.token_ids(text)
            inputs.check_fits(ids, self.model.config.block_size)
            model_inputs = (torch.tensor([ids], device=device),)
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(*model_inputs, names=names)
        tokens = [self.tokenizer.id_to_token_text(i) for i in ids]
        return CacheResult(tokens, ids, logits, dict(cache))

    # -- attention -------------------------------------------------------------------------------------

    def attention(self, text: str | None = None, *, max_tokens: int | None = None, generate: int = 0, seed: int = 0,
                  source: str | None = None, target: str | None = None,
                  alignment: list[Link] | None = None) -> AttentionResult | PairAttentionResult:
        """Every layer's and head's attention for `text` (None: the command's default prompt), with each head's
        role, as `minitx inspect-attention RUN --prompt TEXT`; `generate` N first samples N tokens after it
        (with `seed`) and reads them too; `max_tokens` keeps the last ones.

        On an encoder-decoder run: its encoder, decoder and cross-attention reading `source` -> `target` (the
        built-in corpus's rendering when None, which also aligns every cross-attention head with gold links;
        `alignment`: gold links of your own, as (source word, target word) pairs)."""
        if self.reads_source:
            if text is not None or max_tokens is not None or generate:
                raise UserError(f"{self.name} is an encoder-decoder run: give the sentence with source= (and its "
                                "translation with target=)")
            return self._pair_attention(source, target, alignment, seed)
        if target is not None or alignment is not None:
            raise UserError(f"target= and alignment= read an encoder-decoder; {self.name} is a decoder-only run: "
                            "give the text")
        self._refuse_source(source, "attention")
        from minitx.inspect.capture import DEFAULT_PROMPT

        inputs.check_max_tokens(max_tokens)
        inputs.check_attention_choice(generate=generate)
        ids = self.token_ids(DEFAULT_PROMPT if text is None else text)
        if len(ids) < 2 and not generate:
            raise UserError("the prompt is empty after tokenizing; give --prompt some text")
        new_ids = self._sample_after(ids, generate, seed) if generate else []
        result = self.attention_of_ids(ids + new_ids, max_tokens=max_tokens)
        result.prompt, result.generated = text, new_ids
        return result

    def attention_of_ids(self, ids: list[int], *, max_tokens: int | None = None) -> AttentionResult:
        """Every head's attention over `ids` exactly as given (no `<|doc|>` added), the last `max_tokens` of them."""
        from minitx.inspect.capture import capture_ids
        from minitx.inspect.roles import head_roles

        capture = capture_ids(self.model, self.tokenizer, ids, max_tokens=max_tokens)
        return AttentionResult(capture, head_roles(capture), self.name, None)

    def _sample_after(self, ids: list[int], n_tokens: int, seed: int) -> list[int]:
        """`n_tokens` sampled after `ids` (at the default temperature, with `seed`): the new ids only."""
        from minitx.generation.sampling import SamplingConfig, generate_ids

        context = ids[-self.model.config.block_size :]
        row = generate_ids(self.model, context, SamplingConfig(max_new_tokens=n_tokens, seed=seed))[0]
        return row[len(context) :]

    def _pair_attention(self, source: str | None, target: str | None, gold: list[Link] | None,
                        seed: int) -> PairAttentionResult:
        from minitx.inspect.alignment import alignment_report, capture_pair, check_links_fit

        text = inputs.DEFAULT_SOURCE if source is None else source
        if not text.strip():
            raise UserError("the source is empty; give --source a sentence")
        chosen = inputs.choose_target(self.model, self.tokenizer, text, target)
        gold = gold if gold is not None else chosen.gold
        capture = capture_pair(self.model, self.tokenizer, text, chosen.text)
        if gold is not None:
            check_links_fit(gold, capture)
        report = alignment_report([capture], [gold], seed) if gold is not None else None
        shown = (report.best.layer, report.best.head) if report else (len(capture.weights["cross"]) - 1, 0)
        return PairAttentionResult(capture, self.name, chosen.source, gold, report, shown)

    def roles_over(self, n_windows: int) -> list[RoleSpread]:
        """Each head's role over `n_windows` windows of block_size tokens spread over the validation split: mean
        and spread of its scores (`inspect-attention --over N`)."""
        from minitx.inspect.over_data import evenly_spaced_windows, roles_over_windows

        self._require(False, "roles_over")
        inputs.check_attention_choice(over=n_windows)
        windows = evenly_spaced_windows(self._validation_ids(), n_windows, self.model.config.block_size)
        return roles_over_windows(self.model, windows)

    def induction(self, length: int | None = None, repeats: int | None = None, seed: int = 0) -> InductionReport:
        """The induction test (`inspect-attention --induction`): random ordinary tokens of the run's tokenizer,
        repeated, after `<|doc|>` when it has one; each head's induction score and the loss on each copy."""
        from minitx.inspect.induction import DEFAULT_REPEATS, measure_induction
        from minitx.model.inputs import document_start

        self._require(False, "induction")
        tokenizer = self.tokenizer
        special = {tokenizer.token_id(token) for token in tokenizer.special_tokens}
        ordinary = [i for i in range(tokenizer.vocab_size) if i not in special]
        return measure_induction(self.model, ordinary, length=length, repeats=repeats or DEFAULT_REPEATS, seed=seed,
                                 first_id=document_start(tokenizer))

    def ablate(self, n_windows: int = inputs.ABLATION_WINDOWS) -> AblationReport:
        """Each head's importance (`inspect-attention --ablate`): the validation loss rise on the first `n_windows`
        block_size windows when the head is mean-ablated or zeroed."""
        from minitx.inspect.ablation import ablate_heads

        self._require(False, "ablate")
        return ablate_heads(self.model, self._validation_ids()[: n_windows * self.model.config.block_size + 1])

    def alignment_over(self, n_pairs: int, seed: int = 0) -> AlignmentReport:
        """Every cross-attention head's AER over the first `n_pairs` held-out pairs that have gold alignments
        (`inspect-attention --source S --over N` on an encoder-decoder run)."""
        from minitx.evaluation.translation_eval import held_out_pairs
        from minitx.inspect.alignment import alignment_report, capture_pair

        self._require(True, "alignment_over")
        inputs.check_attention_choice(over=n_pairs)
        pairs = [p for p in held_out_pairs(self.files) if p.get("alignment")][:n_pairs]
        if not pairs:
            raise UserError(f"{self.files.path}'s held-out pairs have no gold alignments; --over needs the built-in "
                            "corpus or pairs written by minitx data translation")
        captures = [capture_pair(self.model, self.tokenizer, p["source"], p["target"]) for p in pairs]
        return alignment_report(captures, [p["alignment"] for p in pairs], seed)

    # -- the logit lens and attribution ------------------------------------------------------------------

    def lens(self, text: str | None = None, *, target: str | None = None, attribute: tuple[str, str] | None = None,
             source: str | None = None) -> LensResult:
        """The logit lens of `text` (None: the command's default prompt), as `minitx inspect-lens RUN --prompt TEXT`;
        `target` follows one word's probability instead of the next token's, `attribute=(GOOD, BAD)` adds the direct
        logit attribution at the last position.

        On an encoder-decoder run the decoder is read given `source`: `text` is the translation so far (None: the
        whole translation, whose last position predicts the end token)."""
        from minitx.inspect.capture import DEFAULT_PROMPT
        from minitx.inspect.contrasts import answer_token
        from minitx.inspect.lens import logit_lens

        self._refuse_source(source, "lens")
        source_ids = following = read_from = None
        if self.reads_source:
            if text is not None and source is None:
                raise UserError(f"{self.name} is an encoder-decoder run: the text is the translation so far; give the "
                                "sentence it translates with source=")
            source, source_ids, text, ids, following, read_from = self._decoder_input(text, source)
        else:
            ids = self.token_ids(DEFAULT_PROMPT if text is None else text)
            if len(ids) < 2:
                raise UserError("the prompt is empty after tokenizing; give --prompt some text")
        inputs.check_fits(ids, self.model.config.block_size)
        target_id = answer_token(self.tokenizer, target) if target is not None else None
        answers = tuple(answer_token(self.tokenizer, word) for word in attribute) if attribute is not None else None
        tokens = [self.tokenizer.id_to_token_text(i) for i in ids]
        report = logit_lens(self.model, ids, tokens, target=target_id, source=source_ids, following=following)
        attribution = None
        if answers is not None:
            from minitx.inspect.attribution import attribute as attribute_parts

            attribution = AttributionResult(attribute_parts(self.model, ids, good=answers[0], bad=answers[1],
                                                            source=source_ids), self.tokenizer)
        return LensResult(report, self.tokenizer, self.name, text, source, attribution, read_from)

    def attribute(self, text: str, good: str, bad: str, *, source: str | None = None) -> AttributionResult:
        """Direct logit attribution of logit[good] − logit[bad] after `text`: every head's, MLP's and the embedding's
        share (as `inspect-lens --attribute GOOD BAD`). `good` and `bad` are words of one token each."""
        found = self.lens(text, attribute=(good, bad), source=source).attribution
        assert found is not None
        return found

    # -- activation patching -----------------------------------------------------------------------------

    def patch(self, pairs: str | None = None, *, clean: str | None = None, corrupt: str | None = None,
              answer: tuple[str, str] | None = None, prompt: str | None = None, n: int = inputs.DEFAULT_PAIRS,
              seed: int = 0) -> PatchResult:
        """Activation patching, as `minitx inspect-patch`: over `n` built-in pairs of a phenomenon (`pairs`:
        "agreement_local" or "agreement_far"; an encoder-decoder's: "noun" or "gender"), or one `clean`/`corrupt`
        pair (answers: `answer=(GOOD, BAD)`, else each prompt's own top next token).

        On an encoder-decoder run `clean` and `corrupt` are two source sentences and `prompt` the translation so
        far (None: where their translations part)."""
        from minitx.inspect.contrasts import phenomenon_contrasts, text_contrast
        from minitx.inspect.patching import patch

        inputs.check_patch_choice(pairs, clean, corrupt, n, answer, prompt)
        translator = self.reads_source
        if not translator and prompt is not None:
            raise UserError(f"prompt= is the translation so far of an encoder-decoder run; {self.name} is a "
                            "decoder-only run: the prompts are clean= and corrupt=")
        if pairs is not None:
            inputs.check_phenomenon(pairs, translator)
        block, tokenizer = self.model.config.block_size, self.tokenizer
        skipped: dict[str, int] = {}
        good, bad = answer if answer is not None else (None, None)
        if pairs is not None:
            from minitx.inspect.contrasts import translation_contrasts

            make = translation_contrasts if translator else phenomenon_contrasts
            contrasts, skipped = make(tokenizer, pairs, n, block, seed=seed)
            if not contrasts:
                reasons = ", ".join(f"{k}: {v}" for k, v in skipped.items())
                raise UserError(f"no {pairs} pair could be patched with this tokenizer ({reasons})")
        elif translator:
            from minitx.inspect.contrasts import source_contrast

            translations = None if prompt is not None else inputs.two_translations(self.model, tokenizer, clean or "",
                                                                                  corrupt or "")
            contrasts = [inputs.with_answers(self.model, tokenizer, source_contrast(
                tokenizer, clean or "", corrupt or "", prompt=prompt, translations=translations, good=good, bad=bad,
                block_size=block))]
        else:
            contrasts = [inputs.with_answers(self.model, tokenizer,
                                             text_contrast(tokenizer, clean or "", corrupt or "", good, bad, block))]
        report = patch(self.model, contrasts, seed=seed)
        return PatchResult(report, contrasts, tokenizer, self.name, pairs, dict(skipped))
