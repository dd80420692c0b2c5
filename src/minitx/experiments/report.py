"""From the runs' measures to one row per kind, and a reading written from the numbers.

Each metric of each kind is summarised over seeds as mean ± spread (sample standard deviation).
Two kinds "differ" on a metric when their means are further apart than their spreads added
(`intervals.differs`); otherwise the difference is reported as within noise. The sentences at
the end of report.md are built from these comparisons, so they change when the numbers do.
"""

from __future__ import annotations

import math
from typing import Any

from minitx.corpus.pairs import PHENOMENA
from minitx.evaluation.intervals import differs, mean_and_spread

#: The columns of the table: (key in report.json, heading, short heading for the terminal, format,
#: which way is better: +1 higher, -1 lower, 0 neither).
METRICS: list[tuple[str, str, str, str, int]] = [
    ("val_loss", "val loss (nats/token)", "val loss", "{:.3f}", -1),
    ("val_bpb", "val bits/byte", "bits/byte", "{:.4f}", -1),
    ("pairs_accuracy", "minimal pairs", "pairs", "{:.1%}", +1),
    ("order_gap_words", "order gap, words (bits/byte)", "Δ words", "{:.3f}", 0),
    ("order_gap_sentences", "order gap, sentences (bits/byte)", "Δ sents", "{:.3f}", 0),
    ("grammar_share", "grammatical sentences", "grammar", "{:.1%}", +1),
    ("extrapolation_2x", "loss at 2× block (nats/token)", "2× block", "{:.3f}", -1),
    ("train_seconds", "training time (s)", "train s", "{:.0f}", 0),
]
#: Every field report.json has at its top level (a test checks them).
REPORT_FIELDS = ("experiment", "kinds", "seeds", "rows", "runs", "findings", "seconds", "pictures", "partial")
ROW_FIELDS = (*(key for key, *_ in METRICS), *(f"pairs_{name}" for name in PHENOMENA), "grammar_errors",
              "extrapolation_in_block")


def run_metrics(lab: dict[str, Any]) -> dict[str, float | None]:
    """The numbers of one run that the table summarises, by ROW_FIELDS key (None when not measured)."""
    stretch = lab["extrapolation"]
    values: dict[str, float | None] = {
        "val_loss": lab["val_loss"],
        "val_bpb": lab["val_bpb"],
        "pairs_accuracy": lab["minimal_pairs"]["accuracy"],
        "order_gap_words": lab["order_test"]["words"]["bits_per_byte"],
        "order_gap_sentences": lab["order_test"]["sentences"]["bits_per_byte"],
        "grammar_share": lab["grammar"]["share"],
        "extrapolation_2x": stretch["beyond_block_loss"],
        "extrapolation_in_block": stretch["in_block_loss"],
        "train_seconds": lab["train_seconds"],
    }
    for name in PHENOMENA:
        accuracy = lab["minimal_pairs"]["by_phenomenon"].get(name)
        values[f"pairs_{name}"] = accuracy["accuracy"] if accuracy else None
    return values


def summarise(runs: list[dict[str, Any]], kinds: list[str]) -> dict[str, dict[str, Any]]:
    """One row per kind: every metric as {"mean", "spread", "values"} over its seeds, plus error counts."""
    rows: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        mine = [run for run in runs if run["kind"] == kind]
        per_run = [run_metrics(run) for run in mine]
        row: dict[str, Any] = {}
        for key in ROW_FIELDS:
            if key == "grammar_errors":
                errors: dict[str, int] = {}
                for run in mine:
                    for name, count in run["grammar"]["errors"].items():
                        errors[name] = errors.get(name, 0) + count
                row[key] = dict(sorted(errors.items(), key=lambda kv: -kv[1]))
                continue
            values = [m[key] for m in per_run]
            mean, spread = mean_and_spread(values)
            row[key] = {"mean": mean, "spread": spread, "values": values}
        rows[kind] = row
    return rows


def cell(metric: dict[str, Any], fmt: str) -> str:
    """"mean ± spread" in the metric's format, or a dash when it was not measured."""
    if metric["mean"] is None:
        return "—"
    return f"{fmt.format(metric['mean'])} ± {fmt.format(metric['spread'])}"


def findings(rows: dict[str, dict[str, Any]], seeds: int) -> list[str]:
    """Plain sentences from the numbers: who is best and worst on each metric, and whether it is more than noise."""
    sentences = []
    for key, heading, _, fmt, better in METRICS:
        if better == 0 and key != "order_gap_words":
            continue
        measured = {k: r[key] for k, r in rows.items() if r[key]["mean"] is not None}
        if len(measured) < 2:
            continue
        ranked = sorted(measured, key=lambda k: measured[k]["mean"], reverse=better >= 0)
        top, bottom = ranked[0], ranked[-1]
        a, b = measured[top], measured[bottom]
        best_word = "highest" if better >= 0 else "lowest"
        worst_word = "lowest" if better >= 0 else "highest"
        tied = [k for k in ranked[1:]
                if not differs(a["mean"], a["spread"], measured[k]["mean"], measured[k]["spread"])]
        if seeds == 1:
            verdict = "not judged: one seed per kind gives no spread to compare it with"
        elif differs(a["mean"], a["spread"], b["mean"], b["spread"]):
            verdict = "more than the spread over seeds"
        else:
            verdict = "within the spread over seeds, so it may be noise"
        if a["mean"] == b["mean"]:
            sentences.append(f"{_name(heading)}: every kind scores {fmt.format(a['mean'])}.")
            continue
        sentence = (f"{_name(heading)}: {top} is {best_word} ({cell(a, fmt)}), {bottom} {worst_word} "
                    f"({cell(b, fmt)}); the gap between them is {verdict}.")
        if seeds == 1:
            pass
        elif tied and len(tied) < len(ranked) - 1:
            sentence += f" {_join(tied)} cannot be told apart from {top}."
        elif tied:
            sentence += f" No kind can be told apart from {top}."
        sentences.append(sentence)
    sentences += _phenomenon_findings(rows, seeds)
    sentences += _extrapolation_findings(rows)
    sentences += _none_findings(rows)
    if seeds < 3:
        sentences.append(f"With {seeds} seed{'s' if seeds != 1 else ''} per kind the spread is itself rough; "
                         "more seeds (--seeds) make these verdicts firmer.")
    return sentences


def _phenomenon_findings(rows: dict[str, dict[str, Any]], seeds: int) -> list[str]:
    """The two minimal-pair phenomena on which the kinds disagree most, and whether that is more than noise."""
    gaps = []
    for name in PHENOMENA:
        measured = {k: r[f"pairs_{name}"] for k, r in rows.items() if r[f"pairs_{name}"]["mean"] is not None}
        if len(measured) >= 2:
            top = max(measured, key=lambda k: measured[k]["mean"])
            bottom = min(measured, key=lambda k: measured[k]["mean"])
            gaps.append((measured[top]["mean"] - measured[bottom]["mean"], name, top, bottom))
    parts = []
    for gap, name, top, bottom in sorted(gaps, reverse=True)[:2]:
        if gap == 0:
            continue
        a, b = rows[top][f"pairs_{name}"], rows[bottom][f"pairs_{name}"]
        if seeds == 1:
            verdict = "one seed: not judged"
        elif differs(a["mean"], a["spread"], b["mean"], b["spread"]):
            verdict = "more than the spread over seeds"
        else:
            verdict = "within the spread over seeds"
        parts.append(f"{name}, {top} {cell(a, '{:.0%}')} against {bottom} {cell(b, '{:.0%}')} ({verdict})")
    return [f"Among the minimal-pair phenomena the kinds disagree most on {'; and on '.join(parts)}."] if parts else []


def _extrapolation_findings(rows: dict[str, dict[str, Any]]) -> list[str]:
    """How much each kind's loss rises on the positions past its training block."""
    rises = []
    for kind, row in rows.items():
        beyond, inside = row["extrapolation_2x"]["mean"], row["extrapolation_in_block"]["mean"]
        if beyond is not None and inside is not None:
            rises.append((beyond - inside, kind, inside, beyond))
    if not rises:
        return []
    rises.sort()
    parts = [f"{kind} {rise:+.3f} ({inside:.3f} → {beyond:.3f})" for rise, kind, inside, beyond in rises]
    sentence = ("Reading twice the training block, the loss on the unseen positions changes by "
                + "; ".join(parts) + " nats.")
    from minitx.model.positions import ENCODINGS

    for kind in rows:
        if kind in ENCODINGS and not ENCODINGS[kind].extrapolates:
            sentence += f" {_name(ENCODINGS[kind].stretch_refusal)}: they cannot be measured there."
    return [sentence]


def _none_findings(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The question of the study notes: without any positional encoding, is word order lost?"""
    from minitx.model.positions import ENCODINGS

    blind = [kind for kind in rows if kind in ENCODINGS and not ENCODINGS[kind].has_signal]
    if not blind:
        return []
    kind = blind[0]
    gap, pairs = rows[kind]["order_gap_words"], rows[kind]["pairs_accuracy"]
    if gap["mean"] is None or pairs["mean"] is None:
        return []
    knows = "still relies on word order" if gap["mean"] - 2 * (gap["spread"] or 0) > 0.05 else "barely uses word order"
    return [f"Without any positional encoding ({kind}) the model {knows}: shuffling the words of each sentence costs "
            f"it {gap['mean']:.3f} bits per byte, and it prefers the grammatical twin in {pairs['mean']:.1%} of "
            "minimal pairs -- the causal mask alone lets it tell positions apart."
            if knows.startswith("still") else
            f"Without any positional encoding ({kind}) the model {knows}: shuffling costs it only "
            f"{gap['mean']:.3f} bits per byte."]


def _name(heading: str) -> str:
    return heading[0].upper() + heading[1:]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def build_report(experiment: dict[str, Any], runs: list[dict[str, Any]], seconds: float,
                 pictures: list[str], partial: bool = False) -> dict[str, Any]:
    """report.json: the settings, one row per kind, every run's measures, the reading, the time.

    `partial`: the experiment was stopped before every run was measured; rows hold the runs so far.
    """
    kinds = experiment["kinds"]
    rows = summarise(runs, kinds)
    measured_seeds = min((n for n in (sum(r["kind"] == k for r in runs) for k in kinds) if n), default=0)
    return {
        "experiment": experiment,
        "kinds": kinds,
        "seeds": experiment["seeds"],
        "rows": rows,
        "runs": runs,
        "findings": findings(rows, measured_seeds),
        "seconds": {"this_invocation": seconds,
                    "training": sum(r["train_seconds"] or 0 for r in runs),
                    "measuring": sum(r["eval_seconds"] for r in runs)},
        "pictures": pictures,
        "partial": partial,
    }


def render_markdown(report: dict[str, Any], command: str) -> str:
    """report.md: the table, the minimal pairs by phenomenon, the reading, the pictures."""
    rows, kinds = report["rows"], report["kinds"]
    seeds = report["seeds"]
    experiment = report["experiment"]
    lines = ["# The positional-encoding lab", "", f"`{command}`", "",
             f"{len(kinds)} kinds × {seeds} seed{'s' if seeds != 1 else ''}; model {experiment['model']}; "
             f"{experiment['train']['steps']} steps of batch {experiment['train']['batch_size']}; "
             f"values are mean ± standard deviation over seeds.", ""]
    if report["partial"]:
        lines += [f"**Partial report**: {len(report['runs'])} of {len(kinds) * seeds} runs measured so far; "
                  "rerun the same command to finish the experiment.", ""]
    headings = [heading for _, heading, *_ in METRICS]
    lines += ["| kind | " + " | ".join(headings) + " |", "|---" * (len(headings) + 1) + "|"]
    for kind in kinds:
        cells = [cell(rows[kind][key], fmt) for key, _, _, fmt, _ in METRICS]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "Minimal-pair accuracy by phenomenon:", ""]
    lines += ["| kind | " + " | ".join(PHENOMENA) + " |", "|---" * (len(PHENOMENA) + 1) + "|"]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(cell(rows[kind][f"pairs_{n}"], "{:.0%}") for n in PHENOMENA) + " |")
    lines += ["", "Errors in sampled stories (all seeds):", ""]
    for kind in kinds:
        errors = rows[kind]["grammar_errors"]
        lines.append(f"- {kind}: " + (", ".join(f"{name} {count}" for name, count in errors.items()) or "none"))
    lines += ["", "## What the table shows", ""]
    lines += [f"- {sentence}" for sentence in report["findings"]]
    seconds = report["seconds"]
    lines += ["", f"Time: {_minutes(seconds['training'])} training and {_minutes(seconds['measuring'])} measuring "
                  f"in total; this invocation took {_minutes(seconds['this_invocation'])}.", ""]
    for picture in report["pictures"]:
        lines.append(f"![{picture}]({picture})")
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
