"""Everything `minitx inspect-attention` measured, as one JSON document (`--json FILE`).

The format is documented in docs/inspect-json.md and described exactly by the JSON Schema shipped
beside this module (`inspect-attention.schema.json`, read with `schema()`). Its "version" changes
whenever a field changes meaning or disappears, so a program reading these files can refuse one it
does not know. Sections not asked for (over, induction, ablation) are null.

Example:
    >>> import torch
    >>> from minitx.inspect.capture import AttentionCapture
    >>> capture = AttentionCapture(["<|doc|>", "a"], [0, 7], torch.tensor([[[[1.0, 0], [0.25, 0.75]]]]), "rope")
    >>> doc = attention_document(capture, run="runs/demo", prompt="a")
    >>> doc["version"], doc["tokens"], doc["weights"], doc["roles"][0]["role"]
    (1, ['<|doc|>', 'a'], [[[[1.0, 0.0], [0.25, 0.75]]]], 'self')
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.errors import UserError
from minitx.fileio import atomic_write_json
from minitx.inspect.induction import INDUCTION_THRESHOLD
from minitx.inspect.over_data import HOLDS_IN
from minitx.inspect.roles import ROLE_THRESHOLDS, head_roles

if TYPE_CHECKING:
    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.capture import AttentionCapture
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.over_data import RoleSpread

#: The version of the document's format (docs/inspect-json.md says what changed between versions).
VERSION = 1
SCHEMA_FILE = "inspect-attention.schema.json"
#: Decimals kept for each attention weight.
DECIMALS = 4


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every document written by `attention_document` satisfies."""
    return json.loads(resources.files("minitx.inspect.views").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def attention_document(
    capture: AttentionCapture,
    *,
    run: str,
    prompt: str | None,
    generated: int = 0,
    over: list[RoleSpread] | None = None,
    n_windows: int = 0,
    induction: InductionReport | None = None,
    ablation: AblationReport | None = None,
) -> dict[str, Any]:
    """The document as plain data: the capture (tokens, ids, weights [L][H][T][T], roles) and the extra sections.

    `generated` is how many of the tokens were sampled after the prompt (--generate); `n_windows`
    how many windows `over` was measured on.
    """
    return {
        "schema": "minitx.inspect-attention",
        "version": VERSION,
        "run": run,
        "pos": capture.pos,
        "n_layers": capture.n_layers,
        "n_heads": capture.n_heads,
        "prompt": prompt,
        "generated": generated,
        "tokens": capture.tokens,
        "ids": capture.token_ids,
        "weights": capture.weights.double().round(decimals=DECIMALS).tolist(),
        "thresholds": ROLE_THRESHOLDS,
        "roles": [
            {"layer": r.layer, "head": r.head, "role": r.role, "score": r.score, "scores": r.scores}
            for r in head_roles(capture)
        ],
        "over": None if over is None else {
            "windows": n_windows,
            "holds_in": HOLDS_IN,
            "heads": [
                {"layer": s.layer, "head": s.head, "role": s.role, "score": s.score, "mean": s.mean,
                 "spread": s.spread, "holds": s.holds, "windows": s.windows}
                for s in over
            ],
        },
        "induction": None if induction is None else {
            "length": induction.length,
            "repeats": induction.repeats,
            "sequences": induction.sequences,
            "threshold": INDUCTION_THRESHOLD,
            "vocab": induction.vocab,
            "chance_loss": induction.chance_loss,
            "copy_losses": induction.copy_losses,
            "heads": [
                {"layer": h.layer, "head": h.head, "induction": h.induction, "duplicate_token": h.duplicate_token,
                 "previous_token": h.previous_token, "is_induction": h.is_induction}
                for h in induction.heads
            ],
        },
        "ablation": None if ablation is None else {
            "base_loss": ablation.base_loss,
            "tokens": ablation.tokens,
            "heads": [
                {"layer": h.layer, "head": h.head, "zero_loss": h.zero_loss, "mean_loss": h.mean_loss,
                 "zero_rise": h.zero_rise, "mean_rise": h.mean_rise}
                for h in ablation.heads
            ],
        },
    }


def save_document(document: dict[str, Any], path: str | Path) -> Path:
    """Write `document` as indented JSON to `path`, atomically; return the path."""
    path = Path(path)
    try:
        atomic_write_json(path, document)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --json path") from None
    return path
