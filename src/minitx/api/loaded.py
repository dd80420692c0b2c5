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
and returns a result object (`minitx.api.results`) whose `to_dict()` is the command's --json document;
the commands are thin callers of these verbs (load, choose the device, call, print). A verb the run's
architecture cannot answer is refused in one line (a `UserError`), as on the command line. The inspect
verbs live in `api/inside.py`, evaluation in `api/evaluate.py`; `minitx.train` and `random_run` (a run
trained, or an untrained one in memory) in `api/train.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from minitx.api.inside import InspectVerbs
from minitx.api.results import Evaluation, Generation, Translations
from minitx.config import DEFAULT_TEMPERATURE, ModelConfig, TrainConfig
from minitx.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer
    from minitx.training.loop import TrainResult


@dataclass(frozen=True)
class RunConfig:
    """A run's two configurations: the model's shape and the recipe it was trained with."""

    model: ModelConfig
    train: TrainConfig


class LoadedRun(InspectVerbs):
    """A trained (or random) model with its tokenizer and configuration, and the verbs of the commands.

    Attributes:
        model: the network, in eval mode on `device` (a GPT, or an encoder-decoder).
        tokenizer: the tokenizer it was trained with.
        config: `.model` (ModelConfig) and `.train` (TrainConfig).
        architecture: "gpt" or "encoder-decoder".
        path: the run directory (None for a `random_run`).
        files: the run directory as read (`minitx.rundir.Run`: configs, tokenizer, raw config.json).
        quantize: "int8" when its linear maps were quantized at load, else None.
        training: what `minitx.train` measured (None for a run loaded from disk).

    Example (an untrained model in memory: its predictions are noise, its shapes are real):
        >>> from minitx.api import random_run
        >>> run = random_run(seed=0)
        >>> run.architecture, run.config.model.n_layers
        ('gpt', 2)
        >>> run.lens("The dog").points
        ['embed', 'block 0', 'block 1']
    """

    def __init__(self, model: nn.Module, files: Run, *, name: str, device: str = "cpu",
                 path: Path | None = None, training: TrainResult | None = None, quantize: str | None = None) -> None:
        self.model = model
        self.files = files
        self.name = name
        self.device = device
        self.path = path
        self.training = training
        self.quantize = None if quantize in (None, "none") else quantize
        self._validation = None

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

    @property
    def reads_source(self) -> bool:
        """Whether the model reads a source sentence through an encoder: its architecture answers."""
        from minitx.model.registry import architecture

        return architecture(self.architecture).reads_source

    def __repr__(self) -> str:
        mc = self.files.model_config
        stacks = f"{mc.encoder_layers or mc.n_layers} + {mc.n_layers}" if self.reads_source else f"{mc.n_layers}"
        parameters = sum(p.numel() for p in self.model.parameters())
        weights = f", {self.quantize} weights" if self.quantize else ""
        return (f"LoadedRun({self.name!r}: {self.architecture}, {stacks} layers × {mc.n_heads} heads × {mc.dim} wide, "
                f"block {mc.block_size}, pos {mc.pos}, {parameters:,} parameters, on {self.device}{weights})")

    def _require(self, translator: bool, verb: str) -> None:
        """A one-line UserError when `verb` needs the other architecture."""
        from minitx.model.registry import ARCHITECTURES, architecture, labels

        found = architecture(self.architecture)
        if found.reads_source != translator:
            serving = labels([a for a in ARCHITECTURES.values() if a.reads_source == translator])
            instead = "run.translate(...)" if found.reads_source else "run.generate(...)"
            raise UserError(f"{self.name} is {found.label} run and run.{verb} works on {serving} run only; "
                            f"use {instead}")

    # -- the commands' verbs ---------------------------------------------------------------------------

    def generate(self, prompt: str = "", max_new_tokens: int = 200, *, temperature: float = DEFAULT_TEMPERATURE,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 num_samples: int = 1, stop: Sequence[str] = (),
                 on_text: Callable[[int, str], None] | None = None) -> Generation:
        """Continue `prompt` (empty: a new story), as `minitx generate` does: inside one document, ending at the
        next `<|doc|>` or a `stop` string. `seed` None draws one (kept in the result). `on_text(sample, piece)`
        receives each sample's text as soon as it is final, for printing it as it is written."""
        from minitx.generation.sampling import SamplingConfig, generate_text

        self._require(False, "generate")
        cfg = SamplingConfig(max_new_tokens, temperature, top_k, top_p, seed, num_samples, list(stop))
        samples = generate_text(self.model, self.tokenizer, prompt, cfg, on_text=on_text)
        return Generation(prompt, samples.texts, samples.token_ids, samples.seed, samples.seconds, samples.steps)

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

    def evaluate(self, text: str | None = None, *, files: Sequence[str | Path] = (), grammar: int = 0,
                 minimal_pairs: int = 0, order_test: bool = False, context: int | None = None, seed: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE, sentences: int | None = None,
                 beam: int = 1) -> Evaluation:
        """Loss, perplexity and bits per byte on the run's validation split (or on `text`, or on the text `files`),
        as `minitx eval --json`; `grammar` N also samples N stories and checks them with the built-in grammar,
        `minimal_pairs` N scores N minimal pairs, `order_test` shuffles words and sentences, `context` L measures
        the loss per position in windows of L tokens (length extrapolation).

        An encoder-decoder run scores its translations of the held-out pairs (or of one JSON Lines file in
        `files`), the first `sentences` of them, greedy or with a beam of `beam`."""
        from minitx.api.evaluate import evaluate_language_model, evaluate_translator

        if self.reads_source:
            if grammar or minimal_pairs or order_test or context is not None or text is not None:
                raise UserError(f"grammar=, minimal_pairs=, order_test=, context= and text= measure a decoder-only "
                                f"language model; {self.name} is an encoder-decoder run: drop them (run.evaluate() "
                                "scores its translations)")
            return evaluate_translator(self.model, self.files, self.quantize, files, sentences=sentences, beam=beam,
                                       seed=seed)
        if sentences is not None or beam != 1:
            raise UserError(f"sentences= and beam= score translations, and {self.name} is a decoder-only run; "
                            "drop them")
        return evaluate_language_model(self.model, self.files, self.name, self.quantize, text, files,
                                       grammar=grammar, minimal_pairs=minimal_pairs, order_test=order_test,
                                       context=context, seed=seed, temperature=temperature)


# -- ways to get a run ------------------------------------------------------------------------------------


def load(path: str | Path, device: str = "auto", threads: int = 0, *, quantize: str | None = None) -> LoadedRun:
    """Load a run directory as the commands do: the newest complete checkpoint, strictly, in eval mode.

    `device` "auto" takes cuda, then mps, then cpu; on a CPU `threads` sets torch's threads (0: the idle cores,
    or OMP_NUM_THREADS). `quantize` "int8" stores the linear maps' weights in int8 (`--quantize int8`; any
    architecture). A missing or damaged run, or an unknown `quantize`, is a one-line UserError.

        run = load("runs/tiny")
        run.lens("The dogs run.")
    """
    from minitx.device import apply_threads, resolve_device
    from minitx.model.quantize import apply_quantization, check_quantize
    from minitx.rundir import load_model

    check_quantize(quantize)
    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    model, files = load_model(path, device=device)
    apply_quantization(model, quantize)
    return LoadedRun(model, files, name=str(path), device=device, path=Path(path), quantize=quantize)
