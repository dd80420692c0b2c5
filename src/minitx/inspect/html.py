"""One HTML file to explore every attention head, offline: open it from disk, no network needed.

The page holds everything it needs -- CSS, a small plain-JavaScript program and the captured
weights as JSON -- so it can be mailed, archived or opened years later. It shows:

    * a layers × heads grid of the heads' roles, and layer / head pickers: click a head to choose it;
    * the chosen layer's heads as small heatmaps, side by side;
    * the text, token by token: point at (or click) a token and every earlier token is shaded by
      how much attention it gets from that one -- the sentence read through one head's eyes;
    * the chosen head's heatmap (queries down, keys across; point at a cell for its weight);
    * the chosen head's scores for every role, next to the thresholds that name it.

Weights are rounded to 3 decimals (0 and 1 written as integers), which keeps a 4 × 4 × 128² capture
near 1 MB. Token text reaches the page only as JSON data: "<", ">" and "&" are written as \\u003c,
\\u003e and \\u0026 there, so no token can end the script block, and the script puts tokens on the
page as text (`textContent`), never as HTML.

Example:
    >>> save_attention_html(capture, head_roles(capture), "attention.html", title="stories")
    PosixPath('attention.html')
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from minitx.errors import UserError
from minitx.fileio import atomic_write_text

if TYPE_CHECKING:
    import torch

    from minitx.inspect.attention import AttentionCapture
    from minitx.inspect.roles import HeadRole

#: Decimals kept for each weight in the page.
DECIMALS = 3


def rounded_weights(weights: torch.Tensor, decimals: int = DECIMALS) -> list:
    """[L, H, T, T] weights as nested lists rounded to `decimals`; whole numbers become ints.

        >>> rounded_weights(torch.tensor([[[[1.0, 0.0], [0.12345, 0.87655]]]]))
        [[[[1, 0], [0.123, 0.877]]]]
    """
    import torch

    scale = 10**decimals
    counts = torch.round(weights.double() * scale).long().tolist()  # integer thousandths: exact
    return [
        [[[c // scale if c % scale == 0 else c / scale for c in row] for row in head] for head in layer]
        for layer in counts
    ]


def json_for_script(data: object) -> str:
    """`data` as JSON that is safe inside a <script> element: no "<", ">" or "&" characters at all.

    Those three only occur inside JSON strings here, where the escapes mean the same characters:
    {"token": "</script>"} is written as {"token":"\\u003c/script\\u003e"}.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def save_attention_html(
    capture: AttentionCapture,
    roles: Sequence[HeadRole],
    path: str | Path,
    *,
    title: str,
    selected: tuple[int, int] | None = None,
) -> Path:
    """Write the explorer page for `capture` to `path` (atomically) and return the path.

    `roles` are `head_roles(capture)`; `selected` is the (layer, head) shown first (default: the
    most telling head, see `most_telling_head`).
    """
    from minitx.inspect.roles import ROLE_THRESHOLDS, most_telling_head

    if selected is None:
        best = most_telling_head(roles)
        selected = (best.layer, best.head)
    by_place = {(r.layer, r.head): r for r in roles}
    data = {
        "title": title,
        "pos": capture.pos,
        "tokens": capture.tokens,
        "tokenIds": capture.token_ids,
        "weights": rounded_weights(capture.weights),  # [L][H][T][T]
        "roles": [
            [
                {"role": r.role, "score": round(r.score, 3), "scores": {k: round(v, 3) for k, v in r.scores.items()}}
                for r in (by_place[layer, head] for head in range(capture.n_heads))
            ]
            for layer in range(capture.n_layers)
        ],
        "thresholds": ROLE_THRESHOLDS,
        "selected": {"layer": selected[0], "head": selected[1]},
    }
    parts = {"TITLE": html.escape(title), "STYLE": STYLE, "SCRIPT": SCRIPT, "DATA": json_for_script(data)}
    # one pass over the template: text put in (a title, a token) is never searched for markers itself
    page = re.sub(r"__(TITLE|STYLE|SCRIPT|DATA)__", lambda marker: parts[marker.group(1)], PAGE)
    path = Path(path)
    try:
        atomic_write_text(path, page)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --html path") from None
    return path


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<h1>__TITLE__</h1>
<p class="help">Each head shares out every token's attention over the tokens up to it: a row of weights α that
sums to 1. Point at a token in the text to see what it reads through the chosen head; darker = more.
The future (keys after the query) is never seen and stays blank.</p>
<div class="controls">
  <label>layer <select id="layer"></select></label>
  <label>head <select id="head"></select></label>
  <span id="summary"></span>
</div>
<h2>what each head does</h2>
<table id="roles"></table>
<h2 id="overview-title">all heads of the layer</h2>
<div id="overview"></div>
<h2>the text, read by the chosen head</h2>
<p class="help" id="query-line">point at a token (click to keep it)</p>
<div id="text"></div>
<div class="pair">
  <div>
    <h2 id="heatmap-title">heatmap</h2>
    <canvas id="heatmap"></canvas>
    <p id="cell" class="help">&nbsp;</p>
  </div>
  <div>
    <h2>scores of the chosen head</h2>
    <table id="scores"></table>
  </div>
</div>
<script type="application/json" id="attention-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.help { color: #555; font-size: 0.9em; }
.controls label { margin-right: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
#roles td.head { cursor: pointer; } #roles td.chosen { outline: 2px solid #e07000; }
#roles td.mixed { color: #888; }
#overview { display: flex; flex-wrap: wrap; gap: 0.8em; }
#overview figure { margin: 0; cursor: pointer; font-size: 0.8em; text-align: center; }
#overview figure.chosen canvas { outline: 2px solid #e07000; }
canvas { image-rendering: pixelated; border: 1px solid #ccc; display: block; }
#text { font-family: ui-monospace, monospace; line-height: 2; white-space: pre-wrap; }
#text span { border: 1px solid #ddd; border-radius: 3px; padding: 1px 0; cursor: pointer; }
#text span.query { outline: 2px solid #e07000; }
#text span.future { color: #bbb; border-color: #f0f0f0; }
.pair { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
#scores td.cleared { font-weight: bold; }
"""

SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("attention-data").textContent);
const nLayers = data.weights.length, nHeads = data.weights[0].length, nTokens = data.tokens.length;
const state = { layer: data.selected.layer, head: data.selected.head, query: nTokens - 1, pinned: nTokens - 1 };
const byId = (id) => document.getElementById(id);

// white -> deep blue, the same ramp as the terminal heatmap
function colour(w) {
  const r = Math.round(255 - w * 247), g = Math.round(255 - w * 207), b = Math.round(255 - w * 115);
  return "rgb(" + r + "," + g + "," + b + ")";
}
function shown(token) { return token.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5"); }
function quoted(position) { return position + ":\"" + shown(data.tokens[position]) + "\""; }
function roleText(info) { return info.role === "mixed" ? "mixed" : info.role + " " + info.score.toFixed(2); }
function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;  // always text, never HTML: tokens may hold "<"
  if (className) node.className = className;
  return node;
}

function drawHeatmap(canvas, matrix, cell, query) {
  canvas.width = canvas.height = nTokens * cell;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fafafa";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let q = 0; q < nTokens; q++) {
    for (let k = 0; k <= q; k++) {
      ctx.fillStyle = colour(matrix[q][k]);
      ctx.fillRect(k * cell, q * cell, cell, cell);
    }
  }
  if (query !== undefined) {
    ctx.strokeStyle = "#e07000";
    ctx.lineWidth = 2;
    ctx.strokeRect(1, query * cell + 1, (query + 1) * cell - 2, cell - 2);
  }
}

function buildPickers() {
  for (let l = 0; l < nLayers; l++) byId("layer").appendChild(new Option(String(l), String(l)));
  for (let h = 0; h < nHeads; h++) byId("head").appendChild(new Option(String(h), String(h)));
  byId("layer").onchange = (e) => choose(Number(e.target.value), state.head);
  byId("head").onchange = (e) => choose(state.layer, Number(e.target.value));
  byId("summary").textContent = nLayers + " layers \u00d7 " + nHeads + " heads, " + nTokens
    + " tokens, " + data.pos + " positions";
}

function buildRoles() {
  const table = byId("roles");
  const header = table.insertRow();
  header.appendChild(element("th", "layer"));
  for (let h = 0; h < nHeads; h++) header.appendChild(element("th", "head " + h));
  for (let l = 0; l < nLayers; l++) {
    const row = table.insertRow();
    row.appendChild(element("th", String(l)));
    for (let h = 0; h < nHeads; h++) {
      const info = data.roles[l][h];
      const cell = element("td", roleText(info), "head" + (info.role === "mixed" ? " mixed" : ""));
      cell.dataset.layer = l; cell.dataset.head = h;
      cell.onclick = () => choose(l, h);
      row.appendChild(cell);
    }
  }
}

function buildText() {
  const box = byId("text");
  data.tokens.forEach((token, i) => {
    const span = element("span", shown(token));
    span.title = "position " + i + ", id " + data.tokenIds[i];
    span.onmouseenter = () => setQuery(i);
    span.onmouseleave = () => setQuery(state.pinned);
    span.onclick = () => { state.pinned = i; setQuery(i); };
    box.appendChild(span);
    if (token.includes("\n")) box.appendChild(document.createElement("br"));
  });
}

function weightsOf(layer, head) { return data.weights[layer][head]; }

function setQuery(query) {
  state.query = query;
  const row = weightsOf(state.layer, state.head)[query];
  const spans = byId("text").querySelectorAll("span");
  spans.forEach((span, k) => {
    span.className = k === query ? "query" : (k > query ? "future" : "");
    span.style.background = k <= query ? colour(row[k]) : "transparent";
    span.style.color = k <= query && row[k] > 0.6 ? "white" : "";
  });
  const top = row.slice(0, query + 1).map((w, k) => [w, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  const reads = top.map(([w, k]) => quoted(k) + " " + w.toFixed(2)).join(", ");
  byId("query-line").textContent = quoted(query) + " reads " + reads + "   (position:\"token\" weight; click to keep)";
  drawMain();
}

function drawMain() {
  const canvas = byId("heatmap");
  const cell = Math.max(3, Math.min(16, Math.floor(480 / nTokens)));
  drawHeatmap(canvas, weightsOf(state.layer, state.head), cell, state.query);
  canvas.onmousemove = (e) => {
    const rect = canvas.getBoundingClientRect();
    const q = Math.floor((e.clientY - rect.top) / rect.height * nTokens);
    const k = Math.floor((e.clientX - rect.left) / rect.width * nTokens);
    if (q < 0 || k < 0 || q >= nTokens || k >= nTokens) return;
    byId("cell").textContent = k > q ? "(the future: never seen)"
      : quoted(q) + " \u2190 " + quoted(k) + ": " + weightsOf(state.layer, state.head)[q][k].toFixed(3);
  };
  canvas.onclick = (e) => {
    const rect = canvas.getBoundingClientRect();
    const q = Math.floor((e.clientY - rect.top) / rect.height * nTokens);
    if (q >= 0 && q < nTokens) { state.pinned = q; setQuery(q); }
  };
}

function drawOverview() {
  const box = byId("overview");
  box.replaceChildren();
  byId("overview-title").textContent = "all heads of layer " + state.layer;
  const cell = Math.max(1, Math.floor(140 / nTokens));
  for (let h = 0; h < nHeads; h++) {
    const figure = element("figure", undefined, h === state.head ? "chosen" : "");
    const canvas = document.createElement("canvas");
    drawHeatmap(canvas, weightsOf(state.layer, h), cell);
    figure.appendChild(canvas);
    figure.appendChild(element("figcaption", "head " + h + ": " + roleText(data.roles[state.layer][h])));
    figure.onclick = () => choose(state.layer, h);
    box.appendChild(figure);
  }
}

function drawScores() {
  const table = byId("scores");
  table.replaceChildren();
  const info = data.roles[state.layer][state.head];
  const header = table.insertRow();
  ["role", "score", "named at"].forEach((name) => header.appendChild(element("th", name)));
  for (const [role, threshold] of Object.entries(data.thresholds)) {
    const score = info.scores[role];
    const row = table.insertRow();
    const cleared = score !== undefined && score >= threshold;
    row.appendChild(element("td", role + (role === info.role ? "  \u2190 this head" : ""), cleared ? "cleared" : ""));
    row.appendChild(element("td", score === undefined ? "not measured" : score.toFixed(3)));
    row.appendChild(element("td", "\u2265 " + threshold));
  }
}

function choose(layer, head) {
  state.layer = layer; state.head = head;
  byId("layer").value = String(layer); byId("head").value = String(head);
  byId("roles").querySelectorAll("td.head").forEach((cell) => {
    cell.classList.toggle("chosen", Number(cell.dataset.layer) === layer && Number(cell.dataset.head) === head);
  });
  byId("heatmap-title").textContent = "layer " + layer + " head " + head + ": " + roleText(data.roles[layer][head]);
  drawOverview();
  drawScores();
  setQuery(state.pinned);
}

buildPickers();
buildRoles();
buildText();
choose(state.layer, state.head);
"""
