"""What the API's verbs return: small typed objects that print briefly, save as JSON and draw in a notebook.

Every result has
    repr(result)          one or two lines of plain text, the headline figure
    result.to_dict()      plain data; for the inspect verbs the same document the command writes with --json
    result.to_json()      that document as JSON text
    result._repr_html_()  the picture a notebook shows: the same heatmaps as the HTML page, drawn without script

The documents are built by the same functions the commands use (`minitx.inspect.views.document`,
`.circuits_document`), so `run.lens(text).to_dict()` is what `minitx inspect-lens RUN --prompt TEXT
--json FILE` writes; docs/inspect-json.md describes the fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minitx.api import html

if TYPE_CHECKING:
    import torch

    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.attribution import AttributionReport
    from minitx.inspect.capture import AttentionCapture
    from minitx.inspect.contrasts import Contrast
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.lens import LensReport
    from minitx.inspect.over_data import RoleSpread
    from minitx.inspect.patching import PatchReport
    from minitx.inspect.roles import HeadRole
    from minitx.text.tokenizer import Tokenizer


class Result:
    """The shared part: `to_json` is `to_dict` as indented JSON text."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON text (the format of the command's --json file)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass(repr=False)
class Generation(Result):
    """Samples continuing `prompt`: `texts[i]` is sample i's new text (without the prompt)."""

    prompt: str
    texts: list[str]
    token_ids: list[list[int]]
    seed: int
    seconds: float
    steps: int = 0  # decoding steps the batch ran (the samples' longest)

    @property
    def text(self) -> str:
        """The first sample, prompt included: what `minitx generate` prints."""
        return self.prompt + self.texts[0]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "seed": self.seed, "samples": list(self.texts),
                "tokens": [len(ids) for ids in self.token_ids]}

    def __repr__(self) -> str:
        more = f" (+{len(self.texts) - 1} more samples)" if len(self.texts) > 1 else ""
        return f"Generation(seed {self.seed}{more}): {self.text!r}"

    def _repr_html_(self) -> str:
        samples = "".join(
            f'<pre class="minitx-sample" style="white-space:pre-wrap;margin:4px 0;padding:4px;border-left:3px solid '
            f'#08308c"><b>{html.escape(self.prompt)}</b>{html.escape(text)}</pre>' for text in self.texts)
        return html.title(f"{len(self.texts)} sample{'s' if len(self.texts) > 1 else ''} (seed {self.seed})") + samples


@dataclass(repr=False)
class Translations(Result):
    """Each source sentence and its translation, in order; iterating gives the translations."""

    sources: list[str]
    outputs: list[str]
    beam: int

    def __iter__(self):
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def __getitem__(self, i: int) -> str:
        return self.outputs[i]

    def to_dict(self) -> dict[str, Any]:
        return {"beam": self.beam, "translations": [{"source": s, "output": o}
                                                    for s, o in zip(self.sources, self.outputs, strict=True)]}

    def __repr__(self) -> str:
        lines = [f"{s!r} -> {o!r}" for s, o in zip(self.sources, self.outputs, strict=True)]
        return f"Translations({'greedy' if self.beam == 1 else f'beam {self.beam}'}):\n  " + "\n  ".join(lines)

    def _repr_html_(self) -> str:
        return html.title(f"{len(self)} translation{'s' if len(self) != 1 else ''} "
                          f"({'greedy' if self.beam == 1 else f'beam {self.beam}'})") + html.key_values(
            list(zip(self.sources, self.outputs, strict=True)), header=("source", "translation"))


@dataclass(repr=False)
class Evaluation(Result):
    """What `minitx eval RUN --json` prints: loss, perplexity, bits per byte (and what else was asked for).

    On an encoder-decoder run: the target loss, exact match, chrF, BLEU and grammaticality of the
    translations (`data` holds the whole document).

    `reports` holds the measurements themselves, for printing them as `minitx eval` does: "score"
    (evaluation.scoring.Score), and as asked "grammar", "minimal_pairs", "order_test", "extrapolation",
    or an encoder-decoder's "translation" (evaluation.translation_eval.TranslationEval)."""

    data: dict[str, Any]
    reports: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> float:
        """Mean next-token loss in nats (an encoder-decoder's: of the target, with teacher forcing)."""
        return self.data["loss"]["loss"] if isinstance(self.data.get("loss"), dict) else self.data["loss"]

    @property
    def bits_per_byte(self) -> float:
        found = self.data["loss"] if isinstance(self.data.get("loss"), dict) else self.data
        return found["bits_per_byte"]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def rows(self) -> list[tuple[str, str]]:
        """The headline figures as (name, value) text."""
        rows = [("source", str(self.data.get("source"))), ("loss (nats/token)", f"{self.loss:.4f}"),
                ("perplexity", f"{math.exp(self.loss):.3f}"), ("bits per byte", f"{self.bits_per_byte:.4f}")]
        if "overall" in self.data:
            overall = self.data["overall"]
            rows += [("exact match", f"{overall['exact_match']['share']:.1%}"),
                     ("chrF", f"{overall['chrf']['score']:.1f}"), ("BLEU", f"{overall['bleu']['score']:.1f}")]
        if "grammar" in self.data:
            rows.append(("grammatical sentences", f"{self.data['grammar'].get('share', float('nan')):.1%}"))
        return rows

    def __repr__(self) -> str:
        return "Evaluation(" + ", ".join(f"{k} {v}" for k, v in self.rows()[1:4]) + ")"

    def _repr_html_(self) -> str:
        return html.key_values(self.rows())


@dataclass(repr=False)
class AttentionResult(Result):
    """Every layer's and head's attention α for one text, the tokens, and each head's role.

    `weights[l, h, t, t']` is how much query t of head h in layer l takes from key t' ([L, H, T, T]).
    `generated`: the ids sampled after the prompt (`generate=N`), read too. The measurements over
    data (`run.roles_over`, `run.induction`, `run.ablate`) join the document when set here
    (`dataclasses.replace(result, over=..., n_windows=..., induction=..., ablation=...)`), as
    `inspect-attention --over N --induction --ablate --json` writes them.
    """

    capture: AttentionCapture
    roles: list[HeadRole]
    run: str
    prompt: str | None
    generated: list[int] = field(default_factory=list)
    over: list[RoleSpread] | None = None
    n_windows: int = 0
    induction: InductionReport | None = None
    ablation: AblationReport | None = None

    @property
    def tokens(self) -> list[str]:
        return self.capture.tokens

    @property
    def weights(self) -> torch.Tensor:
        return self.capture.weights

    def head(self, layer: int, head: int) -> torch.Tensor:
        """One head's pattern [T, T]."""
        from minitx.inspect.capture import check_head

        check_head(self.capture, layer, head)
        return self.capture.weights[layer, head]

    def role(self, layer: int, head: int) -> HeadRole:
        return next(r for r in self.roles if (r.layer, r.head) == (layer, head))

    def to_dict(self) -> dict[str, Any]:
        from minitx.inspect.views.document import attention_document

        return attention_document(self.capture, run=self.run, prompt=self.prompt, generated=len(self.generated),
                                  over=self.over, n_windows=self.n_windows, induction=self.induction,
                                  ablation=self.ablation)

    def __repr__(self) -> str:
        from minitx.inspect.roles import most_telling_head, role_label

        best = most_telling_head(self.roles)
        return (f"AttentionResult({self.capture.n_layers} layers × {self.capture.n_heads} heads over "
                f"{self.capture.n_tokens} tokens; most telling: layer {best.layer} head {best.head}, "
                f"{role_label(best.role, best.score)})")

    def _repr_html_(self) -> str:
        from minitx.inspect.roles import role_label

        captions = {(r.layer, r.head): role_label(r.role, r.score) for r in self.roles}
        return (html.title(f"attention: {self.capture.n_layers} layers × {self.capture.n_heads} heads, "
                           f"{self.capture.n_tokens} tokens ({self.capture.pos} positions)")
                + html.token_line(self.tokens) + html.head_grid(self.capture.weights, self.tokens, captions))


@dataclass(repr=False)
class PairAttentionResult(Result):
    """An encoder-decoder's three attentions for one pair (encoder, decoder, cross), and how its cross-attention
    heads align source and target words when gold links are known (`alignment`, else None).

    `shown` is the (layer, head) whose links the document lists (the best aligning head, else the last
    layer's first); `over` every head's alignment over held-out pairs (`run.alignment_over(n)`) when set."""

    capture: Any  # inspect.alignment.PairCapture
    run: str
    target_from: str
    gold: list | None
    alignment: Any  # inspect.alignment.AlignmentReport | None
    shown: tuple[int, int]
    over: Any = None  # inspect.alignment.AlignmentReport | None

    @property
    def weights(self) -> dict[str, list]:
        """kind ("encoder", "decoder", "cross") -> per layer [H, Tq, Tk]."""
        return self.capture.weights

    def to_dict(self) -> dict[str, Any]:
        links = self.capture.head_links(*self.shown)
        gold = [list(link) for link in self.gold] if self.gold is not None else None
        return {"run": self.run, "target_from": self.target_from, "pair": self.capture.to_dict(), "gold": gold,
                "alignment": self.alignment.to_dict() if self.alignment is not None else None,
                "over": self.over.to_dict() if self.over is not None else None,
                "shown": {"layer": self.shown[0], "head": self.shown[1], "links": [list(link) for link in links]}}

    def __repr__(self) -> str:
        best = "" if self.alignment is None else f"; best aligning head L{self.alignment.best.layer} " \
                                                 f"H{self.alignment.best.head}"
        return f"PairAttentionResult({self.capture.source!r} -> {self.capture.target!r}{best})"

    def _repr_html_(self) -> str:
        parts = [html.title(f"source: {self.capture.source}"), html.title(f"target ({self.target_from}): "
                                                                            f"{self.capture.target}")]
        names = {"encoder": ("enc L", self.capture.source_tokens, self.capture.source_tokens),
                 "decoder": ("dec L", self.capture.target_tokens, self.capture.target_tokens),
                 "cross": ("cross L", self.capture.target_tokens, self.capture.source_tokens)}
        for kind, (prefix, queries, keys) in names.items():
            parts.append(html.title(f"{kind} attention") + html.note(f"queries (down): {' '.join(queries)}")
                         + html.note(f"keys (across): {' '.join(keys)}"))
            parts.append(html.head_grid(self.capture.weights[kind], keys, {}, name=prefix))
        return "".join(parts)


@dataclass(repr=False)
class AttributionResult(Result):
    """Direct logit attribution of logit[good] − logit[bad] at the last position: every part's share (they sum to
    `total`). `to_dict` is the "attribution" section of `inspect-lens --attribute GOOD BAD --json`."""

    report: AttributionReport
    tokenizer: Tokenizer = field(repr=False)

    @property
    def total(self) -> float:
        return self.report.total

    def to_dict(self) -> dict[str, Any]:
        from minitx.inspect.views.circuits_document import lens_document

        return _attribution_section(self.report, self.tokenizer, lens_document)

    def __repr__(self) -> str:
        good, bad = (self.tokenizer.id_to_token_text(i) for i in (self.report.good, self.report.bad))
        top = ", ".join(f"{p.name} {p.value:+.2f}" for p in self.report.top(3))
        return f"AttributionResult(logit[{good!r}] − logit[{bad!r}] = {self.total:+.3f}; largest: {top})"

    def _repr_html_(self) -> str:
        good, bad = (self.tokenizer.id_to_token_text(i) for i in (self.report.good, self.report.bad))
        return (html.title(f"direct logit attribution: logit[{good!r}] − logit[{bad!r}] = {self.total:+.3f}")
                + html.bars([(p.name, p.value) for p in self.report.parts])
                + html.note("each part's direct share through ln_f (σ frozen) and the output layer; they sum to "
                            "the total"))


def _attribution_section(report: AttributionReport, tokenizer: Tokenizer, lens_document: Any) -> dict[str, Any]:
    """The "attribution" object of the lens document, built by the document's own code."""
    import torch

    from minitx.inspect.lens import LensReport

    empty = LensReport([], [], [], [], torch.zeros(0, 0, 1, dtype=torch.long), torch.zeros(0, 0, 1),
                       torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long))
    return lens_document(empty, tokenizer, run="", prompt=None, attribution=report)["attribution"]


@dataclass(repr=False)
class LensResult(Result):
    """The logit lens: what the residual stream predicts after the embedding and after every block, at every
    position (top tokens, and the probability and rank of the target). `attribution` when asked for.

    On an encoder-decoder run `source` is the sentence read and `prompt` the translation so far;
    `read_from` says where that came from when it was not given (the corpus's rendering or the model's)."""

    report: LensReport
    tokenizer: Tokenizer = field(repr=False)
    run: str
    prompt: str | None
    source: str | None = None
    attribution: AttributionResult | None = None
    read_from: str | None = None

    @property
    def tokens(self) -> list[str]:
        return self.report.tokens

    @property
    def points(self) -> list[str]:
        return self.report.points

    def to_dict(self) -> dict[str, Any]:
        from minitx.inspect.views.circuits_document import lens_document

        return lens_document(self.report, self.tokenizer, run=self.run, prompt=self.prompt,
                             attribution=None if self.attribution is None else self.attribution.report,
                             source=self.source)

    def __repr__(self) -> str:
        """The last position's top token at every point: where the prediction appears."""
        last = len(self.report.tokens) - 1
        tops = ", ".join(f"{name}: {self.tokenizer.id_to_token_text(int(self.report.top_ids[p, last, 0]))!r}"
                         f" {float(self.report.top_probs[p, last, 0]):.2f}" for p, name in enumerate(self.points))
        return (f"LensResult({len(self.points)} points × {len(self.tokens)} tokens; after "
                f"{self.tokens[-1]!r}: {tops})")

    def _repr_html_(self) -> str:
        from minitx.inspect.views.html import lens_section

        picture = html.heat_table(lens_section(self.report, self.tokenizer))
        return picture + (self.attribution._repr_html_() if self.attribution is not None else "")


@dataclass(repr=False)
class PatchResult(Result):
    """Activation patching: per place, the share of the clean answer that putting back the clean activation
    recovers on the corrupt run (`report.grids`), over the `contrasts`."""

    report: PatchReport
    contrasts: list[Contrast]
    tokenizer: Tokenizer = field(repr=False)
    run: str
    phenomenon: str | None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def grids(self) -> list:
        return self.report.grids

    def to_dict(self) -> dict[str, Any]:
        from minitx.inspect.views.circuits_document import patch_document

        return patch_document(self.report, self.contrasts, self.tokenizer, run=self.run, phenomenon=self.phenomenon,
                              skipped=self.skipped)

    def __repr__(self) -> str:
        from minitx.inspect.views.patching import strongest

        lines = [f"PatchResult({self.report.n_pairs} pairs, Δ clean {self.report.clean.mean():+.2f}, "
                 f"Δ corrupt {self.report.corrupt.mean():+.2f})"]
        for grid in self.report.grids:
            best = ", ".join(f"{row} {col} {value:.2f}" for row, col, value in strongest(grid))
            lines.append(f"  strongest {grid.title}: {best}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from minitx.inspect.views.html import patch_sections

        first = self.contrasts[0]
        good, bad = (self.tokenizer.id_to_token_text(i) for i in (first.good, first.bad))
        intro = html.note(f"{self.report.n_pairs} pairs, e.g. clean {first.clean_text!r} → {good!r}, corrupt "
                          f"{first.corrupt_text!r} → {bad!r}")
        notes = "".join(html.note(f"note: {n}") for n in self.report.notes)
        return intro + "".join(html.heat_table(t) for t in patch_sections(self.report)) + notes


@dataclass(repr=False)
class CacheResult(Result):
    """One forward with every named activation kept: `cache[name]` is a tensor (hook names as TransformerLens's:
    "hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern", ...)."""

    tokens: list[str]
    token_ids: list[int]
    logits: torch.Tensor | None
    cache: dict[str, torch.Tensor]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.cache[name]

    def __contains__(self, name: str) -> bool:
        return name in self.cache

    def keys(self) -> list[str]:
        return list(self.cache)

    def to_dict(self) -> dict[str, Any]:
        """The names and shapes of what was kept (the tensors themselves are in `cache`)."""
        return {"tokens": self.tokens, "ids": self.token_ids,
                "shapes": {name: list(tensor.shape) for name, tensor in self.cache.items()}}

    def __repr__(self) -> str:
        return f"CacheResult({len(self.cache)} activations over {len(self.tokens)} tokens)"

    def _repr_html_(self) -> str:
        return html.token_line(self.tokens) + html.key_values(
            [(name, " × ".join(map(str, tensor.shape))) for name, tensor in self.cache.items()])
