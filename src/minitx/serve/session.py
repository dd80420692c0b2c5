"""What the explorer page asks of one run: the one place that calls the library (the adapter).

The web app (`minitx.serve.app`) knows runs only as `RunSession`s, and every answer is a plain dict ready
for JSON. Each method is one thing the page shows:

    view(text, ...)        the text as tokens, the next-token distribution (temperature / top-k / top-p,
                           with heads ablated beside intact), every head's attention, the logit lens
    roles_over_data()      each head's role over validation windows (computed once, then cached)
    patching(phenomenon)   the activation-patching grids of built-in minimal pairs (cached per phenomenon)
    sample(text, ...)      a continuation, piece by piece (a generator, for the page's event stream)
    translate(sentence)    an encoder-decoder's translation, its cross-attention, and against the gold links
                           of a built-in sentence, every head's alignment error rate and the best head

One model per run, and one lock per model: hooks (an ablated head) and captured weights live on the
model while a pass runs, so two requests must never run it at the same time. Attention weights travel
as bytes (α·255 rounded, base64): a [L, H, T, T] grid of floats as JSON text would be ten times larger.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from minitx.errors import UserError

if TYPE_CHECKING:
    from minitx.rundir import Run

#: The longest text (in characters) the page may send; longer is refused with a message.
MAX_TEXT_CHARS = 2000
#: Tokens in a next-token list.
TOP_TOKENS = 10
#: Validation windows the roles over data are measured on (fewer if the validation text is shorter).
ROLE_WINDOWS = 16
#: Minimal pairs averaged in a patching grid.
PATCH_PAIRS = 16
#: The most tokens one sampling request may ask for.
MAX_NEW_TOKENS = 400
#: Sentences the page offers on an encoder-decoder run: story sentences, so each has gold links.
EXAMPLE_SENTENCES = ("The big dog sees the red ball.", "Mia sees the red ball.", "The little cat runs to the old tree.")


@dataclass(frozen=True)
class Controls:
    """How the next token is chosen: temperature 0 is greedy; top-k / top-p None keep every token."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def check(self) -> None:
        from minitx.generation.sampling import SamplingConfig

        SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)  # its UserErrors


def pack_weights(weights: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Attention weights in [0, 1] as {"shape": [...], "u8": base64 of round(α·255) bytes} (row-major).

        >>> pack_weights(np.array([[1.0, 0.0], [0.5, 0.5]]))
        {'shape': [2, 2], 'u8': '/wCAgA=='}
    """
    array = weights.numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    quantized = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    return {"shape": list(quantized.shape), "u8": base64.b64encode(quantized.tobytes()).decode("ascii")}


def _finite(x: float) -> float | None:
    """A float JSON can hold: NaN and infinities become None."""
    return float(x) if math.isfinite(x) else None


def check_text(text: str, what: str = "the text") -> str:
    """`text` if it is a string of at most MAX_TEXT_CHARS characters, else a UserError saying so."""
    if not isinstance(text, str):
        raise UserError(f"{what} must be a string")
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"{what} is {len(text)} characters; the explorer reads at most {MAX_TEXT_CHARS}")
    return text


class RunSession:
    """One run loaded for the explorer: its model, tokenizer, a lock, and the answers worth keeping."""

    def __init__(self, run_dir: str | Path, index: int, device: str = "cpu", name: str | None = None) -> None:
        from minitx.rundir import load_model

        self.path = Path(run_dir)
        self.index = index
        self.name = name or self.path.resolve().name
        self.model, self.run = load_model(run_dir, device=device)
        self.model.eval()
        self.tokenizer = self.run.tokenizer
        self.config = self.run.model_config
        self.is_pair = self.config.arch == "encoder-decoder"
        self.lock = threading.Lock()  # one pass of this model at a time (hooks and captures live on it)
        self._roles: dict[str, Any] | None = None
        self._patches: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()  # one computation of a cached answer at a time
        self._token_texts: dict[int, str] = {}

    # ------------------------------------------------------------------------------------------ about
    def info(self) -> dict[str, Any]:
        """What the page needs to lay the run out: its name, architecture and shape, and what it can show."""
        from minitx.inspect.contrasts import PATCHABLE, TRANSLATION_PATCHABLE

        c = self.config
        return {"index": self.index, "name": self.name, "arch": c.arch,
                "n_layers": c.n_layers, "n_heads": c.n_heads, "dim": c.dim, "block_size": c.block_size,
                "pos": c.pos, "vocab_size": c.vocab_size,
                "encoder_layers": (c.encoder_layers or c.n_layers) if self.is_pair else None,
                "phenomena": list(TRANSLATION_PATCHABLE if self.is_pair else PATCHABLE),
                "examples": list(EXAMPLE_SENTENCES) if self.is_pair else [],
                "max_text_chars": MAX_TEXT_CHARS, "max_new_tokens": MAX_NEW_TOKENS}

    def _require(self, pair: bool, what: str) -> None:
        if self.is_pair != pair:
            kind = "an encoder-decoder" if self.is_pair else "a decoder-only"
            raise UserError(f"run {self.index} ({self.name}) is {kind} run: {what} does not apply to it")

    def _ids(self, text: str) -> tuple[list[int], bool]:
        """The text's ids as a document starts (<|doc|> first), its last block_size of them; and whether cut."""
        from minitx.inspect.capture import prompt_ids

        ids = prompt_ids(self.tokenizer, check_text(text))
        if not ids:  # a tokenizer without <|doc|>, and no text
            raise UserError("the text is empty; type some")
        block = self.config.block_size
        return ids[-block:], len(ids) > block

    def _ablated(self, stack: ExitStack, heads: Sequence[tuple[int, int]]) -> None:
        from minitx.inspect.ablation import head_replaced
        from minitx.inspect.capture import check_layer_head

        for layer, head in heads:
            check_layer_head(self.config.n_layers, self.config.n_heads, layer, head)
            stack.enter_context(head_replaced(self.model, layer, head))

    # ------------------------------------------------------------------------------------------ views
    def view(self, text: str, controls: Controls, ablate: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
        """Tokens, next-token distribution (ablated beside intact), every head's attention and roles on this
        text, and the logit lens: everything the page redraws on a keystroke, in one lock."""
        from minitx.inspect.capture import AttentionCapture
        from minitx.inspect.lens import logit_lens
        from minitx.inspect.roles import head_roles

        self._require(False, "the decoder-only view")
        controls.check()
        ids, cut = self._ids(text)
        tokens = [self._token_text(i) for i in ids]
        idx = torch.tensor([ids], dtype=torch.long, device=self._device())
        with self.lock, torch.inference_mode():
            # One pass gives the next-token logits and every head's weights (as `capture_ids` reads them).
            logits, _ = self.model(idx, return_weights=True)
            intact = logits[0, -1].float().cpu()  # [V]
            weights = torch.stack(self.model.attn_weights, dim=1)[0].float().cpu()  # L x [1, H, T, T] -> [L, H, T, T]
            ablated = None
            if ablate:
                with ExitStack() as stack:
                    self._ablated(stack, ablate)
                    ablated = self._last_logits(idx)
            lens = logit_lens(self.model, ids, tokens)
        capture = AttentionCapture(tokens, ids, weights, self.config.pos)
        roles = head_roles(capture)
        top = lens.top_ids[:, :, 0]  # [P, T]: the top token at each point and position
        return {
            "run": self.index, "tokens": tokens, "token_ids": ids, "cut": cut, "block_size": self.config.block_size,
            "next": self._distribution(intact, ablated, controls),
            "attention": pack_weights(capture.weights),
            "roles": [{"layer": r.layer, "head": r.head, "role": r.role, "score": round(r.score, 3)} for r in roles],
            "lens": {"points": lens.points,
                     "top": [[self._token_text(i) for i in row] for row in top.tolist()],
                     "p": np.round(lens.top_probs[:, :, 0].numpy(), 4).tolist(),
                     "target_p": [[_finite(round(p, 4)) for p in row] for row in lens.target_prob.tolist()],
                     "target_rank": lens.target_rank.tolist()},
            "ablated": [list(h) for h in ablate],
        }

    def _token_text(self, i: int) -> str:
        """How token `i` is shown (`Tokenizer.id_to_token_text`), looked up once per id."""
        text = self._token_texts.get(i)
        if text is None:
            text = self._token_texts[i] = self.tokenizer.id_to_token_text(i)
        return text

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _last_logits(self, idx: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(idx, last_only=True)
        return logits[0, -1].float().cpu()  # [V]

    def _shaped(self, logits: torch.Tensor, controls: Controls) -> torch.Tensor:
        """The distribution the sampler draws from: temperature, then top-k and top-p; greedy is one-hot."""
        from minitx.generation.sampling import filter_logits

        if controls.temperature == 0:
            return torch.nn.functional.one_hot(logits.argmax(), logits.shape[-1]).float()
        return torch.softmax(filter_logits(logits / controls.temperature, controls.top_k, controls.top_p), dim=-1)

    def _distribution(self, intact: torch.Tensor, ablated: torch.Tensor | None, controls: Controls
                      ) -> dict[str, Any]:
        """The top tokens of the (ablated, when given) distribution, each with its intact probability beside."""
        base = self._shaped(intact, controls)
        raw = torch.softmax(intact, dim=-1)
        shown = self._shaped(ablated, controls) if ablated is not None else base
        probs, ids = shown.topk(min(TOP_TOKENS, shown.shape[-1]))
        top = []
        for p, i in zip(probs.tolist(), ids.tolist(), strict=True):
            if p == 0 and (ablated is None or base[i] == 0):  # filtered out by top-k / top-p: not worth a row
                continue
            entry = {"id": i, "token": self._token_text(i), "p": round(p, 5),
                     "p_raw": round(float(raw[i]), 5)}
            if ablated is not None:
                entry["p_intact"] = round(float(base[i]), 5)
            top.append(entry)
        answer: dict[str, Any] = {"top": top, "temperature": controls.temperature, "top_k": controls.top_k,
                                  "top_p": controls.top_p}
        if ablated is not None:
            answer["total_variation"] = round(0.5 * float((shown - base).abs().sum()), 5)
        return answer

    def roles_over_data(self) -> dict[str, Any]:
        """Each head's role over up to ROLE_WINDOWS validation windows (`minitx.inspect.over_data`), cached."""
        self._require(False, "roles over data")
        with self._cache_lock:
            if self._roles is None:
                self._roles = self._measure_roles()
            return self._roles

    def _measure_roles(self) -> dict[str, Any]:
        from minitx.evaluation.scoring import validation_ids
        from minitx.inspect.over_data import evenly_spaced_windows, roles_over_windows

        try:
            ids, _, source = validation_ids(self.run)
        except (UserError, OSError) as e:  # the corpus moved or changed: say so in the page
            return {"run": self.index, "heads": [], "windows": 0, "note": f"no validation text: {e}"}
        block = self.config.block_size
        n = min(ROLE_WINDOWS, len(ids) // block)
        if n < 1:
            return {"run": self.index, "heads": [], "windows": 0, "note": f"the {source} is shorter than one block"}
        windows = evenly_spaced_windows(ids, n, block)
        with self.lock:
            spreads = roles_over_windows(self.model, windows)
        heads = [{"layer": s.layer, "head": s.head, "role": s.role, "score": round(s.score, 3),
                  "holds": round(s.holds.get(s.role, 0.0), 3)} for s in spreads]
        note = f"{n} windows of {block} tokens of the {source}"
        return {"run": self.index, "heads": heads, "windows": n, "note": note}

    def patching(self, phenomenon: str) -> dict[str, Any]:
        """The patching grids of up to PATCH_PAIRS built-in minimal pairs of `phenomenon`, cached per phenomenon."""
        with self._cache_lock:
            if phenomenon not in self._patches:
                self._patches[phenomenon] = self._measure_patching(phenomenon)
            return self._patches[phenomenon]

    def _measure_patching(self, phenomenon: str) -> dict[str, Any]:
        from minitx.inspect.contrasts import phenomenon_contrasts, translation_contrasts
        from minitx.inspect.patching import patch

        make = translation_contrasts if self.is_pair else phenomenon_contrasts
        contrasts, skipped = make(self.tokenizer, phenomenon, PATCH_PAIRS, self.config.block_size, seed=0)
        if not contrasts:
            reasons = ", ".join(f"{why} ({count})" for why, count in skipped.most_common()) or "none drawn"
            raise UserError(f"no {phenomenon} pair fits this run: {reasons}")
        with self.lock:
            report = patch(self.model, contrasts, seed=0)
        first = contrasts[0]
        grids = [{"title": g.title, "rows": g.rows, "columns": g.columns,
                  "mean": [[_finite(round(float(v), 4)) for v in row] for row in g.mean],
                  "low": [[_finite(round(float(v), 4)) for v in row] for row in g.low],
                  "high": [[_finite(round(float(v), 4)) for v in row] for row in g.high]} for g in report.grids]
        return {"run": self.index, "phenomenon": phenomenon, "pairs": report.n_pairs, "grids": grids,
                "notes": report.notes, "example": {"clean": first.clean_text, "corrupt": first.corrupt_text,
                                                   "good": self.tokenizer.id_to_token_text(first.good),
                                                   "bad": self.tokenizer.id_to_token_text(first.bad)}}

    # ------------------------------------------------------------------------------------------ sampling
    def sample(self, text: str, controls: Controls, max_new_tokens: int, seed: int | None = None,
               ablate: Sequence[tuple[int, int]] = ()) -> Iterator[str]:
        """The continuation of `text`, piece by piece as each becomes final (ends at the next <|doc|>).

        The lock is taken per step, not for the whole sample, so the page's other views answer while it
        streams; the KV cache is this generator's own, and the ablated heads stay off for every step.
        """
        from minitx.generation.sampling import SlidingWindowDecoder, sample_next
        from minitx.generation.streaming import StopAndStream
        from minitx.text.special import DOC_TOKEN

        self._require(False, "sampling")
        controls.check()
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise UserError(f"ask for 1 to {MAX_NEW_TOKENS} new tokens, not {max_new_tokens}")
        ids, _ = self._ids(text)
        generator = torch.Generator(device=self._device())
        generator.manual_seed(seed) if seed is not None else generator.seed()
        pieces: list[str] = []
        follower = StopAndStream(self.tokenizer.decode, [DOC_TOKEN] if self.tokenizer.token_id(DOC_TOKEN) is not None
                                 else [], pieces.append)
        prompt = torch.tensor([ids], dtype=torch.long, device=self._device())
        decoder = SlidingWindowDecoder(self.model, prompt, max_new_tokens)

        def steps() -> Iterator[str]:  # the checks above ran at the call; the steps run as the page reads
            for _ in range(max_new_tokens):
                with self.lock, torch.inference_mode(), ExitStack() as stack:
                    self._ablated(stack, ablate)
                    token = sample_next(decoder.next_logits(), controls.temperature, controls.top_k,
                                        controls.top_p, generator)
                    decoder.append(token)
                ended = follower.add(int(token[0]))
                yield from pieces
                pieces.clear()
                if ended:
                    return
            follower.close()
            yield from pieces

        return steps()

    # ------------------------------------------------------------------------------------------ translation
    def translate(self, sentence: str) -> dict[str, Any]:
        """The model's translation of `sentence` and its cross-attention; for a sentence of the story grammar
        also the reference translation, its gold word links, each head's AER against them and the best head.

        With a reference, the attention is read on the reference (teacher forcing), so the gold links fit it.
        """
        from minitx.corpus.grammar import SentenceRejected
        from minitx.corpus.translation import translate as render
        from minitx.generation.translate import translate
        from minitx.inspect.alignment import alignment_report, capture_pair

        self._require(True, "translation")
        sentence = check_text(sentence, "the sentence").strip()
        if not sentence:
            raise UserError("the sentence is empty; type an English sentence to translate")
        with self.lock:
            translation = translate(self.model, self.tokenizer, [sentence])[0]
        try:
            pair = render(sentence)
            reference, gold = pair["target"], [tuple(link) for link in pair["alignment"]]
        except (SentenceRejected, ValueError, UserError):
            reference, gold = None, None
        answer: dict[str, Any] = {"run": self.index, "source": sentence, "translation": translation,
                                  "reference": reference, "gold": [list(link) for link in gold or []],
                                  "read_on": "reference" if reference else "translation", "attention": None}
        target = reference or translation
        if not target.strip():
            answer["note"] = "the model wrote nothing for this sentence, so there is no cross-attention to show"
            return answer
        with self.lock:
            capture = capture_pair(self.model, self.tokenizer, sentence, target)
        cross = np.stack(capture.weights["cross"])  # [L, H, T, S]
        answer["attention"] = {"cross": pack_weights(cross), "source_tokens": capture.source_tokens,
                               "written": capture.written, "source_words": capture.source_words,
                               "target_words": capture.target_words}
        if gold:
            report = alignment_report([capture], [gold], seed=0)
            best = report.best
            answer["alignment"] = {
                "heads": [{"layer": h.layer, "head": h.head, "aer": round(h.aer, 4)} for h in report.heads],
                "random_aer": round(report.random_aer, 4),
                "best": {"layer": best.layer, "head": best.head, "aer": round(best.aer, 4),
                         "links": [list(link) for link in capture.head_links(best.layer, best.head)]}}
        return answer


def load_sessions(run_dirs: Sequence[str | Path], device: str = "cpu") -> list[RunSession]:
    """One RunSession per run directory, in the order given (the page names a run by this index).

    A run is shown by its directory's name; where two share one, by its last two path parts ("story/run").
    """
    paths = [Path(run_dir).resolve() for run_dir in run_dirs]
    names = [p.name for p in paths]
    names = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [RunSession(run_dir, index, device, name) for index, (run_dir, name) in enumerate(zip(run_dirs, names,
                                                                                                  strict=True))]


def describe(run: Run) -> str:
    """One line about a run for the console: "story: gpt, 4 layers × 4 heads × 128 wide, block 128, pos rope"."""
    c = run.model_config
    return (f"{run.path.name}: {c.arch}, {c.n_layers} layers × {c.n_heads} heads × {c.dim} wide, "
            f"block {c.block_size}, pos {c.pos}")
