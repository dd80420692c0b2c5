"""Reading sentence pairs for translation: one JSON object per line (JSON Lines), a source and a target field.

    {"source": "The red ball is big.", "target": "La pelota roja es grande.", "alignment": [[0, 0], ...]}

The field names are the user's (`source_field`, `target_field`); an `alignment` (what `minitx data
translation` writes) is kept when present and checked: each link is [source word, target word], word
indices over whitespace-split words. Blank lines are skipped. Anything else wrong is a UserError that
names the file and line, so the user can fix it there.
"""

from __future__ import annotations

import json
from pathlib import Path

from minitx.config import value_words
from minitx.errors import UserError
from minitx.text.files import read_text_file


def read_pairs(path: str | Path, source_field: str = "source", target_field: str = "target") -> list[dict]:
    """The pairs of a JSON Lines file: [{"source": ..., "target": ..., "alignment": ... (if present)}, ...]."""
    path = Path(path)
    pairs = []
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        if line.strip():
            pairs.append(_pair(json_object(line, path, number), path, number, source_field, target_field))
    if not pairs:
        raise UserError(f"{path} holds no sentence pairs; write one JSON object per line")
    return pairs


def json_object(line: str, path: Path, number: int) -> dict:
    """One line parsed as a JSON object, or a UserError naming the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{path} line {number} is not JSON ({error.msg}); write one JSON object per line") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} line {number} is a JSON {type(record).__name__}, not an object with "
                        "source and target fields")
    return record


def _pair(record: dict, path: Path, number: int, source_field: str, target_field: str) -> dict:
    pair = {}
    for key, field, flag in (("source", source_field, "--source-field"), ("target", target_field, "--target-field")):
        if field not in record:
            fields = ", ".join(repr(name) for name in record) or "none"
            raise UserError(f"{path} line {number} has no field {field!r} (its fields: {fields}); "
                            f"name the {key} field with {flag}")
        value = record[field]
        if not isinstance(value, str):
            raise UserError(f"{path} line {number}: field {field!r} holds {value_words(value)}, not text")
        if not value.strip():
            raise UserError(f"{path} line {number}: the {key} ({field!r}) is empty")
        pair[key] = value
    if "alignment" in record:
        pair["alignment"] = _alignment(record["alignment"], pair, path, number)
    return pair


def _alignment(links: object, pair: dict, path: Path, number: int) -> list[list[int]]:
    """Links as [[source word, target word], ...], each index inside its sentence."""
    n_source, n_target = len(pair["source"].split()), len(pair["target"].split())
    if not isinstance(links, list) or not all(
            isinstance(link, list) and len(link) == 2 and all(type(i) is int for i in link) for link in links):
        raise UserError(f"{path} line {number}: the alignment must be a list of [source word, target word] "
                        "index pairs")
    for source, target in links:
        if not (0 <= source < n_source and 0 <= target < n_target):
            raise UserError(f"{path} line {number}: alignment link [{source}, {target}] is outside the sentences "
                            f"({n_source} source words, {n_target} target words)")
    return [list(link) for link in links]
