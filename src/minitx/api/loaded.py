"""A run in Python: `minitx.load(RUN_DIR)` gives its model, tokenizer and config, and the commands' verbs.

    run = minitx.load("runs/tiny")          # as `minitx generate` loads it: newest checkpoint, eval mode
    run.generate("The dog", seed=0)         # minitx generate RUN --prompt "The dog" --seed 0
    run.attention("The dog sees the dog.")  # minitx inspect-attention RUN --prompt ...
    run.lens("The dogs run.")               # minitx inspect-lens RUN --prompt ...
    run.attribute("The dogs", "run", "runs")# minitx inspect-lens RUN --prompt ... --attribute run runs
    run.patch(pairs="agreement_far")        # minitx inspect-patch RUN --pairs agreement_far
    run.evaluate()                          # minitx eval RUN
    pair_run.translate(["The dog runs."])   # minitx translate RUN "The dog runs."

Each verb prepares its input exactly as its command does (the same `<|doc|>` rule, the same defaults)
and returns a result object (`minitx.api.results`) whose `to_dict()` is the command's --json document.
A verb the run's architecture cannot answer is refused in one line (a `UserError`), as on the command
line. `minitx.train(out=..., preset="tiny", steps=200)` trains a run and returns it loaded;
`random_run()` builds an untrained one in memory, for trying things in a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.api import inputs
from minitx.api.results import (
    AttentionResult,
    AttributionResult,
    CacheResult,
    Evaluation,
    Generation,
    LensResult,
    PairAttentionResult,
    PatchResult,
    Translations,
)
from minitx.config import DEFAULT_TEMPERATURE, ModelConfig, TrainConfig
from minitx.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer
    from minitx.training.loop import TrainResult

#: The text random_run's character tokenizer is made from: the letters and marks of the built-in stories.
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,!?'\"\n"


def reads_sources(config: ModelConfig) -> bool:
    """Whether the run's model reads a source sentence through an encoder: its architecture answers."""
    from minitx.model.registry import architecture

    return architecture(config.arch).reads_source


@dataclass(frozen=True)
class RunConfig:
    """A run's two configurations: the model's shape and the recipe it was trained with."""

    model: ModelConfig
    train: TrainConfig


class LoadedRun:
    """A trained (or random) model with its tokenizer and configuration, and the verbs of the commands.

    Attributes:
        model: the network, in eval mode on `device` (a GPT, or an encoder-decoder).
        tokenizer: the tokenizer it was trained with.
        config: `.model` (ModelConfig) and `.train` (TrainConfig).
        architecture: "gpt" or "encoder-decoder".
        path: the run directory (None for a `random_run`).
        files: the run directory as read (`minitx.rundir.Run`: configs, tokenizer, raw config.json).
        training: what `minitx.train` measured (None for a run loaded from disk).

    Example (an untrained model in memory: its predictions are noise, its shapes are real):
        >>> run = random_run(seed=0)
        >>> run.architecture, run.config.model.n_layers
        ('gpt', 2)
        >>> run.lens("The dog").points
        ['embed', 'block 0', 'block 1']
    """

    def __init__(self, model: nn.Module, files: Run, *, name: str, device: str = "cpu",
                 path: Path | None = None, training: TrainResult | None = None) -> None:
        self.model = model
        self.files = files
        self.name = name
        self.device = device
        self.path = path
        self.training = training

    # -- what the run is -------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        return self.files.tokenizer

    @property
    def config(self) -> RunConfig:
        return RunConfig(self.files.model_config, self.files.train_config)

    @property
    def architecture(self) -> str:
        return self.files.model_config.arch

    def __repr__(self) -> str:
        mc = self.files.model_config
        stacks = f"{mc.encoder_layers or mc.n_layers} + {mc.n_layers}" if reads_sources(mc) else f"{mc.n_layers}"
        parameters = sum(p.numel() for p in self.model.parameters())
        return (f"LoadedRun({self.name!r}: {self.architecture}, {stacks} layers × {mc.n_heads} heads × {mc.dim} wide, "
                f"block {mc.block_size}, pos {mc.pos}, {parameters:,} parameters, on {self.device})")

    def _require(self, translator: bool, verb: str) -> None:
        """A one-line UserError when `verb` needs the other architecture."""
        from minitx.model.registry import ARCHITECTURES, architecture

        found = architecture(self.architecture)
        if found.reads_source != translator:
            serving = " or ".join(a.label for a in ARCHITECTURES.values() if a.reads_source == translator)
            instead = "run.translate(...)" if found.reads_source else "run.generate(...)"
            raise UserError(f"{self.name} is {found.label} run and run.{verb} works on {serving} run only; "
                            f"use {instead}")

    def _refuse_source(self, source: str | None, verb: str) -> None:
        if source is not None and not reads_sources(self.files.model_config):
            raise UserError(f"source= reads an encoder-decoder; {self.name} is a decoder-only run: give the text "
                            f"to run.{verb} instead")

    # -- the commands' verbs ---------------------------------------------------------------------------

    def generate(self, prompt: str = "", max_new_tokens: int = 200, *, temperature: float = DEFAULT_TEMPERATURE,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 num_samples: int = 1, stop: Sequence[str] = ()) -> Generation:
        """Continue `prompt` (empty: a new story), as `minitx generate` does: inside one document, ending at the
        next `<|doc|>` or a `stop` string. `seed` None draws one (kept in the result)."""
        from minitx.generation.sampling import SamplingConfig, generate_text

        self._require(False, "generate")
        cfg = SamplingConfig(max_new_tokens, temperature, top_k, top_p, seed, num_samples, list(stop))
        samples = generate_text(self.model, self.tokenizer, prompt, cfg)
        return Generation(prompt, samples.texts, samples.token_ids, samples.seed, samples.seconds)

    def translate(self, sentences: str | Sequence[str], beam: int = 1, *, batch_size: int = 32,
                  max_new_tokens: int | None = None) -> Translations:
        """Translate one sentence or several (greedy, or beam search of width `beam`), as `minitx translate`."""
        from minitx.generation.translate import translate

        self._require(True, "translate")
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        if not sentences:
            raise UserError("nothing to translate; give a sentence or a list of them")
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        outputs = translate(self.model, self.tokenizer, sentences, beam=beam, batch_size=batch_size,
                            max_new_tokens=max_new_tokens)
        return Translations(sentences, outputs, beam)

    def evaluate(self, text: str | None = None, *, grammar: int = 0, seed: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE, sentences: int | None = None, beam: int = 1) -> Evaluation:
        """Loss, perplexity and bits per byte on the run's validation split (or on `text`), as `minitx eval --json`;
        `grammar` N also samples N stories and checks them with the built-in grammar.

        An encoder-decoder run scores its translations of the held-out pairs (the first `sentences` of them)."""
        if reads_sources(self.files.model_config):
            return self._evaluate_translation(sentences, beam, seed, grammar, text)
        if sentences is not None or beam != 1:
            raise UserError(f"sentences= and beam= score translations, and {self.name} is a decoder-only run; "
                            "drop them")
        import torch

        from minitx.evaluation.scoring import grammar_score, sample_stories, score_ids, validation_ids

        if text is not None:
            ids = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
            n_bytes, source = len(text.encode("utf-8")), "the text given"
        else:
            if "imported_from" in self.files.raw_config:
                raise UserError(f"{self.name} was imported, not trained here, so it has no validation split; "
                                "give the text to score: run.evaluate(TEXT)")
            ids, n_bytes, source = validation_ids(self.files)
        score = score_ids(self.model, ids, n_bytes)
        data: dict[str, Any] = {"source": source, "weights": "none", **dataclasses.asdict(score)}
        if grammar > 0:
            report = grammar_score(sample_stories(self.model, self.tokenizer, grammar, seed, temperature=temperature))
            data["grammar"] = {**report.to_dict(), "temperature": temperature, "seed": seed}
        return Evaluation(data)

    def _evaluate_translation(self, sentences: int | None, beam: int, seed: int, grammar: int,
                              text: str | None) -> Evaluation:
        from minitx.evaluation.translation_eval import evaluate_translation, held_out_pairs

        if grammar or text is not None:
            raise UserError(f"grammar= and text= measure a decoder-only language model; {self.name} is an "
                            "encoder-decoder run: drop them (run.evaluate() scores its translations)")
        if sentences is not None and sentences < 1:
            raise UserError(f"--sentences must be at least 1, got {sentences}")
        pairs = held_out_pairs(self.files)
        pairs = pairs[:sentences] if sentences else pairs
        result = evaluate_translation(self.model, self.tokenizer, pairs, beam=beam, seed=seed)
        return Evaluation({"source": "the held-out pairs", "beam": beam, "weights": "none", **result.to_dict()})

    # -- looking inside ----------------------------------------------------------------------------------

    def token_ids(self, text: str) -> list[int]:
        """`text` as the inspect verbs read it: as a document starts, with `<|doc|>` in front when the tokenizer
        knows it (as in training and generation)."""
        from minitx.inspect.capture import prompt_ids

        return prompt_ids(self.tokenizer, text)

    def _decoder_input(self, text: str | None, source: str | None) -> tuple[str, list[int], str, list[int], int | None]:
        """An encoder-decoder's reading: (source text, source ids, translation so far, decoder ids, the token known
        to follow it or None). No `text`: the whole translation (the corpus's rendering or the model's own)."""
        from minitx.model.inputs import decoder_ids, encode_source, end_token

        source = inputs.DEFAULT_SOURCE if source is None else source.strip()
        source_ids = encode_source(self.tokenizer, source, self.model.config.block_size)
        if text is None:
            text, following = inputs.choose_target(self.model, self.tokenizer, source, None).text, \
                end_token(self.tokenizer)
        else:
            text, following = text.strip(), None
        return source, source_ids, text, decoder_ids(self.tokenizer, text, self.model.config.block_size), following

    def run_with_cache(self, text: str = "", names: Any = None, *, source: str | None = None) -> CacheResult:
        """One forward over `text` keeping the named activations (`names`: None for all, a list, or a predicate on
        the name), through the model's `run_with_cache`. On an encoder-decoder `text` is the translation so far
        and `source` the sentence read (its names carry `encoder.` / `decoder.`)."""
        import torch

        self._refuse_source(source, "run_with_cache")
        if not hasattr(self.model, "run_with_cache"):
            raise UserError("this version of the model has no named hook points (model.run_with_cache)")
        device = next(self.model.parameters()).device
        if reads_sources(self.files.model_config):
            _, source_ids, _, ids, _ = self._decoder_input(text or None, source)
            model_inputs = (torch.tensor([source_ids], device=device), torch.tensor([ids], device=device))
        else:
            ids = self.token_ids(text)
            inputs.check_fits(ids, self.model.config.block_size)
            model_inputs = (torch.tensor([ids], device=device),)
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(*model_inputs, names=names)
        tokens = [self.tokenizer.id_to_token_text(i) for i in ids]
        return CacheResult(tokens, ids, logits, dict(cache))

    def attention(self, text: str | None = None, *, max_tokens: int | None = None, source: str | None = None,
                  target: str | None = None) -> AttentionResult | PairAttentionResult:
        """Every layer's and head's attention for `text` (None: the command's default prompt), with each head's
        role, as `minitx inspect-attention RUN --prompt TEXT`.

        On an encoder-decoder run: its encoder, decoder and cross-attention reading `source` -> `target` (the
        built-in corpus's rendering when None, which also aligns every cross-attention head with gold links)."""
        if reads_sources(self.files.model_config):
            if text is not None or max_tokens is not None:
                raise UserError(f"{self.name} is an encoder-decoder run: give the sentence with source= (and its "
                                "translation with target=)")
            return self._pair_attention(source, target)
        if target is not None:
            raise UserError(f"target= reads an encoder-decoder; {self.name} is a decoder-only run: give the text")
        self._refuse_source(source, "attention")
        from minitx.inspect.capture import DEFAULT_PROMPT, capture_ids
        from minitx.inspect.roles import head_roles

        if max_tokens is not None and max_tokens < 1:
            raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
        ids = self.token_ids(DEFAULT_PROMPT if text is None else text)
        if len(ids) < 2:
            raise UserError("the prompt is empty after tokenizing; give --prompt some text")
        capture = capture_ids(self.model, self.tokenizer, ids, max_tokens=max_tokens)
        return AttentionResult(capture, head_roles(capture), self.name, text)

    def _pair_attention(self, source: str | None, target: str | None, seed: int = 0) -> PairAttentionResult:
        from minitx.inspect.alignment import alignment_report, capture_pair, check_links_fit

        text = inputs.DEFAULT_SOURCE if source is None else source
        if not text.strip():
            raise UserError("the source is empty; give --source a sentence")
        chosen = inputs.choose_target(self.model, self.tokenizer, text, target)
        capture = capture_pair(self.model, self.tokenizer, text, chosen.text)
        if chosen.gold is not None:
            check_links_fit(chosen.gold, capture)
        report = alignment_report([capture], [chosen.gold], seed) if chosen.gold is not None else None
        shown = (report.best.layer, report.best.head) if report else (len(capture.weights["cross"]) - 1, 0)
        return PairAttentionResult(capture, self.name, chosen.source, chosen.gold, report, shown)

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
        source_ids = following = None
        if reads_sources(self.files.model_config):
            if text is not None and source is None:
                raise UserError(f"{self.name} is an encoder-decoder run: the text is the translation so far; give the "
                                "sentence it translates with source=")
            source, source_ids, text, ids, following = self._decoder_input(text, source)
            prompt = text
        else:
            prompt = text
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
        return LensResult(report, self.tokenizer, self.name, prompt, source, attribution)

    def attribute(self, text: str, good: str, bad: str, *, source: str | None = None) -> AttributionResult:
        """Direct logit attribution of logit[good] − logit[bad] after `text`: every head's, MLP's and the embedding's
        share (as `inspect-lens --attribute GOOD BAD`). `good` and `bad` are words of one token each."""
        found = self.lens(text, attribute=(good, bad), source=source).attribution
        assert found is not None
        return found

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
        translator = reads_sources(self.files.model_config)
        if not translator and prompt is not None:
            raise UserError(f"prompt= is the translation so far of an encoder-decoder run; {self.name} is a "
                            "decoder-only run: the prompts are clean= and corrupt=")
        block, tokenizer = self.model.config.block_size, self.tokenizer
        skipped: dict[str, int] = {}
        good, bad = answer if answer is not None else (None, None)
        if pairs is not None:
            from minitx.inspect.contrasts import check_phenomenon, check_translation_phenomenon, translation_contrasts

            (check_translation_phenomenon if translator else check_phenomenon)(pairs)
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


# -- ways to get a run ------------------------------------------------------------------------------------


def load(path: str | Path, device: str = "auto", threads: int = 0) -> LoadedRun:
    """Load a run directory as the commands do: the newest complete checkpoint, strictly, in eval mode.

    `device` "auto" takes cuda, then mps, then cpu; on a CPU `threads` sets torch's threads (0: the idle cores,
    or OMP_NUM_THREADS). A missing or damaged run is a one-line UserError.

        run = load("runs/tiny")
        run.lens("The dogs run.")
    """
    from minitx.device import apply_threads, resolve_device
    from minitx.rundir import load_model

    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    model, files = load_model(path, device=device)
    return LoadedRun(model, files, name=str(path), device=device, path=Path(path))


def _flag_names() -> set[str]:
    from minitx.config import flag_fields

    return {f.name for f in flag_fields(ModelConfig, TrainConfig)}


def train(out: str | Path, preset: str | None = None, steps: int | None = None, *,
          files: Sequence[str | Path] = (), force: bool = False, resume: bool = False, device: str = "auto",
          **flags: Any) -> LoadedRun:
    """Train a run as `minitx train --out OUT` does (quietly) and return it loaded.

    `flags` are the command's flags by their configuration field names (`n_layers=2`, `dim=32`, `lr=3e-3`,
    `arch="encoder-decoder"`, `tokenizer="char"`, `threads=1`, ...); `files` the corpus files (none: the built-in
    stories, or the built-in sentence pairs for an encoder-decoder). The result's `.training` holds the final
    losses and timings.

        run = train("runs/tiny", preset="tiny", steps=200, threads=1)
    """
    from minitx.training.setup import run_training

    known = _flag_names()
    unknown = sorted(set(flags) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"minitx.train has no flag {unknown[0]!r}{hint}; the flags are the fields of ModelConfig "
                        "and TrainConfig, e.g. n_layers=2, dim=64, lr=3e-3")
    arguments = {**flags, "preset": preset, "steps": steps, "device": device}
    _, result = run_training([Path(f) for f in files], Path(out), flags=arguments, resume=resume, force=force,
                             show_progress=False)
    run = load(out, device=device, threads=flags.get("threads") or 0)
    run.training = result
    return run


def random_run(arch: str = "gpt", *, seed: int = 0, text: str = ALPHABET, **shape: Any) -> LoadedRun:
    """An untrained run in memory: a character tokenizer over `text` (with `<|doc|>`), and a small model of
    `arch` (2 layers × 2 heads × 32 wide, block 32, unless `shape` says otherwise) initialised from `seed`.

        >>> run = random_run(seed=0)
        >>> len(run.attention("The dog").tokens)   # <|doc|> and 7 characters
        8
    """
    import torch

    from minitx.model import build_model
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer

    tokenizer = Tokenizer.train_char(text)
    values = {"block_size": 32, "n_layers": 2, "n_heads": 2, "dim": 32, "arch": arch, **shape}
    config = ModelConfig(vocab_size=tokenizer.vocab_size, **values)
    torch.manual_seed(seed)
    model = build_model(config).eval()
    files = Run(Path(f"random-{arch}"), config, TrainConfig(preset=None), tokenizer)
    return LoadedRun(model, files, name=f"random {arch} (seed {seed})", device="cpu")
