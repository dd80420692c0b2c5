// minitx explorer: the page of `minitx serve`. Plain JavaScript, no build step, no framework, no CDN.
//
// Every text that comes from a model or a tokenizer is put into the page as text (textContent, canvas
// fillText), never as markup: a token "<script>" is shown as the nine characters it is.
//
// Updates: a change of the text or a control sends one request per run at once when the page is idle,
// and at most one per DEBOUNCE_MS while the learner types (the last change always gets its update).
// window.minitx.timings collects change -> views drawn, in ms (bench/bench_serve.py reads it).
"use strict";

const DEBOUNCE_MS = 150;
const state = { runs: [], timer: null, pending: false, inFlight: false, lastSent: -Infinity, firstChange: null };
window.minitx = { timings: [], updates: 0, ready: false, busy: false };

// ---------------------------------------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, body, signal) {
  const options = body === undefined ? { signal } : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function decodeWeights(packed) {
  const raw = atob(packed.u8);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return { shape: packed.shape, bytes };
}

// One head's matrix from packed [L, H, Q, K] weights, as a function (q, k) -> weight in [0, 1].
function headMatrix(weights, layer, head) {
  const [, H, Q, K] = weights.shape;
  const base = (layer * H + head) * Q * K;
  return { rows: Q, cols: K, at: (q, k) => weights.bytes[base + q * K + k] / 255 };
}

function blue(w) { return [Math.round(255 - 225 * w), Math.round(255 - 170 * w), Math.round(255 - 60 * w)]; }

// A matrix drawn with one pixel per cell, scaled up crisply by the canvas.
const scratch = document.createElement("canvas");
function drawMatrix(canvas, matrix, size, marks) {
  const image = new ImageData(matrix.cols, matrix.rows);
  for (let q = 0; q < matrix.rows; q++) {
    for (let k = 0; k < matrix.cols; k++) {
      const [r, g, b] = blue(matrix.at(q, k));
      const i = 4 * (q * matrix.cols + k);
      image.data[i] = r; image.data[i + 1] = g; image.data[i + 2] = b; image.data[i + 3] = 255;
    }
  }
  scratch.width = matrix.cols; scratch.height = matrix.rows;
  scratch.getContext("2d").putImageData(image, 0, 0);
  const cell = Math.max(1, Math.floor(size / Math.max(matrix.rows, matrix.cols)));
  canvas.width = cell * matrix.cols; canvas.height = cell * matrix.rows;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
  if (marks) {
    context.strokeStyle = "#e8590c"; context.lineWidth = Math.max(1, cell / 8);
    for (const [q, k] of marks) context.strokeRect(k * cell + 0.5, q * cell + 0.5, cell - 1, cell - 1);
  }
  return cell;
}

function shown(token) { return token.replace(/ /g, "·").replace(/\n/g, "↵") || "∅"; }

function percent(p) {
  if (p === null || p === undefined) return "–";
  return `${(100 * p).toFixed(p > 0 && p < 0.001 ? 3 : 1)}%`;
}

// ---------------------------------------------------------------------------------------------- the controls

function controls() {
  const topK = parseInt(document.getElementById("top-k").value, 10);
  const topP = parseFloat(document.getElementById("top-p").value);
  return {
    text: document.getElementById("text").value,
    temperature: parseFloat(document.getElementById("temperature").value),
    top_k: topK > 0 ? topK : null,
    top_p: topP < 1 ? topP : null,
  };
}

function changed() {
  document.getElementById("temperature-out").textContent = Number(document.getElementById("temperature").value).toFixed(2);
  document.getElementById("top-p-out").textContent = Number(document.getElementById("top-p").value).toFixed(2);
  if (state.firstChange === null) state.firstChange = performance.now();
  state.pending = true;
  window.minitx.busy = true;
  schedule();
}

function schedule() {
  if (state.timer !== null || state.inFlight) return;
  const wait = Math.max(0, state.lastSent + DEBOUNCE_MS - performance.now());
  state.timer = setTimeout(flush, wait);
}

async function flush() {
  state.timer = null;
  if (!state.pending || state.inFlight) return;
  state.pending = false;
  state.inFlight = true;
  state.lastSent = performance.now();
  const since = state.firstChange;
  state.firstChange = null;
  const ok = await updateAll();
  state.inFlight = false;
  if (ok && since !== null) {
    const ms = performance.now() - since;
    window.minitx.timings.push(ms);
    document.getElementById("status").textContent = `views updated in ${ms.toFixed(0)} ms`;
  }
  window.minitx.updates += 1;
  if (state.pending) schedule();
  else window.minitx.busy = false;
}

async function updateAll() {
  const asked = controls();
  const results = await Promise.all(state.runs.map((run) => run.update(asked).then(() => null, (e) => e)));
  const failed = results.filter((e) => e !== null);
  showError(failed.map((e) => e.message).join("\n"));
  return failed.length === 0;
}

// ---------------------------------------------------------------------------------------------- shared views

// The heads to switch off, as the server reads them: [[attention map name, head], ...].
function ablateList(set) {
  return [...set].map((key) => { const cut = key.lastIndexOf("|"); return [key.slice(0, cut), Number(key.slice(cut + 1))]; });
}

// One figure per head of `maps` (the weights packed [N, H, Q, K], N in the maps' order): its heatmap, a caption
// (`describe(i, head)` adds lines), and an "off" toggle where the map's heads can be switched off (`ablate`, a Set
// of "map|head"). Any number of maps and heads: a new architecture's attention is drawn as it comes.
function headGrid(grid, weights, maps, { size, selected, ablate, describe, onSelect }) {
  const cells = [];
  let columns = 1;
  maps.forEach((map, i) => {
    columns = Math.max(columns, map.heads);
    for (let head = 0; head < map.heads; head++) {
      const key = `${map.name}|${head}`;
      const canvas = el("canvas", { class: "small", title: `${map.name} head ${head}` });
      drawMatrix(canvas, headMatrix(weights, i, head), size);
      const caption = el("figcaption", {}, el("b", { text: `${map.label} H${head}` }), ...describe(i, head));
      let toggle = null;
      if (map.ablatable) {
        toggle = el("input", { type: "checkbox", "aria-label": `switch off ${map.name} head ${head}`,
          "data-map": map.name, "data-head": String(head) });
        toggle.checked = ablate.has(key);
        toggle.addEventListener("change", () => {
          if (toggle.checked) ablate.add(key); else ablate.delete(key);
          changed();
        });
        caption.append(el("label", { class: "off-toggle" }, toggle, " off"));
      }
      const isSelected = selected && selected.map === map.name && selected.head === head;
      cells.push(el("figure", { class: `head${isSelected ? " selected" : ""}${toggle && toggle.checked ? " off" : ""}`,
        "data-map": map.name, "data-head": String(head),
        onclick: (event) => { if (event.target !== toggle && event.target.tagName !== "LABEL") onSelect(map.name, head); } },
        canvas, caption));
    }
  });
  grid.style.gridTemplateColumns = `repeat(${columns}, auto)`;
  grid.replaceChildren(...cells);
}

function offCaption(ablated) {
  return ablated.map(([name, head]) => `${name} head ${head}`).join(", ");
}

// The logit lens: a row per point of the stream, a column per position, each cell the top token there.
function drawLens(table, lens, tokens) {
  const header = el("tr", {}, el("th", { text: "" }), ...tokens.map((t) => el("th", { class: "tok", text: shown(t) })));
  const rows = lens.points.map((point, p) => el("tr", {}, el("th", { text: point }), ...tokens.map((_, t) => {
    const cell = el("td", { text: shown(lens.top[p][t]),
      title: `top ${percent(lens.p[p][t])}; the next token ${percent(lens.target_p[p][t])} (rank ${lens.target_rank[p][t] || "–"})` });
    const [r, g, b] = blue(lens.p[p][t]);
    cell.style.background = `rgb(${r},${g},${b})`;
    if (lens.p[p][t] > 0.6) cell.style.color = "#fff";
    return cell;
  })));
  table.replaceChildren(header, ...rows);
}

// ---------------------------------------------------------------------------------------------- a decoder-only run

class GptRun {
  constructor(info, root) {
    this.info = info;
    this.view = null;
    this.weights = null;
    const last = info.maps[info.maps.length - 1];
    this.selected = { map: last.name, head: 0 };
    this.query = -1;
    this.ablate = new Set();
    this.overData = null;
    this.build(root);
    this.loadRoles();
  }

  build(root) {
    const info = this.info;
    this.section = el("section", { class: "run", "data-run": info.index, "aria-label": `run ${info.name}` });
    this.section.append(el("h2", { text: `${info.name}` }), el("p", { class: "shape", text: `${info.noun} · ${info.shape}` }));
    this.tokens = el("div", { class: "tokens", "aria-label": "the text as tokens (click one to see what it reads)" });
    this.next = el("table", { class: "next" });
    this.grid = el("div", { class: "head-grid" });
    this.large = el("canvas", { class: "large", "aria-label": "the selected head's attention" });
    this.largeTitle = el("h4");
    this.reads = el("ol", { class: "reads" });
    this.lens = el("table", { class: "lens" });
    this.sampleOut = el("pre", { class: "sample" });
    this.patchOut = el("div", { class: "patch" });
    const phenomenon = el("select", { "aria-label": "minimal pairs to patch" });
    for (const p of info.phenomena) phenomenon.append(el("option", { value: p, text: p }));
    const patchButton = el("button", { type: "button", text: "patch", onclick: () => loadPatch(info, this.patchOut, phenomenon.value) });
    this.rolesNote = el("p", { class: "note", text: "roles over data: measuring…" });
    this.section.append(
      el("h3", { text: "tokens" }), this.tokens,
      el("h3", { text: "next token" }), this.next,
      el("h3", { text: "attention: every layer and head (tick “off” to switch a head off in every view)" }), this.rolesNote,
      this.grid, this.largeTitle, el("div", { class: "large-box" }, this.large), this.reads,
      el("h3", { text: "logit lens: the top token read from the stream after each block" }), this.lens,
      el("h3", { text: "activation patching on built-in minimal pairs" }), el("div", { class: "row" }, phenomenon, patchButton),
      this.patchOut,
      el("h3", { text: "sampled continuation" }), this.sampleOut);
    root.append(this.section);
  }

  async loadRoles() {
    try {
      this.overData = await (await api(`api/runs/${this.info.index}/roles`)).json();
      this.rolesNote.textContent = `roles over data (“over data” below): ${this.overData.note}`;
      if (this.view) this.drawGrid();
    } catch (e) {
      this.rolesNote.textContent = `roles over data: ${e.message}`;
    }
  }

  async update(asked) {
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    const body = { ...asked, ablate: ablateList(this.ablate) };
    let view;
    try {
      view = await (await api(`api/runs/${this.info.index}/view`, body, this.controller.signal)).json();
    } catch (e) {
      if (e.name === "AbortError") return;
      throw new Error(`${this.info.name}: ${e.message}`);
    }
    this.view = view;
    this.weights = decodeWeights(view.attention);
    if (this.query >= view.tokens.length || this.query < 0) this.query = view.tokens.length - 1;
    this.draw();
  }

  draw() {
    this.drawTokens();
    this.drawNext();
    this.drawGrid();
    this.drawLarge();
    drawLens(this.lens, this.view.lens, this.view.tokens);
  }

  drawTokens() {
    const spans = this.view.tokens.map((token, i) => el("span", {
      class: i === this.query ? "token query" : "token", text: shown(token), title: `token ${i}: id ${this.view.token_ids[i]}`,
      onclick: () => { this.query = i; this.drawTokens(); this.drawLarge(); } }));
    this.tokens.replaceChildren(...spans);
    if (this.view.cut) this.tokens.append(el("span", { class: "note", text: ` (the last ${this.view.block_size} tokens)` }));
  }

  drawNext() {
    const next = this.view.next;
    const ablated = this.view.ablated.length > 0;
    const head = el("tr", {}, el("th", { text: "token" }), el("th", { text: "probability" }), el("th", { text: "p" }),
      el("th", { text: "at temperature 1" }));
    if (ablated) head.append(el("th", { text: "intact" }), el("th", { text: "change" }));
    const rows = next.top.map((entry) => {
      const bar = el("div", { class: "bar" });
      bar.style.width = `${(100 * entry.p).toFixed(1)}%`;
      const row = el("tr", {}, el("td", { class: "tok", text: shown(entry.token) }), el("td", { class: "barcell" }, bar),
        el("td", { class: "num", text: percent(entry.p) }), el("td", { class: "num", text: percent(entry.p_raw) }));
      if (ablated) {
        const delta = entry.p - entry.p_intact;
        row.append(el("td", { class: "num", text: percent(entry.p_intact) }),
          el("td", { class: `num change ${delta >= 0 ? "up" : "down"}`, "data-change": String(delta),
            text: `${delta >= 0 ? "+" : ""}${(100 * delta).toFixed(Math.abs(delta) < 0.001 ? 3 : 1)}` }));
      }
      return row;
    });
    const caption = el("caption", { text: ablated
      ? `with ${offCaption(this.view.ablated)} off: total variation ${percent(next.total_variation)} from the intact model`
      : "the intact model" });
    this.next.replaceChildren(caption, head, ...rows);
  }

  roleOverData(layer, head) {
    if (!this.overData || !this.overData.heads) return null;
    return this.overData.heads.find((h) => h.layer === layer && h.head === head) || null;
  }

  drawGrid() {
    const maps = this.info.maps;
    headGrid(this.grid, this.weights, maps, { size: 72, selected: this.selected, ablate: this.ablate,
      onSelect: (map, head) => this.select(map, head),
      describe: (i, head) => {
        const role = this.view.roles.find((r) => r.layer === i && r.head === head);
        const over = this.roleOverData(i, head);
        return [el("span", { class: "role", text: `here: ${!role || role.role === "mixed" ? "mixed" : `${role.role} ${role.score.toFixed(2)}`}` }),
          el("span", { class: "role data", text: over ? `over data: ${over.role}` : "over data: …" })];
      } });
  }

  select(map, head) {
    this.selected = { map, head };
    this.drawGrid();
    this.drawLarge();
  }

  drawLarge() {
    const { map, head } = this.selected;
    const index = Math.max(0, this.info.maps.findIndex((m) => m.name === map));
    const matrix = headMatrix(this.weights, index, head);
    this.largeTitle.textContent = `${map} head ${head}: rows read, columns are read (click a token above)`;
    const cell = drawMatrix(this.large, matrix, 360);
    const context = this.large.getContext("2d");  // the row of the token chosen above
    context.strokeStyle = "#e8590c"; context.lineWidth = 2;
    context.strokeRect(1, this.query * cell + 1, this.large.width - 2, cell - 2);
    const tokens = this.view.tokens;
    const q = this.query;
    const row = [];
    for (let k = 0; k <= q; k++) row.push([k, matrix.at(q, k)]);
    row.sort((a, b) => b[1] - a[1]);
    const items = row.slice(0, 5).map(([k, w]) => el("li", {}, el("span", { class: "tok", text: shown(tokens[k]) }),
      el("span", { class: "num", text: ` ${percent(w)} (token ${k})` })));
    this.reads.replaceChildren(el("li", { class: "what", text: `what “${shown(tokens[q])}” (token ${q}) reads:` }), ...items);
  }

  async sample(asked, maxNew) {
    this.sampleOut.textContent = "";
    const body = { ...asked, max_new_tokens: maxNew, ablate: ablateList(this.ablate) };
    const response = await api(`api/runs/${this.info.index}/sample`, body);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    this.sampleOut.append(el("span", { class: "prompt", text: asked.text }));
    const written = el("span", { class: "written" });
    this.sampleOut.append(written);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!frame.startsWith("data: ")) continue;
        const event = JSON.parse(frame.slice(6));
        if (event.piece !== undefined) written.textContent += event.piece;
        if (event.error) throw new Error(`${this.info.name}: ${event.error}`);
      }
    }
  }
}

async function loadPatch(info, box, phenomenon) {
  box.replaceChildren(el("p", { class: "note", text: `patching ${phenomenon} pairs…` }));
  try {
    drawPatch(box, await (await api(`api/runs/${info.index}/patch`, { phenomenon })).json());
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

// The patching grids: one table per grid, each cell the recovered fraction (blue: carries the answer).
function drawPatch(box, report) {
  const parts = [el("p", { class: "note", text:
    `${report.pairs} ${report.phenomenon} pairs, e.g. clean “${report.example.clean}” → “${report.example.good}”, corrupt “${report.example.corrupt}” → “${report.example.bad}”. Each cell: the share of the clean answer's logit difference that patching it back restores.` })];
  for (const note of report.notes) parts.push(el("p", { class: "note", text: note }));
  for (const grid of report.grids) {
    const table = el("table", { class: "patch-grid" }, el("caption", { text: grid.title }),
      el("tr", {}, el("th", { text: "" }), ...grid.columns.map((c) => el("th", { text: c }))));
    grid.rows.forEach((row, r) => {
      table.append(el("tr", {}, el("th", { text: row }), ...grid.columns.map((_, c) => {
        const v = grid.mean[r][c];
        const cell = el("td", { class: "num", text: v === null ? "–" : v.toFixed(2),
          title: v === null ? "no pair has this place" : `95% interval ${grid.low[r][c]} .. ${grid.high[r][c]}` });
        if (v !== null) {
          const w = Math.min(1, Math.abs(v));
          cell.style.background = v >= 0 ? `rgb(${blue(w).join(",")})` : `rgb(255,${Math.round(255 - 150 * w)},${Math.round(255 - 150 * w)})`;
          if (w > 0.6) cell.style.color = "#fff";
        }
        return cell;
      })));
    });
    parts.push(table);
  }
  box.replaceChildren(...parts);
}

// ---------------------------------------------------------------------------------------------- a run that reads a source

// Any architecture whose forward reads a source sentence (info.reads_source): its cross-attention maps, however
// many and however many heads each, against the gold links; its decoder's own attention and logit lens when it
// has them.
class PairRun {
  constructor(info, root) {
    this.info = info;
    this.answer = null;
    this.selected = null;
    this.ablate = new Set();
    this.maps = { cross: info.maps.filter((m) => m.kind === "cross"), self: info.maps.filter((m) => m.kind === "self") };
    this.build(root);
  }

  build(root) {
    const info = this.info;
    this.section = el("section", { class: "run pair", "data-run": info.index, "aria-label": `run ${info.name}` });
    const examples = el("div", { class: "row" }, el("span", { text: "built-in sentences (with gold links): " }),
      ...info.examples.map((sentence) => el("button", { type: "button", class: "example", text: sentence,
        onclick: () => { document.getElementById("text").value = sentence; changed(); } })));
    this.translation = el("dl", { class: "translation" });
    this.best = el("p", { class: "best" });
    this.written = el("table", { class: "written lens" });
    this.grid = el("div", { class: "head-grid cross" });
    this.large = el("canvas", { class: "large", "aria-label": "the selected cross-attention head" });
    this.largeTitle = el("h4");
    this.labels = el("p", { class: "note" });
    this.selfGrid = el("div", { class: "head-grid self" });
    this.lens = el("table", { class: "lens" });
    this.patchOut = el("div", { class: "patch" });
    const phenomenon = el("select", { "aria-label": "source pairs to patch" });
    for (const p of info.phenomena) phenomenon.append(el("option", { value: p, text: p }));
    const patchButton = el("button", { type: "button", text: "patch", onclick: () => loadPatch(info, this.patchOut, phenomenon.value) });
    this.section.append(el("h2", { text: info.name }), el("p", { class: "shape", text: `${info.noun} · ${info.shape}` }),
      examples, el("h3", { text: "translation" }), this.translation, this.best,
      el("h4", { text: "the probability of each token written (teacher forcing)" }), this.written,
      el("h3", { text: "cross-attention: every map and head (rows: target tokens written; columns: source tokens)" }),
      this.grid, this.largeTitle, el("div", { class: "large-box" }, this.large), this.labels);
    if (this.maps.self.length) {
      this.section.append(el("h3", { text: "the decoder's self-attention (rows read the translation so far)" }), this.selfGrid);
    }
    if (info.lens) {
      this.section.append(el("h3", { text: "logit lens of the decoder, given the source: the top token after each block" }), this.lens);
    }
    this.section.append(el("h3", { text: "activation patching on built-in source pairs" }),
      el("div", { class: "row" }, phenomenon, patchButton), this.patchOut);
    root.append(this.section);
  }

  async update(asked) {
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    let answer;
    try {
      answer = await (await api(`api/runs/${this.info.index}/translate`, { sentence: asked.text, ablate: ablateList(this.ablate) },
        this.controller.signal)).json();
    } catch (e) {
      if (e.name === "AbortError") return;
      throw new Error(`${this.info.name}: ${e.message}`);
    }
    this.answer = answer;
    const groups = answer.attention ? answer.attention.groups : {};
    this.weights = groups.cross ? decodeWeights(groups.cross.weights) : null;
    this.selfWeights = groups.self ? decodeWeights(groups.self.weights) : null;
    if (answer.alignment) this.selected = { map: answer.alignment.best.map, head: answer.alignment.best.head };
    else if (!this.selected && this.maps.cross.length) this.selected = { map: this.maps.cross[this.maps.cross.length - 1].name, head: 0 };
    this.draw();
  }

  draw() {
    const a = this.answer;
    const off = a.ablated.length > 0;
    const items = [el("dt", { text: "source" }), el("dd", { text: a.source }),
      el("dt", { text: off ? `the model's translation with ${offCaption(a.ablated)} off` : "the model's translation" }),
      el("dd", { class: "model-translation", text: a.translation || "(nothing)" })];
    if (off) items.push(el("dt", { text: "the intact model's" }), el("dd", { class: "intact-translation", text: a.translation_intact || "(nothing)" }));
    if (a.reference) items.push(el("dt", { text: "the built-in corpus's translation" }), el("dd", { text: a.reference }));
    this.translation.replaceChildren(...items);
    if (a.alignment) {
      const best = a.alignment.best;
      this.best.textContent = `best-aligned head: ${best.map} head ${best.head}, alignment error rate ${best.aer.toFixed(3)} against the gold links (random heads ${a.alignment.random_aer.toFixed(3)}); attention read on the corpus's translation`;
    } else {
      this.best.textContent = a.note || "not a sentence of the built-in grammar: no gold links to score the heads against";
    }
    if (!a.attention) {
      for (const box of [this.grid, this.selfGrid, this.written, this.lens]) box.replaceChildren();
      this.large.width = 0; this.large.height = 0;
      this.largeTitle.textContent = "";
      return;
    }
    this.drawWritten();
    const aer = new Map((a.alignment ? a.alignment.heads : []).map((h) => [`${h.map}|${h.head}`, h.aer]));
    const select = (map, head) => { this.selected = { map, head }; this.draw(); };
    if (this.weights) {
      headGrid(this.grid, this.weights, this.maps.cross, { size: 96, selected: this.selected, ablate: this.ablate, onSelect: select,
        describe: (i, head) => {
          const score = aer.get(`${this.maps.cross[i].name}|${head}`);
          return [el("span", { class: "role", text: score === undefined ? "" : `AER ${score.toFixed(3)}` })];
        } });
      this.drawLarge();
    }
    if (this.selfWeights) {
      headGrid(this.selfGrid, this.selfWeights, this.maps.self, { size: 72, selected: null, ablate: this.ablate,
        onSelect: () => {}, describe: () => [] });
    }
    if (a.lens) drawLens(this.lens, a.lens, a.attention.target_tokens);
  }

  drawWritten() {
    const a = this.answer;
    const off = a.written_p_intact !== undefined;
    const rows = [el("tr", {}, el("th", { text: "written" }), ...a.attention.written.map((t) => el("th", { class: "tok", text: shown(t) }))),
      el("tr", {}, el("th", { text: off ? "p, heads off" : "p" }), ...a.written_p.map((p) => el("td", { class: "num", text: percent(p) })))];
    if (off) {
      rows.push(el("tr", {}, el("th", { text: "p, intact" }), ...a.written_p_intact.map((p) => el("td", { class: "num", text: percent(p) }))));
    }
    this.written.replaceChildren(...rows);
  }

  goldCells() {
    const att = this.answer.attention;
    const marks = [];
    for (const [sourceWord, targetWord] of this.answer.gold) {
      att.target_words.forEach((tw, q) => {
        if (tw !== targetWord) return;
        att.source_words.forEach((sw, k) => { if (sw === sourceWord) marks.push([q, k]); });
      });
    }
    return marks;
  }

  drawLarge() {
    const { map, head } = this.selected;
    const att = this.answer.attention;
    const index = Math.max(0, this.maps.cross.findIndex((m) => m.name === map));
    const matrix = headMatrix(this.weights, index, head);
    const cell = drawMatrix(this.large, matrix, 420, this.goldCells());
    this.large.dataset.cell = String(cell);
    this.largeTitle.textContent = `${map} head ${head}` + (this.answer.gold.length ? " (orange: the gold word links)" : "");
    this.labels.textContent = `rows: ${att.written.map(shown).join(" ")} — columns: ${att.source_tokens.map(shown).join(" ")}`;
  }
}

// ---------------------------------------------------------------------------------------------- start

async function sampleAll() {
  const button = document.getElementById("sample");
  button.disabled = true;
  try {
    const maxNew = parseInt(document.getElementById("max-new").value, 10) || 60;
    const asked = controls();
    await Promise.all(state.runs.filter((run) => run.sample).map((run) => run.sample(asked, maxNew)));
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
  let runs;
  try {
    runs = (await (await api("api/runs")).json()).runs;
  } catch (e) {
    showError(e.message);
    document.getElementById("status").textContent = "not connected";
    return;
  }
  const root = document.getElementById("runs");
  root.style.gridTemplateColumns = `repeat(${runs.length}, minmax(0, 1fr))`;
  state.runs = runs.map((info) => (info.reads_source ? new PairRun(info, root) : new GptRun(info, root)));
  const text = document.getElementById("text");
  text.maxLength = Math.min(...runs.map((r) => r.max_text_chars));
  text.value = runs.every((r) => r.reads_source) ? runs[0].examples[0]
    : "The little dog sees the big red ball. The dog";
  for (const id of ["text", "temperature", "top-k", "top-p"]) document.getElementById(id).addEventListener("input", changed);
  document.getElementById("sample").addEventListener("click", sampleAll);
  document.getElementById("sample").hidden = runs.every((r) => r.reads_source);
  window.minitx.ready = true;
  changed();
}

start();
