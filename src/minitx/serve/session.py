"""What the explorer page asks of one run: the one place that calls the library (the adapter).

The web app (`minitx.serve.app`) knows runs only as `RunSession`s, and every answer is a plain dict ready
for JSON. Each method is one thing the page shows:

    view(text, ...)        a decoder-only run: the text as tokens, the next-token distribution (temperature /
                           top-k / top-p), every head's attention, the logit lens -- with the heads asked for
                           switched off in all of them, and the intact distribution beside
    translate(sentence)    a run that reads a source: its translation, every attention map (cross-attention
                           against the gold links of a built-in sentence: each head's alignment error rate and
                           the best head), the logit lens of the decoder's stream given the source -- with
                           heads off, and the intact translation and token probabilities beside
    roles_over_data()      each head's role over validation windows (computed once, then cached)
    patching(phenomenon)   the activation-patching grids of built-in minimal pairs (cached per phenomenon)
    sample(text, ...)      a continuation, piece by piece (a generator, for the page's event stream)

Everything is read at the model's named hook points (docs/hooks.md). An attention map is any point named
`….hook_pattern` (its layer computes α only while a hook is set there, so a plain pass costs nothing
extra); the page lists them by their names without the suffix ("blocks.0.attn",
"decoder.blocks.1.cross_attn", "decoder.cross_attn"), found once at load by one tiny pass, so a new
architecture's maps are drawn without a line here. A head is switched off by a hook on its map's
`….hook_z` that zeroes its output before the output projection, for the view and for every sampled step.

The architecture is asked, never named (`registry.architecture(arch)`): `reads_source` picks the view
(`view` or `translate`). One model per run, and one lock per model: hooks live on the model while a pass
runs, so two requests never run it at the same time; sampling takes the lock per token, so the page's
other views answer while a sample streams. A pass that reads α runs under `torch.no_grad`, not
`inference_mode`: the attention layer reads α's version counter (to see whether a hook edited it),
which inference tensors do not have. Attention weights travel as bytes (α·255 rounded, base64): a
[L, H, T, T] grid of floats as JSON text would be ten times larger.
"""

from __future__ import annotations

import base64
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
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
#: Sentences the page offers on a run that translates: story sentences, so each has gold links.
EXAMPLE_SENTENCES = ("The big dog sees the red ball.", "Mia sees the red ball.", "The little cat runs to the old tree.")
#: The hook point suffixes of an attention map and of its heads' outputs.
PATTERN, HEAD_OUTPUT = ".hook_pattern", ".hook_z"

#: A head to switch off: (attention map name, head index), e.g. ("decoder.blocks.0.cross_attn", 1).
Head = tuple[str, int]


@dataclass(frozen=True)
class Controls:
    """How the next token is chosen: temperature 0 is greedy; top-k / top-p None keep every token."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def check(self) -> None:
        from minitx.generation.sampling import SamplingConfig

        SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)  # its UserErrors


@dataclass(frozen=True)
class AttentionMap:
    """One attention module, by its hook name without the suffix.

    `kind`: "cross" (queries from the target, keys from the source), "encoder" (the source's self-attention)
    or "self" (the stream's own masked self-attention); `heads`: how many; `ablatable`: it has a `hook_z`.

        >>> AttentionMap.named("decoder.blocks.1.cross_attn", 4, True).to_dict()["label"]
        'L1'
        >>> AttentionMap.named("decoder.cross_attn", 1, False).kind
        'cross'
    """

    name: str
    kind: str
    label: str
    heads: int
    ablatable: bool

    @classmethod
    def named(cls, name: str, heads: int, ablatable: bool) -> AttentionMap:
        last = name.rsplit(".", 1)[-1]
        kind = "cross" if "cross" in last else "encoder" if name.startswith("encoder.") else "self"
        layer = re.search(r"(?:^|\.)blocks\.(\d+)\.", name)
        return cls(name, kind, f"L{layer[1]}" if layer else name, heads, ablatable)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "label": self.label, "heads": self.heads,
                "ablatable": self.ablatable}


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


def zero_heads(heads: Sequence[int]) -> Callable[[torch.Tensor, str], torch.Tensor]:
    """A hook for a `hook_z` point (z [B, T, H, hd]: each head's output before W_O) that zeroes `heads`."""
    chosen = list(heads)

    def rewrite(z: torch.Tensor, _name: str) -> torch.Tensor:
        z = z.clone()
        z[:, :, chosen] = 0.0
        return z

    return rewrite


class _HookedSteps:
    """The model as `SlidingWindowDecoder` sees it, but every one-token step runs the forward (with the KV
    cache): `decode_next`, generation's flat step, has no hook points, so a head switched off would be on."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.config = model, model.config

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.model.parameters()

    def decode_plan(self) -> None:
        return None

    def decode_next(self, idx: torch.Tensor, cache: Any, _plan: None = None) -> torch.Tensor:
        logits, _ = self.model(idx, cache=cache, last_only=True)
        return logits[:, -1]


class RunSession:
    """One run loaded for the explorer: its model, tokenizer, architecture, a lock, and the answers worth keeping."""

    def __init__(self, run_dir: str | Path, index: int, device: str = "cpu", name: str | None = None) -> None:
        from minitx.model.registry import architecture
        from minitx.rundir import load_model

        self.path = Path(run_dir)
        self.index = index
        self.name = name or self.path.resolve().name
        self.model, self.run = load_model(run_dir, device=device)
        self.model.eval()
        self.tokenizer = self.run.tokenizer
        self.config = self.run.model_config
        self.architecture = architecture(self.config.arch)
        self.reads_source = self.architecture.reads_source
        self.lock = threading.Lock()  # one pass of this model at a time (hooks live on it)
        self._roles: dict[str, Any] | None = None
        self._patches: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()  # one computation of a cached answer at a time
        self._token_texts: dict[int, str] = {}
        self.maps = self._find_maps()
        self._by_name = {m.name: m for m in self.maps}
        self.has_lens = self._has_block_stacks()

    def _find_maps(self) -> list[AttentionMap]:
        """Every attention map in forward order, with its head count: one pass over one token (and a one-token
        source), keeping the `hook_pattern` points."""
        from minitx.model.inputs import end_token

        first = end_token(self.tokenizer) if self.reads_source else 0
        one = torch.tensor([[first]], dtype=torch.long, device=self._device())
        inputs = (one, one) if self.reads_source else (one,)
        with self.lock, torch.no_grad():
            _, cache = self.model.run_with_cache(*inputs, names=lambda name: name.endswith(PATTERN))
        points = self.model.hook_points()
        return [AttentionMap.named(name.removesuffix(PATTERN), pattern.shape[1],
                                   name.removesuffix(PATTERN) + HEAD_OUTPUT in points)
                for name, pattern in cache.items()]

    def _has_block_stacks(self) -> bool:
        """Whether the model's stream is a stack of residual blocks (the logit lens reads its points)."""
        try:
            return bool(self.model.block_stacks())
        except NotImplementedError:
            return False

    # ------------------------------------------------------------------------------------------ about
    def info(self) -> dict[str, Any]:
        """What the page needs to lay the run out: its name, architecture and shape, its attention maps, and
        what it can show."""
        from minitx.inspect.contrasts import PATCHABLE, TRANSLATION_PATCHABLE

        c = self.config
        return {"index": self.index, "name": self.name, "arch": c.arch, "reads_source": self.reads_source,
                "noun": self.architecture.noun, "shape": self.architecture.shape(c),
                "n_layers": c.n_layers, "n_heads": c.n_heads, "dim": c.dim, "block_size": c.block_size,
                "pos": c.pos, "vocab_size": c.vocab_size, "maps": [m.to_dict() for m in self.maps],
                "lens": self.has_lens,
                "phenomena": list(TRANSLATION_PATCHABLE if self.reads_source else PATCHABLE),
                "examples": list(EXAMPLE_SENTENCES) if self.reads_source else [],
                "max_text_chars": MAX_TEXT_CHARS, "max_new_tokens": MAX_NEW_TOKENS}

    def _require(self, reads_source: bool, what: str) -> None:
        if self.reads_source != reads_source:
            raise UserError(f"run {self.index} ({self.name}) is {self.architecture.noun} run: {what} does not "
                            "apply to it")

    def check_heads(self, heads: Sequence[Head]) -> list[Head]:
        """`heads` without repeats, each a head of an attention map that can be switched off; else a UserError."""
        for name, head in heads:
            found = self._by_name.get(name)
            if found is None or not found.ablatable:
                names = ", ".join(m.name for m in self.maps if m.ablatable) or "none"
                raise UserError(f"run {self.index} has no attention {name[:60]!r} whose heads can be switched off; "
                                f"it has: {names}")
            if not 0 <= head < found.heads:
                raise UserError(f"{name} has heads 0..{found.heads - 1}; there is no head {head}")
        return list(dict.fromkeys(heads))

    def _ablation(self, heads: Sequence[Head]) -> list[tuple[str, Callable[[torch.Tensor, str], torch.Tensor]]]:
        """The hooks that switch `heads` off: one per attention map, on its `hook_z`."""
        by_map: dict[str, list[int]] = {}
        for name, head in heads:
            by_map.setdefault(name, []).append(head)
        return [(name + HEAD_OUTPUT, zero_heads(chosen)) for name, chosen in by_map.items()]

    def _hooked(self, hooks: Sequence[tuple[str, Callable[[torch.Tensor, str], torch.Tensor]]]
                ) -> AbstractContextManager[None]:
        """`model.hooks(hooks)`, or nothing at all when there are none (a sampled step is a few ms)."""
        return self.model.hooks(hooks) if hooks else nullcontext()

    def _ids(self, text: str) -> tuple[list[int], bool]:
        """The text's ids as a document starts (<|doc|> first), its last block_size of them; and whether cut."""
        from minitx.inspect.capture import prompt_ids

        ids = prompt_ids(self.tokenizer, check_text(text))
        if not ids:  # a tokenizer without <|doc|>, and no text
            raise UserError("the text is empty; type some")
        block = self.config.block_size
        return ids[-block:], len(ids) > block

    def _token_text(self, i: int) -> str:
        """How token `i` is shown (`Tokenizer.id_to_token_text`), looked up once per id."""
        text = self._token_texts.get(i)
        if text is None:
            text = self._token_texts[i] = self.tokenizer.id_to_token_text(i)
        return text

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _lens(self, report: Any) -> dict[str, Any]:
        """A `LensReport` as the page draws it: the top token and its probability at every point and position,
        and the probability and rank of the token that follows."""
        top = report.top_ids[:, :, 0]  # [P, T]
        return {"points": report.points,
                "top": [[self._token_text(i) for i in row] for row in top.tolist()],
                "p": np.round(report.top_probs[:, :, 0].numpy(), 4).tolist(),
                "target_p": [[_finite(round(p, 4)) for p in row] for row in report.target_prob.tolist()],
                "target_rank": report.target_rank.tolist()}

    # ------------------------------------------------------------------------------------------ decoder-only
    def view(self, text: str, controls: Controls, ablate: Sequence[Head] = ()) -> dict[str, Any]:
        """Tokens, next-token distribution, every head's attention and role on this text, and the logit lens,
        with the heads in `ablate` off in all of them (and the intact distribution beside): everything the page
        redraws on a keystroke, in one lock."""
        from minitx.inspect.capture import AttentionCapture
        from minitx.inspect.lens import logit_lens
        from minitx.inspect.roles import head_roles

        self._require(False, "the decoder-only view")
        controls.check()
        heads = self.check_heads(ablate)
        ids, cut = self._ids(text)
        tokens = [self._token_text(i) for i in ids]
        idx = torch.tensor([ids], dtype=torch.long, device=self._device())
        names = [m.name + PATTERN for m in self.maps]
        with self.lock, torch.no_grad():
            with self._hooked(self._ablation(heads)):
                # One pass: the logits and every map's α (computed because a hook reads it).
                logits, cache = self.model.run_with_cache(idx, names=names)
                lens = logit_lens(self.model, ids, tokens)
            shown = logits[0, -1].float().cpu()  # [V]
            intact = self._last_logits(idx) if heads else shown
        weights = torch.stack([cache[name][0] for name in names]).float().cpu()  # L x [H, T, T] -> [L, H, T, T]
        capture = AttentionCapture(tokens, ids, weights, self.config.pos)
        return {
            "run": self.index, "tokens": tokens, "token_ids": ids, "cut": cut, "block_size": self.config.block_size,
            "next": self._distribution(intact, shown if heads else None, controls),
            "maps": [m.name for m in self.maps],
            "attention": pack_weights(capture.weights),
            "roles": [{"layer": r.layer, "head": r.head, "role": r.role, "score": round(r.score, 3)}
                      for r in head_roles(capture)],
            "lens": self._lens(lens),
            "ablated": [list(h) for h in heads],
        }

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
        raw = torch.softmax(ablated if ablated is not None else intact, dim=-1)
        shown = self._shaped(ablated, controls) if ablated is not None else base
        probs, ids = shown.topk(min(TOP_TOKENS, shown.shape[-1]))
        top = []
        for p, i in zip(probs.tolist(), ids.tolist(), strict=True):
            if p == 0 and (ablated is None or base[i] == 0):  # filtered out by top-k / top-p: not worth a row
                continue
            entry = {"id": i, "token": self._token_text(i), "p": round(p, 5), "p_raw": round(float(raw[i]), 5)}
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

        make = translation_contrasts if self.reads_source else phenomenon_contrasts
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
               ablate: Sequence[Head] = ()) -> Iterator[str]:
        """The continuation of `text`, piece by piece as each becomes final (ends at the next <|doc|>).

        The lock is taken per step, not for the whole sample, so the page's other views answer while it
        streams; the KV cache is this generator's own. With heads off, every step runs the forward (which has
        the hook points) instead of the flat decode step, and the heads stay off for every step.
        """
        from minitx.generation.sampling import SlidingWindowDecoder, sample_next
        from minitx.generation.streaming import StopAndStream
        from minitx.text.special import DOC_TOKEN

        self._require(False, "sampling")
        controls.check()
        heads = self.check_heads(ablate)
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise UserError(f"ask for 1 to {MAX_NEW_TOKENS} new tokens, not {max_new_tokens}")
        ids, _ = self._ids(text)
        generator = torch.Generator(device=self._device())
        generator.manual_seed(seed) if seed is not None else generator.seed()
        pieces: list[str] = []
        follower = StopAndStream(self.tokenizer.decode, [DOC_TOKEN] if self.tokenizer.token_id(DOC_TOKEN) is not None
                                 else [], pieces.append)
        prompt = torch.tensor([ids], dtype=torch.long, device=self._device())
        hooks = self._ablation(heads)
        decoder = SlidingWindowDecoder(_HookedSteps(self.model) if hooks else self.model, prompt, max_new_tokens)

        def steps() -> Iterator[str]:  # the checks above ran at the call; the steps run as the page reads
            for _ in range(max_new_tokens):
                with self.lock, torch.inference_mode(), self._hooked(hooks):
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
    def translate(self, sentence: str, ablate: Sequence[Head] = ()) -> dict[str, Any]:
        """The model's translation of `sentence`, every attention map and the logit lens of its decoder; for a
        sentence of the story grammar also the reference translation, its gold word links, each cross-attention
        head's AER against them and the best head.

        The maps and the lens are read with teacher forcing on the reference when there is one (so the gold
        links fit), else on the model's own translation. With heads in `ablate` off, everything is the ablated
        model's, and the intact translation and the intact probability of each written token are beside.
        """
        from minitx.corpus.grammar import SentenceRejected, parse_sentence
        from minitx.corpus.translation import translate as render
        from minitx.generation.translate import greedy, translate
        from minitx.inspect.alignment import alignment_report, capture_pair
        from minitx.inspect.lens import logit_lens
        from minitx.model.inputs import encode_source, end_token

        self._require(True, "translation")
        heads = self.check_heads(ablate)
        sentence = check_text(sentence, "the sentence").strip()
        if not sentence:
            raise UserError("the sentence is empty; type an English sentence to translate")
        source_ids = encode_source(self.tokenizer, sentence, self.config.block_size, name="the sentence")
        boundary = end_token(self.tokenizer)
        hooks = self._ablation(heads)
        with self.lock, torch.inference_mode():
            intact = translate(self.model, self.tokenizer, [sentence])[0]
            translation = intact
            if hooks:  # the flat decode step has no hook points: the whole decoder runs at every step
                with self.model.hooks(hooks):
                    written = greedy(self.model, [source_ids[:-1]], boundary, use_cache=False)[0]
                translation = self.tokenizer.decode(written).strip()
        try:
            parse_sentence(sentence)  # first: the renderer lets some of lark's parse errors through
            pair = render(sentence)
            reference, gold = pair["target"], [tuple(link) for link in pair["alignment"]]
        except (SentenceRejected, ValueError, UserError):
            reference, gold = None, None
        answer: dict[str, Any] = {"run": self.index, "source": sentence, "translation": translation,
                                  "reference": reference, "gold": [list(link) for link in gold or []],
                                  "read_on": "reference" if reference else "translation", "attention": None,
                                  "lens": None, "ablated": [list(h) for h in heads]}
        if hooks:
            answer["translation_intact"] = intact
        target = reference or translation
        if not target.strip():
            answer["note"] = "the model wrote nothing for this sentence, so there is no cross-attention to show"
            return answer
        with self.lock, torch.no_grad():
            with self._hooked(hooks):
                capture = capture_pair(self.model, self.tokenizer, sentence, target)
                decoder_in = [boundary, *self.tokenizer.encode(target.strip())]
                probs = self._written_probs(source_ids, decoder_in)
                lens = (logit_lens(self.model, decoder_in, capture.target_tokens, source=source_ids,
                                   following=boundary) if self.has_lens else None)
            intact_probs = self._written_probs(source_ids, decoder_in) if hooks else None
        answer["attention"] = self._pair_attention(capture)
        answer["written_p"] = [round(p, 5) for p in probs]
        if intact_probs is not None:
            answer["written_p_intact"] = [round(p, 5) for p in intact_probs]
        answer["lens"] = self._lens(lens) if lens is not None else None
        if gold:
            cross = [m.name for m in self.maps if m.kind == "cross"]
            report = alignment_report([capture], [gold], seed=0)
            best = report.best
            answer["alignment"] = {
                "heads": [{"map": cross[h.layer], "layer": h.layer, "head": h.head, "aer": round(h.aer, 4)}
                          for h in report.heads],
                "random_aer": round(report.random_aer, 4),
                "best": {"map": cross[best.layer], "layer": best.layer, "head": best.head, "aer": round(best.aer, 4),
                         "links": [list(link) for link in capture.head_links(best.layer, best.head)]}}
        return answer

    def _written_probs(self, source_ids: list[int], decoder_in: list[int]) -> list[float]:
        """With teacher forcing, the probability the decoder gives at each position to the token written there
        (the next one of `decoder_in`, then the end token)."""
        from minitx.inspect.residual import run_model

        idx = torch.tensor([decoder_in], dtype=torch.long)
        probs = run_model(self.model, idx, [source_ids])[0].float().softmax(dim=-1).cpu()  # [T, V]
        written = [*decoder_in[1:], decoder_in[0]]
        return probs[torch.arange(len(written)), torch.tensor(written)].tolist()

    def _pair_attention(self, capture: Any) -> dict[str, Any]:
        """Every map of a pair, grouped by kind ([N, H, Tq, Tk] each, in forward order, named), and the tokens."""
        kinds = {"cross": "cross", "decoder": "self", "encoder": "encoder"}  # PairCapture's kinds -> the maps'
        groups = {}
        for captured, kind in kinds.items():
            layers = capture.weights.get(captured) or []
            if layers:
                groups[kind] = {"maps": [m.name for m in self.maps if m.kind == kind],
                                "weights": pack_weights(np.stack(layers))}
        return {"groups": groups, "cross": groups["cross"]["weights"] if "cross" in groups else None,
                "source_tokens": capture.source_tokens, "target_tokens": capture.target_tokens,
                "written": capture.written, "source_words": capture.source_words,
                "target_words": capture.target_words}


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
    from minitx.model.registry import architecture

    c = run.model_config
    return f"{run.path.name}: {c.arch}, {architecture(c.arch).shape(c)}"
