"""Do more attention heads help with longer-range dependencies? (note 000, point 4)

The note says multiple heads "facilitate longer-term memory and can learn longer, more complex sequences".
Vaswani et al. 2017 (Table 3 A) found one head 0.9 BLEU worse at equal compute and too many heads worse too;
Michel et al. 2019 pruned most heads at test time, cross-attention least. Here, at the same width (so the
same parameters: splitting a width into heads changes no weight count), one model per head count × seed:

    lm-h{H}   a GPT on the built-in stories: validation loss, minimal pairs by phenomenon -- agreement with no
              clause between subject and verb (agreement_local) against agreement across a relative clause
              (agreement_far), and by distance in words -- and the grammaticality of sampled stories
    mt-h{H}   an encoder-decoder on the built-in pairs: exact match, chrF, the best cross-attention head's AER,
              and Michel et al.'s pruning curve per attention kind (encoder self, decoder self, cross): heads
              removed one at a time, least important first (importance: the loss increase when that head alone
              is zeroed at `hook_z`), the held-out target loss after each removal

    DIR/experiment.json   DIR/corpus.txt   DIR/tokenizer.json (stories and pairs)   DIR/runs/…   DIR/report.*
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minitx.config import PRESETS
from minitx.errors import UserError
from minitx.experiments.engine import Experiment, Observer, RunSpec, Shared, by_variant, shared_tokenizer, summarise
from minitx.fileio import atomic_write_text

#: Sized for about 25 minutes on 2 cores: 4 head counts x 2 seeds of a 96-wide GPT (500 steps, AdamW: the 8 LM runs
#: took ~4 minutes) and of the encoder-decoder at the "translate" preset's shape and recipe (1200 steps of 64 pairs,
#: Muon; ~2.5 minutes a run). 500 AdamW steps of 32 pairs left every encoder-decoder at 0-0.5% exact match.
DEFAULT_LM: dict[str, Any] = {"arch": "gpt", "n_layers": 3, "dim": 96, "block_size": 64, "pos": "rope"}
_TRANSLATE = PRESETS["translate"]
DEFAULT_MT: dict[str, Any] = {**{k: v for k, v in _TRANSLATE["model"].items() if k not in ("vocab_size", "n_heads")},
                              **_TRANSLATE["train"], "eval_batches": 5, "save_every": 600}
DEFAULT_TRAIN: dict[str, Any] = {"steps": 500, "batch_size": 32, "lr": 3e-3, "min_lr": 3e-4, "warmup": 50,
                                 "eval_every": 100, "eval_batches": 5, "save_every": 250, "optimizer": "adamw"}
ATTENTION_KINDS = {"encoder self": "encoder.blocks.{i}.attn.hook_z", "decoder self": "decoder.blocks.{i}.attn.hook_z",
                   "cross": "decoder.blocks.{i}.cross_attn.hook_z"}


@dataclass
class HeadsExperiment(Experiment):
    """Everything that decides the numbers; stored in DIR/experiment.json."""

    SELECTION = ("heads", "seeds", "tasks")

    heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    tasks: list[str] = field(default_factory=lambda: ["lm", "mt"])
    seeds: int = 2
    lm: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LM))  # the LM's shape (and recipe overrides)
    mt: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MT))  # the translator's shape and recipe
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN))
    vocab_size: int = 1024
    corpus_bytes: int = 1_000_000
    pairs: int = 600  # minimal pairs per LM run
    stories: int = 30  # sampled stories per LM run
    test_pairs: int = 200  # held-out translation pairs per MT run
    align_pairs: int = 50
    prune_pairs: int = 100  # held-out pairs the pruning curve's loss is measured on

    def validate(self) -> None:
        for task in self.tasks:
            if task not in ("lm", "mt"):
                raise UserError(f"--tasks: {task!r} is not a task; choose lm, mt or both")
        for h in self.heads:
            for shape in ([self.lm] if "lm" in self.tasks else []) + ([self.mt] if "mt" in self.tasks else []):
                if h < 1 or shape["dim"] % h or (shape["dim"] // h) % 2:
                    raise UserError(f"--heads {h}: the width {shape['dim']} must split into {h} heads of an even "
                                    "size (RoPE turns pairs of dimensions)")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {self.seeds}")

    def variants(self) -> list[tuple[str, str, int]]:
        return [(f"{task}-h{h}", task, h) for task in self.tasks for h in self.heads]

    def runs(self) -> list[RunSpec]:
        return [RunSpec(name, seed, f"{name}-seed{seed}", {**(self.lm if task == "lm" else self.mt), "n_heads": h})
                for seed in range(self.seeds) for name, task, h in self.variants()]

    def files(self, spec: RunSpec, shared: Shared) -> list[Path]:
        return shared.files if spec.variant.startswith("lm-") else []  # the encoder-decoder: the built-in pairs

    def prepare(self, out: Path, observer: Observer) -> Shared:
        from minitx.evaluation.translation_eval import builtin_pairs_once

        corpus = out / "corpus.txt"
        if not corpus.is_file():
            from minitx.corpus.generate import generate_corpus

            observer.preparing(f"writing {self.corpus_bytes:,} bytes of built-in stories")
            atomic_write_text(corpus, generate_corpus(self.corpus_bytes, seed=0))

        def text() -> str:
            pairs = "\n".join(p["source"] + "\t" + p["target"] for p in builtin_pairs_once())
            return corpus.read_text(encoding="utf-8") + "\n" + pairs + "\n"

        return Shared([corpus], {"tokenizer": str(shared_tokenizer(out, text, self.vocab_size, observer))})

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        head = {"variant": spec.variant, "seed": spec.seed, "heads": spec.flags["n_heads"]}
        if spec.variant.startswith("lm-"):
            return {**head, "task": "lm", **measure_lm(run_dir, self.pairs, self.stories)}
        return {**head, "task": "mt", **measure_mt(run_dir, self.test_pairs, self.align_pairs, self.prune_pairs)}


def measure_lm(run_dir: Path, pairs: int, stories: int) -> dict[str, Any]:
    """The positions lab's measures (measure.py), kept to what this question needs."""
    from minitx.experiments.measure import LabSettings, measure_run

    lab = measure_run(run_dir, LabSettings(pairs=pairs, stories=stories, order_documents=50,
                                           extrapolation_windows=10))
    return {"val_loss": lab["val_loss"], "val_bpb": lab["val_bpb"], "parameters": lab["parameters"],
            "train_seconds": lab["train_seconds"], "minimal_pairs": lab["minimal_pairs"], "grammar": lab["grammar"]}


def measure_mt(run_dir: Path, test_pairs: int, align_pairs: int, prune_pairs: int) -> dict[str, Any]:
    """Exact match, chrF, the best cross-attention head's AER and the pruning curve of every attention kind."""
    from minitx.evaluation.translation_eval import evaluate_translation, held_out_pairs
    from minitx.inspect.alignment import alignment_report, capture_pair
    from minitx.rundir import load_model

    model, run = load_model(run_dir)
    model.eval()
    held_out = held_out_pairs(run)
    outputs = evaluate_translation(model, run.tokenizer, held_out[:test_pairs]).to_dict()["outputs"]
    aligned = [p for p in held_out if p.get("alignment")][:align_pairs]
    alignment = alignment_report([capture_pair(model, run.tokenizer, p["source"], p["target"]) for p in aligned],
                                 [p["alignment"] for p in aligned]).to_dict()
    return {"parameters": model.num_parameters(), "exact_match": outputs["exact_match"], "chrf": outputs["chrf"],
            "best_aer": alignment["best_head"]["aer"] if alignment.get("best_head") else None,
            "pruning": pruning_curves(model, run.tokenizer, held_out[:prune_pairs])}


def pruning_curves(model: Any, tokenizer: Any, pairs: list[dict]) -> dict[str, list[dict[str, Any]]]:
    """Per attention kind: the held-out target loss with 0, 1, 2, ... of its heads zeroed (at `hook_z`), the least
    important first (importance: the loss increase when that head alone is zeroed), the other kinds intact."""
    from minitx.evaluation.translation_eval import target_loss

    config = model.config
    layers = {"encoder self": config.encoder_layers or config.n_layers, "decoder self": config.n_layers,
              "cross": config.n_layers}

    def loss_without(heads: list[tuple[str, int]]) -> float:
        by_point: dict[str, list[int]] = {}
        for point, h in heads:
            by_point.setdefault(point, []).append(h)

        def zero(x: Any, name: str) -> Any:
            x = x.clone()
            x[:, :, by_point[name]] = 0.0  # [B, T, H, hd]: those heads write nothing
            return x

        with model.hooks([(lambda name: name in by_point, zero)]):
            return target_loss(model, tokenizer, pairs).loss

    curves: dict[str, list[dict[str, Any]]] = {}
    for kind, pattern in ATTENTION_KINDS.items():
        heads = [(pattern.format(i=i), h) for i in range(layers[kind]) for h in range(config.n_heads)]
        base = loss_without([])
        importance = {head: loss_without([head]) - base for head in heads}
        order = sorted(heads, key=lambda head: importance[head])
        curve = [{"pruned": 0, "share": 0.0, "loss": base}]
        for k in range(1, len(order) + 1):
            curve.append({"pruned": k, "share": k / len(order), "loss": loss_without(order[:k])})
        curves[kind] = curve
    return curves


def _accuracy(record: dict[str, Any], phenomenon: str) -> float | None:
    entry = record["minimal_pairs"]["by_phenomenon"].get(phenomenon)
    return entry["accuracy"] if entry else None


def loss_at_share(curve: list[dict[str, Any]], share: float) -> float:
    """The loss once at least `share` of the heads are pruned (the first point of the curve at or past it)."""
    return next(point["loss"] for point in curve if point["share"] >= share - 1e-9)


def build_report(settings: dict[str, Any], variants: list[str], runs: list[dict[str, Any]], seconds: float,
                 finished: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for variant, records in by_variant(runs, variants).items():
        if variant.startswith("lm-"):
            rows[variant] = {
                "seeds": len(records),
                "val_loss": summarise([r["val_loss"] for r in records]),
                "agreement_local": summarise([_accuracy(r, "agreement_local") for r in records]),
                "agreement_far": summarise([_accuracy(r, "agreement_far") for r in records]),
                "minimal_pairs": summarise([r["minimal_pairs"]["accuracy"] for r in records]),
                "grammatical": summarise([r["grammar"]["share"] for r in records]),
            }
        else:
            rows[variant] = {
                "seeds": len(records),
                "exact_match": summarise([r["exact_match"]["share"] for r in records]),
                "chrf": summarise([r["chrf"]["score"] for r in records]),
                "best_aer": summarise([r["best_aer"] for r in records]),
                **{f"pruned_half_{kind}": summarise([loss_at_share(r["pruning"][kind], 0.5) - r["pruning"][kind][0]
                                                     ["loss"] for r in records]) for kind in ATTENTION_KINDS},
            }
    report = {"settings": settings, "variants": variants, "rows": rows, "seconds": seconds, "partial": not finished}
    report["findings"] = findings(report)
    return report


def findings(report: dict[str, Any]) -> list[str]:
    rows, out = report["rows"], []
    if report["settings"].get("seeds", 1) < 2:
        out.append("Caution: one seed per variant; the spread over seeds is unknown.")
    lm = [v for v in report["variants"] if v.startswith("lm-") and rows[v]["seeds"]]
    if len(lm) >= 2:
        first, last = rows[lm[0]], rows[lm[-1]]
        for key, words in (("agreement_far", "agreement across a relative clause"),
                           ("agreement_local", "agreement with nothing between")):
            a, b = first[key], last[key]
            if a["mean"] is None or b["mean"] is None:
                continue
            gap = b["mean"] - a["mean"]
            clear = abs(gap) > (a["sd"] or 0) + (b["sd"] or 0)
            out.append(f"{words}: {lm[0]} {a['mean']:.1%}, {lm[-1]} {b['mean']:.1%} ({gap:+.1%}; "
                       + ("more than" if clear else "within") + " the seeds' spread).")
    mt = [v for v in report["variants"] if v.startswith("mt-") and rows[v]["seeds"]]
    if mt:
        cells = ", ".join(f"{v} {rows[v]['exact_match']['mean']:.1%}" for v in mt)
        out.append(f"Translation exact match by head count: {cells}.")
        widest = rows[mt[-1]]
        damage = {kind: widest[f"pruned_half_{kind}"]["mean"] for kind in ATTENTION_KINDS}
        if all(v is not None for v in damage.values()):
            out.append(f"Pruning half the heads of {mt[-1]} (least important first) raises the target loss by "
                       + ", ".join(f"{d:+.3f} ({kind})" for kind, d in damage.items()) + ".")
    return out


def render_markdown(report: dict[str, Any], command: str) -> str:
    def cell(stat: dict[str, Any], fmt: str) -> str:
        if stat["mean"] is None:
            return "–"
        return fmt.format(stat["mean"]) + (" ± " + fmt.replace("+", "").format(stat["sd"]) if stat["n"] > 1 else "")

    lines = ["# Attention heads at equal width (note 000, point 4)", "", f"`{command}`", ""]
    lm = [v for v in report["variants"] if v.startswith("lm-")]
    if lm:
        lines += ["| variant | val loss | agreement local | agreement far | minimal pairs | grammatical |",
                  "|---|---|---|---|---|---|"]
        for v in lm:
            r = report["rows"][v]
            lines.append(f"| {v} | {cell(r['val_loss'], '{:.3f}')} | {cell(r['agreement_local'], '{:.1%}')} | "
                         f"{cell(r['agreement_far'], '{:.1%}')} | {cell(r['minimal_pairs'], '{:.1%}')} | "
                         f"{cell(r['grammatical'], '{:.1%}')} |")
        lines.append("")
    mt = [v for v in report["variants"] if v.startswith("mt-")]
    if mt:
        kinds = list(ATTENTION_KINDS)
        lines += ["| variant | exact match | chrF | best cross AER | " + " | ".join(f"Δloss, half {k} pruned"
                                                                               for k in kinds) + " |",
                  "|---|---|---|---|" + "---|" * len(kinds)]
        for v in mt:
            r = report["rows"][v]
            lines.append(f"| {v} | {cell(r['exact_match'], '{:.1%}')} | {cell(r['chrf'], '{:.1f}')} | "
                         f"{cell(r['best_aer'], '{:.3f}')} | "
                         + " | ".join(cell(r[f"pruned_half_{k}"], "{:+.3f}") for k in kinds) + " |")
        lines.append("")
    lines += ["## Reading", ""] + [f"- {s}" for s in report["findings"]]
    return "\n".join(lines) + "\n"
