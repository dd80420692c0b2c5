"""The encoder-decoder lab's report: each variant's numbers (mean ± sd over seeds) and findings read from them.

Findings compare means with `intervals.differs` (the gap must exceed both spreads), so with one seed
any gap counts and the report says how many seeds there were.
"""

from __future__ import annotations

from typing import Any

from minitx.evaluation.intervals import differs, mean_and_spread
from minitx.experiments.translation_lab import ENCODER_WITHOUT
from minitx.model.positions import encoding_class

#: (key, column heading, format): what the table shows per variant.
METRICS = (
    ("exact_match", "exact match", "pct"),
    ("chrf", "chrF", "num1"),
    ("em_0", "EM 0 adj-noun", "pct"),
    ("em_1", "EM 1 adj-noun", "pct"),
    ("em_2", "EM 2+ adj-noun", "pct"),
    ("em_two_set", "EM 2+ test set", "pct"),
    ("best_aer", "best head AER", "num3"),
    ("random_aer", "random AER", "num3"),
)


#: Below this best exact match the findings open with a warning that the runs are too short to answer.
UNDERTRAINED_BELOW = 0.5


def run_metrics(lab: dict[str, Any]) -> dict[str, float | None]:
    """The METRICS of one run's lab.json (None where a bucket had no sentence)."""
    outputs, buckets = lab["eval"]["outputs"], lab["eval"]["by_phenomenon"].get("adjective_phrases", {})

    def bucket(name: str) -> float | None:
        return buckets[name]["exact_match"]["share"] if name in buckets else None

    return {"exact_match": outputs["exact_match"]["share"], "chrf": outputs["chrf"]["score"],
            "em_0": bucket("0"), "em_1": bucket("1"), "em_2": bucket("2+"),
            "em_two_set": lab["two_phrases"]["exact_match"]["share"],
            "best_aer": lab["alignment"]["best_head"]["aer"], "random_aer": lab["alignment"]["random_head"]["aer"]}


def summarise(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{variant: {metric: {"mean", "sd", "n"}}} over the seeds measured."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for variant in variants:
        mine = [run_metrics(r) for r in runs if r["variant"] == variant]
        if not mine:
            continue
        rows[variant] = {}
        for key, _, _ in METRICS:
            mean, sd = mean_and_spread([m[key] for m in mine])
            rows[variant][key] = {"mean": mean, "sd": sd, "n": len(mine)}
    return rows


def cell(metric: dict[str, Any], fmt: str) -> str:
    if metric["mean"] is None:
        return "–"
    if fmt == "pct":
        return f"{metric['mean']:.1%} ± {metric['sd']:.1%}"
    digits = 1 if fmt == "num1" else 3
    return f"{metric['mean']:.{digits}f} ± {metric['sd']:.{digits}f}"


def _gap(rows: dict, a: str, b: str, key: str) -> tuple[float, bool] | None:
    x, y = rows.get(a, {}).get(key), rows.get(b, {}).get(key)
    if not x or not y or x["mean"] is None or y["mean"] is None:
        return None
    return x["mean"] - y["mean"], differs(x["mean"], x["sd"], y["mean"], y["sd"])


def findings(rows: dict[str, dict[str, dict[str, Any]]], seeds: int) -> list[str]:
    """Sentences read from the numbers: encoder NoPE on 2+ phrases, NoPE against the best kind, alignment."""
    said = []
    for variant in [v for v in rows if v.endswith(ENCODER_WITHOUT)]:
        kind = variant.removesuffix(ENCODER_WITHOUT)
        hard, easy = _gap(rows, kind, variant, "em_two_set"), _gap(rows, kind, variant, "em_0")
        if hard is None:
            continue
        verdict = "fails there" if hard[1] and hard[0] > 0 else "does not clearly fail there"
        said.append(f"Encoder without positions ({kind} decoder): exact match on the 2+ adjective-noun test set "
                    f"{rows[variant]['em_two_set']['mean']:.1%} against {rows[kind]['em_two_set']['mean']:.1%} with "
                    f"{kind} on both stacks (gap {hard[0]:+.1%}, {'beyond' if hard[1] else 'within'} the seed spread): "
                    f"it {verdict}" + (f"; on sentences with no such phrase the gap is {easy[0]:+.1%}" if easy else "")
                    + ".")
    same_kind = [v for v in rows if "+" not in v]  # one kind on both stacks; those without a positional signal:
    unordered = [v for v in same_kind if not encoding_class(v).has_signal]
    both = [v for v in same_kind if encoding_class(v).has_signal]
    if unordered and both:
        best = max(both, key=lambda v: rows[v]["exact_match"]["mean"])
        gap = _gap(rows, best, unordered[0], "exact_match")
        if gap is not None:
            near = not gap[1]
            bare = rows[unordered[0]]["exact_match"]["mean"]
            said.append(f"No positions on either stack: exact match {bare:.1%} against "
                        f"{rows[best]['exact_match']['mean']:.1%} for the best kind ({best}); "
                        + ("within the seed spread, so the decoder-only result (NoPE nearly as good) holds here too."
                           if near else f"{gap[0]:+.1%} behind, beyond the seed spread: the decoder-only result "
                                        "(NoPE nearly as good, through the causal mask) reverses here, because the "
                                        "encoder has no causal mask to recover order from."))
    aligned = [v for v in rows if rows[v]["best_aer"]["mean"] is not None]
    if aligned:
        best = min(aligned, key=lambda v: rows[v]["best_aer"]["mean"])
        said.append(f"Alignment: the best cross-attention head's AER is lowest for {best} "
                    f"({rows[best]['best_aer']['mean']:.3f}; random heads {rows[best]['random_aer']['mean']:.3f}).")
    said.append(f"Over {seeds} seed(s) per variant; ± is the sample standard deviation over seeds.")
    top = max((row["exact_match"]["mean"] or 0.0 for row in rows.values()), default=0.0)
    if top < UNDERTRAINED_BELOW:
        said.insert(0, f"Caution: no variant reaches {UNDERTRAINED_BELOW:.0%} exact match (best {top:.1%}); the "
                       "models are too little trained for these comparisons to answer the question, train longer.")
    return said


def build_report(settings: dict[str, Any], variants: list[str], runs: list[dict[str, Any]], seconds: float,
                 finished: bool) -> dict[str, Any]:
    rows = summarise(runs, variants)
    return {"settings": settings, "variants": [v for v in variants if v in rows], "rows": rows,
            "findings": findings(rows, settings["seeds"]), "seconds": seconds, "partial": not finished,
            "runs": len(runs)}


def render_markdown(report: dict[str, Any], command: str) -> str:
    """The report as a Markdown page: command, settings, the table, the findings."""
    settings = report["settings"]
    lines = [f"# Encoder-decoder positional-encoding lab{' (partial)' if report['partial'] else ''}", "",
             f"`{command}`", "",
             f"{report['runs']} runs ({settings['seeds']} seed(s) per variant), {settings['train']['steps']} steps "
             f"each; this invocation took {report['seconds'] / 60:.1f} minutes (runs measured before are reused, not "
             f"trained again). Model: {settings['model']}. Held-out pairs "
             f"translated per run: {settings['test_pairs']}; 2+ adjective-noun test set: "
             f"{settings['two_phrase_pairs']} unseen sentences; AER over {settings['align_pairs']} held-out pairs.",
             "", "| variant | " + " | ".join(title for _, title, _ in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for variant in report["variants"]:
        row = report["rows"][variant]
        lines.append(f"| {variant} | " + " | ".join(cell(row[key], fmt) for key, _, fmt in METRICS) + " |")
    lines += ["", "## Findings", ""] + [f"- {sentence}" for sentence in report["findings"]]
    return "\n".join(lines) + "\n"
