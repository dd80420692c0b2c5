"""What `minitx inspect-lens` and `minitx inspect-patch` measured, as versioned JSON documents (`--json FILE`).

The formats are documented in docs/inspect-json.md and described exactly by the JSON Schemas shipped
beside this module (`inspect-lens.schema.json`, `inspect-patch.schema.json`, read with `schema(name)`).
As for inspect-attention, "version" changes whenever a field changes meaning or disappears.
NaN (a cell no pair has, a position with no target) is written as null.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minitx.inspect.attribution import AttributionReport
    from minitx.inspect.contrasts import Contrast
    from minitx.inspect.lens import LensReport
    from minitx.inspect.patching import PatchReport
    from minitx.text.tokenizer import Tokenizer

#: The version of both documents' formats.
VERSION = 1


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of "inspect-lens" or "inspect-patch" documents."""
    text = resources.files("minitx.inspect.views").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _numbers(rows: Any) -> list:
    return [[_number(v) for v in row] for row in rows.tolist()]


def lens_document(report: LensReport, tokenizer: Tokenizer, *, run: str, prompt: str | None,
                  attribution: AttributionReport | None = None, source: str | None = None) -> dict[str, Any]:
    """The lens (top tokens, target probability and rank per point and position) and the attribution, if any.
    On an encoder-decoder run `source` is the sentence read and `prompt` the translation so far."""
    n_points, n_tokens = report.target_prob.shape
    return {
        "schema": "minitx.inspect-lens",
        "version": VERSION,
        "run": run,
        "prompt": prompt,
        "source": source,
        "tokens": report.tokens,
        "ids": report.token_ids,
        "points": report.points,
        "targets": report.targets,
        "lens": [
            [
                {"top": [{"id": int(i), "token": tokenizer.id_to_token_text(int(i)), "p": _number(p)}
                         for i, p in zip(report.top_ids[point, t].tolist(), report.top_probs[point, t].tolist(),
                                         strict=True)],
                 "target_p": _number(float(report.target_prob[point, t])),
                 "target_rank": int(report.target_rank[point, t]) or None}
                for t in range(n_tokens)
            ]
            for point in range(n_points)
        ],
        "attribution": None if attribution is None else {
            "good": {"id": attribution.good, "token": tokenizer.id_to_token_text(attribution.good)},
            "bad": {"id": attribution.bad, "token": tokenizer.id_to_token_text(attribution.bad)},
            "total": attribution.total,
            "ln_f_scale": attribution.scale,
            "parts": [{"name": p.name, "kind": p.kind, "layer": p.layer, "head": p.head,
                       "attention": p.attention or None, "value": p.value} for p in attribution.parts],
        },
    }


def patch_document(report: PatchReport, contrasts: list[Contrast], tokenizer: Tokenizer, *, run: str,
                   phenomenon: str | None, skipped: dict[str, int]) -> dict[str, Any]:
    """Every grid (fractions, 95% intervals, pair counts), the pairs with their clean and corrupt Δ (and, on an
    encoder-decoder, each source position's column of the encoder grids), and the report's notes."""
    from minitx.inspect.patching import source_labels

    return {
        "schema": "minitx.inspect-patch",
        "version": VERSION,
        "run": run,
        "phenomenon": phenomenon,
        "skipped": dict(skipped),
        "pairs": [
            {"clean": c.clean_text, "corrupt": c.corrupt_text, "good": tokenizer.id_to_token_text(c.good),
             "bad": tokenizer.id_to_token_text(c.bad), "prompt": c.prompt_text, "labels": c.labels,
             **({} if c.clean_source is None else {"source_labels": source_labels(c)}),
             "clean_delta": float(clean),
             "corrupt_delta": float(corrupt)}
            for c, clean, corrupt in zip(contrasts, report.clean, report.corrupt, strict=True)
        ],
        "grids": [
            {"title": g.title, "rows": g.rows, "columns": g.columns, "recovered": _numbers(g.mean),
             "low": _numbers(g.low), "high": _numbers(g.high), "pairs": g.counts.astype(int).tolist()}
            for g in report.grids
        ],
        "notes": list(report.notes),
    }
