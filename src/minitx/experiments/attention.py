"""Why attention was invented, measured: translation quality against source length (Bahdanau et al. 2015, Fig. 2).

Every architecture named (by default `rnn`, the encoder-decoder whose decoder gets only the encoder's final
state; `rnn-attention`, Bahdanau's model; and the transformer `encoder-decoder`) trains on the same long
pairs -- up to `join` consecutive sentences of the built-in stories joined into one pair, sources from ~5 to
`max_words` words -- with the same steps × batch (the same pairs, so the same token budget), the same
seeds and one shared tokenizer, each at its architecture's own preset shape. A "-30" variant of each trains
on the pairs of at most `short_words` words only (Bahdanau's RNNsearch-30 against RNNencdec-50). Each run
translates held-out pairs per source-length bucket (0-10 ... 50-60 words; no held-out sentence was ever
trained on) and is scored there with exact match, chrF and BLEU (95% intervals); its training tokens/s and
seconds, and for a model with an alignment map (cross-attention heads, or the RNN's α) the best map's AER.

    DIR/experiment.json   DIR/pairs.jsonl   DIR/pairs-30.jsonl   DIR/tokenizer.json   DIR/tests.json
    DIR/runs/<variant>-seed<k>/ (+ lab.json)   DIR/report.md|json   DIR/length.png

The engine (engine.py) makes it resumable like every other experiment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minitx.errors import UserError
from minitx.experiments.engine import Experiment, Observer, RunSpec, Shared, by_variant, shared_tokenizer, summarise
from minitx.fileio import atomic_write_json, atomic_write_text

#: The three models the notes begin with, in the order the story tells them.
DEFAULT_ARCHS = ["rnn", "rnn-attention", "encoder-decoder"]
#: Sized for about 25 minutes on 2 cores (6 variants x 2 seeds; docs/experiments.md): 800 steps of 32 pairs each,
#: the architectures' own preset shapes and recipes (learning rate, optimizer).
DEFAULT_TRAIN: dict[str, Any] = {"steps": 800, "batch_size": 32, "eval_every": 200, "eval_batches": 4,
                                 "save_every": 400}
DEFAULT_MODEL: dict[str, Any] = {"block_size": 160}  # 60 words and their end token, in BPE pieces
SHORT_SUFFIX = "-{words}"
METRICS = (("exact_match", "exact match", "{:.1%}"), ("chrf", "chrF", "{:.1f}"), ("bleu", "BLEU", "{:.1f}"))


@dataclass
class AttentionExperiment(Experiment):
    """Everything that decides the numbers; stored in DIR/experiment.json."""

    SELECTION = ("archs", "seeds")

    archs: list[str] = field(default_factory=lambda: list(DEFAULT_ARCHS))
    seeds: int = 2
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN))
    vocab_size: int = 1000
    train_pairs: int = 12000  # long pairs drawn for training (the -30 variants train on their short share)
    join: int = 8  # sentences per pair, at most
    max_words: int = 60
    short_words: int | None = 30  # None: no "-30" variants
    per_bucket: int = 40  # held-out pairs per length bucket
    align_pairs: int = 30  # held-out pairs for the AER of the attention maps
    order: str = "svo"

    def validate(self) -> None:
        from minitx.config import ARCHITECTURES
        from minitx.model.registry import architecture

        unknown = [a for a in self.archs if a not in ARCHITECTURES]
        if unknown or not self.archs:
            raise UserError(f"--archs: unknown architecture {', '.join(unknown) or '(none given)'}; "
                            f"choose from {','.join(ARCHITECTURES)}")
        not_pairs = [a for a in self.archs if not architecture(a).reads_source]
        if not_pairs:
            raise UserError(f"--archs: {', '.join(not_pairs)} reads no source sentence; the length curve needs "
                            "models that translate")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {self.seeds}")
        if self.short_words is not None and not 1 <= self.short_words < self.max_words:
            raise UserError(f"--short-words must be between 1 and --max-words ({self.max_words}), not "
                            f"{self.short_words}")

    def variants(self) -> list[tuple[str, str, bool]]:
        """(name, arch, trained on short pairs only): every arch, then every arch's "-30"."""
        full = [(arch, arch, False) for arch in self.archs]
        short = [(f"{arch}-{self.short_words}", arch, True) for arch in self.archs] if self.short_words else []
        return full + short

    def runs(self) -> list[RunSpec]:
        return [RunSpec(name, seed, f"{name}-seed{seed}", {"arch": arch})
                for seed in range(self.seeds) for name, arch, _ in self.variants()]

    def files(self, spec: RunSpec, shared: Shared) -> list[Path]:
        short = {name: is_short for name, _, is_short in self.variants()}[spec.variant]
        return [shared.extra["short" if short else "full"]]

    def prepare(self, out: Path, observer: Observer) -> Shared:
        """The long training pairs (and their short share), one tokenizer, and the held-out sets per bucket."""
        from minitx.corpus.translation import length_bucket_pairs, source_sentences, translation_pairs

        full, short, tests = out / "pairs.jsonl", out / f"pairs-{self.short_words}.jsonl", out / "tests.json"
        if not full.is_file():
            observer.preparing(f"drawing {self.train_pairs:,} pairs of up to {self.join} sentences "
                               f"(≤ {self.max_words} words)")
            pairs = translation_pairs(self.train_pairs, seed=0, order=self.order, join=self.join,
                                      max_words=self.max_words)
            write_jsonl(full, pairs)
        pairs = read_jsonl(full)
        if self.short_words and not short.is_file():
            write_jsonl(short, [p for p in pairs if len(p["source"].split()) <= self.short_words])
        if not tests.is_file():
            observer.preparing(f"held-out pairs: {self.per_bucket} per source-length bucket, no trained sentence")
            seen = [s for p in pairs for s in source_sentences(p)]
            atomic_write_json(tests, length_bucket_pairs(self.per_bucket, seed=1, order=self.order, exclude=seen))
        tokenizer = shared_tokenizer(out, lambda: "\n".join(p["source"] + "\t" + p["target"] for p in pairs) + "\n",
                                     self.vocab_size, observer)
        return Shared([], {"tokenizer": str(tokenizer)},
                      {"full": full, "short": short, "tests": json.loads(tests.read_text(encoding="utf-8"))})

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        return {"variant": spec.variant, "seed": spec.seed, **measure_lengths(run_dir, shared.extra["tests"],
                                                                             self.align_pairs)}


def write_jsonl(path: Path, pairs: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure_lengths(run_dir: Path, tests: dict[str, list[dict]], align_pairs: int) -> dict[str, Any]:
    """lab.json of one run: scores per length bucket, training speed, and the best alignment map's AER (or None)."""
    from minitx import rundir
    from minitx.evaluation.translation_eval import evaluate_translation
    from minitx.model.registry import architecture

    model, run = rundir.load_model(run_dir)
    model.eval()
    history = rundir.read_metrics(run_dir)
    buckets = {}
    for bucket, pairs in tests.items():
        outputs = evaluate_translation(model, run.tokenizer, pairs).to_dict()["outputs"]
        buckets[bucket] = {key: outputs[key] for key in ("n", "exact_match", "chrf", "bleu")}
    aer = None
    arch = architecture(model.config.arch)
    if arch.serves("inspect-attention"):  # a model with alignment maps: cross-attention heads, or an RNN's α
        from minitx.inspect.alignment import alignment_report, capture_pair

        aligned = [p for pairs in tests.values() for p in pairs if p.get("alignment")
                   and len(run.tokenizer.encode(p["source"])) < model.config.block_size][:align_pairs]
        report = alignment_report([capture_pair(model, run.tokenizer, p["source"], p["target"]) for p in aligned],
                                  [p["alignment"] for p in aligned]).to_dict()
        aer = report["best_head"]["aer"] if report.get("best_head") else None
    last = history[-1] if history else {}
    return {"arch": model.config.arch, "parameters": model.num_parameters(), "buckets": buckets, "best_aer": aer,
            "train_seconds": last.get("train_seconds"), "tokens_per_second": last.get("tokens_per_second"),
            "val_loss": last.get("val_loss")}


def score_of(bucket: dict[str, Any], key: str) -> float | None:
    value = bucket.get(key)
    if value is None:
        return None
    return value.get("share", value.get("score"))


def build_report(settings: dict[str, Any], variants: list[str], runs: list[dict[str, Any]], seconds: float,
                 finished: bool) -> dict[str, Any]:
    """Each variant's mean ± sd (and 95% interval) over seeds of every metric per bucket, speed and AER."""
    grouped = by_variant(runs, variants)
    buckets = list(next((r["buckets"] for r in runs), {}).keys())
    rows: dict[str, Any] = {}
    for variant, records in grouped.items():
        rows[variant] = {
            "seeds": len(records),
            "buckets": {b: {key: summarise([score_of(r["buckets"][b], key) for r in records])
                            for key, _, _ in METRICS} for b in buckets},
            "tokens_per_second": summarise([r.get("tokens_per_second") for r in records]),
            "train_seconds": summarise([r.get("train_seconds") for r in records]),
            "best_aer": summarise([r.get("best_aer") for r in records]),
        }
    report = {"settings": settings, "variants": variants, "buckets": buckets, "rows": rows, "seconds": seconds,
              "partial": not finished}
    report["findings"] = findings(report)
    return report


def _curve(report: dict[str, Any], variant: str, key: str = "chrf") -> list[float | None]:
    return [report["rows"][variant]["buckets"][b][key]["mean"] for b in report["buckets"]]


def findings(report: dict[str, Any]) -> list[str]:
    """Plain sentences: does each model fall with length (first bucket against last), and by how much; which
    falls least; and Bahdanau's comparison, the attention model trained on short pairs against the fixed vector."""
    sentences = []
    seeds = report["settings"].get("seeds", 1)
    if seeds < 2:
        sentences.append("Caution: one seed per variant; the spread over seeds is unknown.")
    drops: dict[str, float] = {}
    for variant in report["variants"]:
        row = report["rows"][variant]
        if not row["seeds"]:
            continue
        curve = [(b, row["buckets"][b]["chrf"]) for b in report["buckets"] if row["buckets"][b]["chrf"]["mean"]
                 is not None]
        if len(curve) < 2:
            continue
        (b0, first), (b1, last) = curve[0], curve[-1]
        drop = first["mean"] - last["mean"]
        drops[variant] = drop
        spread = (first["sd"] or 0.0) + (last["sd"] or 0.0)
        verdict = ("falls with length" if drop > max(spread, 2.0) else
                   "holds with length" if abs(drop) <= max(spread, 2.0) else "rises with length")
        sentences.append(f"{variant} {verdict}: chrF {first['mean']:.1f} on {b0}-word sources, {last['mean']:.1f} "
                         f"on {b1} ({-drop:+.1f}; seeds' spread {spread:.1f}).")
    full = [v for v in drops if v in report["settings"].get("archs", [])]
    if len(full) >= 2:
        least, most = min(full, key=drops.__getitem__), max(full, key=drops.__getitem__)
        sentences.append(f"Of the models trained on every length, {least} falls least ({-drops[least]:+.1f} chrF) "
                         f"and {most} most ({-drops[most]:+.1f}).")
    short = report["settings"].get("short_words")
    searched, fixed = f"rnn-attention-{short}", "rnn"
    if short and searched in drops and fixed in drops:
        gaps = [report["rows"][searched]["buckets"][b]["chrf"]["mean"] - report["rows"][fixed]["buckets"][b]["chrf"]
                ["mean"] for b in report["buckets"]]
        where = "in every bucket" if min(gaps) > 0 else f"in {sum(g > 0 for g in gaps)} of {len(gaps)} buckets"
        sentences.append(f"{searched}, trained on sources of at most {short} words only, is above {fixed} (trained on "
                         f"every length) {where}, by {min(gaps):+.1f} to {max(gaps):+.1f} chrF (Bahdanau et al.: "
                         "RNNsearch-30 above RNNencdec-50).")
    return sentences


def render_markdown(report: dict[str, Any], command: str) -> str:
    lines = ["# Translation quality by source length (Bahdanau et al. 2015, Fig. 2)", "", f"`{command}`", ""]
    if report["partial"]:
        lines += ["**Partial**: stopped before every run finished.", ""]
    for key, title, fmt in METRICS:
        lines += [f"## {title} by source length (mean ± sd over seeds; report.json has each 95% interval)", "",
                  "| variant | " + " | ".join(report["buckets"]) + " |",
                  "|---|" + "---|" * len(report["buckets"])]
        for variant in report["variants"]:
            cells = [cell(report["rows"][variant]["buckets"][b][key], fmt) for b in report["buckets"]]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Speed and alignment", "", "| variant | tokens/s | train seconds | best map AER |",
              "|---|---|---|---|"]
    for variant in report["variants"]:
        row = report["rows"][variant]
        lines.append(f"| {variant} | {cell(row['tokens_per_second'], '{:.0f}')} | "
                     f"{cell(row['train_seconds'], '{:.0f}')} | {cell(row['best_aer'], '{:.3f}')} |")
    lines += ["", "## Reading", ""] + [f"- {s}" for s in report["findings"]]
    return "\n".join(lines) + "\n"


def cell(stat: dict[str, Any], fmt: str) -> str:
    if stat["mean"] is None:
        return "–"
    text = fmt.format(stat["mean"])
    if stat["n"] > 1:
        text += " ± " + fmt.format(stat["sd"]).rstrip("%") + ("%" if fmt.endswith("%}") else "")
    return text


def save_length_plot(report: dict[str, Any], path: Path, key: str = "chrf") -> bool:
    """length.png in the shape of Bahdanau's Fig. 2: chrF (y, 0-100) by source-length bucket (x), one line per
    variant, error bars ± the seeds' sd; a "-30" variant dashed, in its architecture's colour. False when
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = list(range(len(report["buckets"])))
    for variant in report["variants"]:
        stats = [report["rows"][variant]["buckets"][b][key] for b in report["buckets"]]
        ys = [s["mean"] for s in stats]
        if all(y is None for y in ys):
            continue
        errors = [s["sd"] or 0.0 for s in stats]  # with 2-3 seeds a t-interval would span the whole axis
        archs = report["settings"]["archs"]
        short = variant not in archs
        arch = variant.rsplit("-", 1)[0] if short else variant  # "rnn-attention-30" -> "rnn-attention"
        color = f"C{archs.index(arch) % 10}" if arch in archs else None  # an architecture and its "-30" alike
        ax.errorbar(xs, [y if y is not None else float("nan") for y in ys], yerr=errors, label=variant,
                    linestyle="--" if short else "-", marker="o", capsize=3, color=color)
    ax.set_xticks(xs, report["buckets"])
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel({"chrf": "chrF", "bleu": "BLEU"}.get(key, key))
    ax.set_ylim(0, 100)
    ax.set_title("Translation quality by source length (bars: ± sd over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
