"""The views of an encoder-decoder's attention: terminal heatmaps, PNGs and the offline alignment page.

Encoder self-attention is square (source × source), decoder self-attention square and causal
(target × target), cross-attention is not square: target rows × source columns. The alignment view
draws source words above target words and a line from each target word to the source word the
chosen head attends to most, solid where the gold alignment has that link, dashed and red where not.
The page is `templates/alignment.html.j2` (same ramp and escaping as the decoder-only page, html.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.columns import Columns
from rich.table import Table
from rich.text import Text

from minitx.errors import UserError
from minitx.evaluation.translation import pool_attention
from minitx.fileio import atomic_write_text
from minitx.inspect.colours import ramp_for_page
from minitx.inspect.views.heatmap import save_png_heatmaps, terminal_heatmap

if TYPE_CHECKING:
    from minitx.inspect.alignment import AlignmentReport, PairCapture

TEMPLATE = "alignment.html.j2"
KIND_TITLES = {"encoder": "encoder self-attention (source × source)",
               "decoder": "decoder masked self-attention (target × target)",
               "cross": "cross-attention (target rows × source columns)"}


def _labels(capture: PairCapture, kind: str) -> tuple[list[str], list[str]]:
    if kind == "encoder":
        return capture.source_tokens, capture.source_tokens
    if kind == "decoder":
        return capture.target_tokens, capture.target_tokens
    return capture.written, capture.source_tokens  # a cross row is the token its query writes


def _matrix(capture: PairCapture, kind: str, layer: int, head: int) -> list[list[float]]:
    weights = np.array(capture.weights[kind][layer][head], dtype=float)
    if kind == "decoder":
        weights[np.triu_indices_from(weights, 1)] = np.nan  # the future, never seen: blank
    return weights.tolist()


def head_heatmap(capture: PairCapture, kind: str, layer: int, head: int) -> Table:
    """One head's token-level weights as a terminal heatmap (rows: queries; columns: keys)."""
    rows, columns = _labels(capture, kind)
    return terminal_heatmap(_matrix(capture, kind, layer, head), rows, columns,
                            title=f"{KIND_TITLES[kind]}, layer {layer} head {head}")


def word_matrix(capture: PairCapture, layer: int, head: int) -> np.ndarray:
    """A cross-attention head pooled to words [target words, source words] (evaluation.translation.pool_attention)."""
    return pool_attention(capture.weights["cross"][layer][head], capture.source_words, capture.target_words)


def cross_word_heatmaps(capture: PairCapture, report: AlignmentReport | None = None) -> Columns:
    """Every cross-attention head pooled to words, side by side; titled with its AER when gold links are known."""
    target_words, source_words = capture.target.split(), capture.source.split()
    aer = {(h.layer, h.head): h.aer for h in report.heads} if report is not None else {}
    tables = []
    for layer in range(len(capture.weights["cross"])):
        for head in range(capture.n_heads):
            note = f" AER {aer[layer, head]:.2f}" if (layer, head) in aer else ""
            table = terminal_heatmap(word_matrix(capture, layer, head).tolist(), target_words, source_words,
                                     title=f"L{layer} H{head}{note}")
            table.caption = None
            tables.append(table)
    return Columns(tables, padding=(0, 2))


def word_legend(capture: PairCapture) -> Text:
    """The source words by column index, for the word heatmaps (their columns are numbered)."""
    return Text("source words: " + "  ".join(f"{i}={w}" for i, w in enumerate(capture.source.split())))


def alignment_table(report: AlignmentReport, over_note: str) -> Table:
    """Layers × heads of AER (0 best), the best head marked, and the random-head baseline in the caption."""
    best = report.best
    n_heads = max(h.head for h in report.heads) + 1
    table = Table(title=f"alignment error rate of each cross-attention head ({over_note}; 0 = the gold links)",
                  title_justify="left")
    table.add_column("layer", justify="right")
    for head in range(n_heads):
        table.add_column(f"head {head}", justify="right")
    for layer in range(max(h.layer for h in report.heads) + 1):
        cells = []
        for h in (h for h in report.heads if h.layer == layer):
            text = f"{h.aer:.3f}" + (f" ± {h.spread:.2f}" if report.pairs > 1 else "")
            cells.append(f"[bold green]{text}[/]" if h is best else text)
        table.add_row(str(layer), *cells)
    table.caption = (f"random heads: {report.random_aer:.3f} ± {report.random_spread:.3f}; best-aligned head: "
                     f"layer {best.layer} head {best.head} (AER {best.aer:.3f})")
    table.caption_justify = "left"
    return table


def link_lines(capture: PairCapture, links: Sequence[tuple[int, int]],
               gold: Sequence[Sequence[int]] | None) -> list[str]:
    """'manzana <- apple' per target word, marked ✓ / ✗ against the gold links when given."""
    source_words, target_words = capture.source.split(), capture.target.split()
    gold_set = {(int(s), int(t)) for s, t in gold} if gold is not None else None
    lines = []
    for s, t in links:
        mark = "" if gold_set is None else ("  ✓" if (s, t) in gold_set else "  ✗ gold: " + ", ".join(
            source_words[gs] for gs, gt in sorted(gold_set) if gt == t))
        lines.append(f"{target_words[t]} ← {source_words[s]}{mark}")
    return lines


def png_paths(path: str | Path) -> dict[str, Path]:
    """The three PNG files of --png FILE: FILE (cross-attention), FILE-encoder.png, FILE-decoder.png."""
    path = Path(path)
    return {"cross": path, "encoder": path.with_name(f"{path.stem}-encoder.png"),
            "decoder": path.with_name(f"{path.stem}-decoder.png")}


def save_pair_pngs(capture: PairCapture, path: str | Path) -> list[Path]:
    """Every layer and head of each kind as a PNG (see `png_paths`); returns the paths written."""
    written = []
    for kind, target in png_paths(path).items():
        if not capture.weights[kind]:  # an RNN with attention has no self-attention: no file for it
            continue
        rows, columns = _labels(capture, kind)
        n_layers = len(capture.weights[kind])
        matrices = [_matrix(capture, kind, layer, head) for layer in range(n_layers) for head in range(capture.n_heads)]
        titles = [f"{kind} L{layer} H{head}" for layer in range(n_layers) for head in range(capture.n_heads)]
        written.append(save_png_heatmaps(target, matrices, titles, rows, columns, columns=capture.n_heads,
                                         colour_label="attention weight"))
    return written


def page_data(capture: PairCapture, report: AlignmentReport | None, gold: Sequence[Sequence[int]] | None,
              title: str) -> dict[str, Any]:
    """What the alignment page's script reads: tokens, words, weights per kind [L][H][Tq][Tk], word-level cross
    weights, the gold links, each head's AER and the head shown first."""
    n_layers = len(capture.weights["cross"])
    best = report.best if report is not None else None
    return {
        "title": title,
        "pos": capture.pos, "encoderPos": capture.encoder_pos,
        "sourceTokens": capture.source_tokens, "targetTokens": capture.target_tokens, "written": capture.written,
        "sourceWords": capture.source.split(), "targetWords": capture.target.split(),
        "weights": {kind: [np.round(w, 3).tolist() for w in layers] for kind, layers in capture.weights.items()},
        "wordCross": [[np.round(word_matrix(capture, layer, head), 3).tolist() for head in range(capture.n_heads)]
                      for layer in range(n_layers)],
        "gold": [list(map(int, link)) for link in gold] if gold is not None else None,
        "aer": ([[next(h.aer for h in report.heads if (h.layer, h.head) == (layer, head))
                  for head in range(capture.n_heads)] for layer in range(n_layers)] if report is not None else None),
        "randomAer": report.random_aer if report is not None else None,
        "selected": {"layer": best.layer if best else n_layers - 1, "head": best.head if best else 0},
        "ramp": ramp_for_page(),
    }


def render_alignment_page(capture: PairCapture, report: AlignmentReport | None, gold: Sequence[Sequence[int]] | None,
                          *, title: str) -> str:
    """The encoder-decoder page as a string (Jinja2 autoescape; the data block through `tojson`)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("minitx.inspect.views", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.get_template(TEMPLATE).render(title=title, data=page_data(capture, report, gold, title))


def save_alignment_html(capture: PairCapture, report: AlignmentReport | None, gold: Sequence[Sequence[int]] | None,
                        path: str | Path, *, title: str) -> Path:
    """Write the page (see `render_alignment_page`) atomically and return the path."""
    path = Path(path)
    try:
        atomic_write_text(path, render_alignment_page(capture, report, gold, title=title))
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --html path") from None
    return path
