"""Activation patching: run the corrupt prompt, put in the clean run's activation at one place, and see how
much of the clean answer comes back.

With Δ = logit[good] - logit[bad] at the last position (`minitx.inspect.contrasts`), one place patched gives

    recovered = (Δ_patched - Δ_corrupt) / (Δ_clean - Δ_corrupt)        0: the place carries nothing
                                                                       1: it carries all the difference

Places: the residual stream at every point (after the embedding, after each block) and position
column; every head's output (its `hook_z`, at all positions); every MLP's output. The
ends are exact: patching the whole stream at one point gives 1, patching nothing 0 (tests, ≤ 1e-5).
Over N pairs the fraction is Σ(Δ_patched - Δ_corrupt) / Σ(Δ_clean - Δ_corrupt) -- a ratio of sums,
which a pair with a tiny denominator cannot blow up -- with a 95% bootstrap interval over pairs.

Batched: every (pair, place) is one row of one batch, and hooks rewrite each row at its own place, so
a whole grid costs a few forward passes. Prompts of different lengths share a batch padded on the
right: the model is causal, so the padding never reaches the last real position, where Δ is read.
The pass stops at the final norm (Δ needs only two rows of the output layer).

On an encoder-decoder the places are the decoder's -- its stream at every point and target position,
its self-attention heads, its cross-attention heads, its MLPs -- and a contrast usually differs in the
*source* only ("The big dog sees ..." against "The big cat sees ...", the translation so far fixed):
the decoder's inputs are then identical, the stream after the embedding carries nothing (0 exactly),
and whatever the decoder knows of the changed word arrives through cross-attention heads first.
Sources need not have the same token length (the decoder's places do not depend on it); within a
batch they are padded and the padding is masked, as in training.

Encoder-side places ask which *source positions* carry the difference: the encoder's stream at every
point (its embedding, after each encoder block) at the source positions of one label, taken from the
clean run, the rest of the run corrupt. The last point at a position is the memory there (the
encoder's final norm acts on each position alone), so its row says which positions of the memory the
cross-attention reads the answer from; patching every position at any point gives the clean run
exactly (1), patching none the corrupt one (0). Position p of one source has to be position p of the
other, so these places exist only for a pair whose sources have the same token length (a noun swapped
for one of the same length); the others are left out of those cells, and a report with no such pair
has no encoder grids and says why (`PatchReport.notes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from minitx.inspect.lens import point_names
from minitx.inspect.residual import Reading, Stack, decoder_stack, encoder_stack, source_batch

if TYPE_CHECKING:
    from minitx.inspect.contrasts import Contrast
    from minitx.model import GPT
    from minitx.model.encoder_decoder import EncoderDecoder

#: Rows × positions × width of activations one batch holds at most (a batch's activations stay within a few hundred MB).
BATCH_ELEMENTS = 2**21
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Place:
    """Where one patch goes. kind "resid": stream point `layer` (0 = embedding), positions labelled `label`
    (None: all); kind "head": head `head` of `attention` in block `layer`, all positions; kind "mlp": block
    `layer`'s MLP output, all positions; kind "source": the *encoder's* stream point `layer` (0 = the source
    embedding, the last = the memory), source positions labelled `label` (a contrast's `source_labels`;
    None: all); kind "none": nothing (the unpatched run)."""

    kind: str
    layer: int = 0
    head: int = 0
    attention: str = "attn"
    label: str | None = None


@dataclass
class PatchGrid:
    """Recovered fraction per cell: rows × columns, with its 95% interval and the pairs that had the cell."""

    title: str
    rows: list[str]
    columns: list[str]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray


@dataclass
class PatchReport:
    """Every grid of one patching run, the clean and corrupt Δ per pair, and notes on grids left out or
    made from fewer pairs (encoder-side grids need sources of the same length)."""

    n_pairs: int
    clean: np.ndarray  # Δ_clean per pair
    corrupt: np.ndarray  # Δ_corrupt per pair
    grids: list[PatchGrid] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def grid(self, title_start: str) -> PatchGrid:
        return next(g for g in self.grids if g.title.startswith(title_start))


def _padded(rows: list[list[int]]) -> Tensor:
    """Right-padded ids [R, T_max] (the pad repeats each row's last id; causality keeps it unseen)."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], dtype=torch.long)


def source_labels(contrast: Contrast) -> list[str]:
    """The encoder-side grids' column of each source position: the contrast's `source_labels`, else the
    position's number."""
    assert contrast.clean_source is not None
    return contrast.source_labels or [str(t) for t in range(len(contrast.clean_source))]


def same_length(contrast: Contrast) -> bool:
    """Whether the encoder-side places exist for this pair: both sources have the same token length."""
    return contrast.clean_source is not None and len(contrast.clean_source) == len(contrast.corrupt_source or [])


def _label_masks(contrasts: list[Contrast], width: int, source: bool = False) -> dict[str, Tensor]:
    """label -> [N, T_max] bool: which positions of each pair carry the label (`source`: which source positions
    carry the source label, for the pairs with sources of the same length)."""
    masks: dict[str, Tensor] = {}
    for n, contrast in enumerate(contrasts):
        if source and not same_length(contrast):
            continue
        for t, label in enumerate(source_labels(contrast) if source else contrast.labels):
            masks.setdefault(label, torch.zeros(len(contrasts), width, dtype=torch.bool))[n, t] = True
    return masks


def _reading(contrasts: list[Contrast], side: str) -> Reading:
    """The "clean" or "corrupt" side of every contrast as one batch: ids right-padded, sources (if any) padded to
    the longest of either side (so that source position p is the same column in both batches)."""
    ids = _padded([getattr(c, side) for c in contrasts])
    sources = [getattr(c, f"{side}_source") for c in contrasts]
    if sources[0] is None:
        return Reading(ids)
    width = max(len(s) for c in contrasts for s in (c.clean_source or [], c.corrupt_source or []))
    return Reading(ids, *source_batch(sources, width))


def _activation_names(model: GPT | EncoderDecoder, stack: Stack, inputs: Reading) -> dict[tuple, str]:
    """Every patchable activation's key and hook name: ("resid", p) the stream point p, ("heads", name, l) the
    heads' outputs `hook_z` of attention `name` in block l, ("mlp", l) block l's MLP output; and ("source", p)
    the encoder's stream point p when `inputs` has a source."""
    names: dict[tuple, str] = {("resid", point): stack.stream(point) for point in range(stack.n_layers + 1)}
    for layer in range(stack.n_layers):
        for name, _ in stack.attentions(layer):
            names["heads", name, layer] = stack.name(layer, f"{name}.hook_z")
        names["mlp", layer] = stack.name(layer, "hook_mlp_out")
    if inputs.source is not None:
        encoder = encoder_stack(model)
        names.update({("source", point): encoder.stream(point) for point in range(encoder.n_layers + 1)})
    return names


@torch.no_grad()
def clean_activations(model: GPT | EncoderDecoder, stack: Stack, inputs: Reading | Tensor) -> dict[tuple, Tensor]:
    """Every patchable activation of a run on `inputs` (ids [N, T], and a source for an encoder-decoder):
    ("resid", p) [N,T,C], ("heads", name, l) [N,T,H,hd], ("mlp", l) [N,T,C]; and the encoder's stream
    ("source", p) [N,S,C] for an encoder-decoder."""
    inputs = inputs if isinstance(inputs, Reading) else Reading(inputs)
    names = _activation_names(model, stack, inputs)
    _, cache = model.run_with_cache(*inputs.args(), names=list(names.values()))
    return {key: cache[name] for key, name in names.items()}


@torch.no_grad()
def patched_differences(model: GPT | EncoderDecoder, contrasts: list[Contrast], places: list[Place], *,
                        chunk_rows: int | None = None) -> np.ndarray:
    """Δ for every pair × place: each corrupt prompt run with its clean run's activation put in at each place;
    [N, n_places] float64, nan where a pair lacks the place's label. `chunk_rows`: rows per batch (default:
    as many as BATCH_ELEMENTS allows)."""
    stack = decoder_stack(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n = len(contrasts)
    corrupt = _reading(contrasts, "corrupt").to(device)
    width = corrupt.ids.shape[1]
    clean = _reading(contrasts, "clean").to(device)
    label_masks = {k: v.to(device) for k, v in _label_masks(contrasts, width).items()}
    source_masks = ({} if corrupt.source is None else
                    {k: v.to(device) for k, v in _label_masks(contrasts, corrupt.source.shape[1], True).items()})
    lasts = torch.tensor([len(c.corrupt) - 1 for c in contrasts], device=device)
    weight = stack.unembed.weight
    direction = weight[[c.good for c in contrasts]] - weight[[c.bad for c in contrasts]]  # [N, C]
    bias = getattr(stack.unembed, "bias", None)
    offset = (bias[[c.good for c in contrasts]] - bias[[c.bad for c in contrasts]]) if bias is not None else None

    def has(i: int, place: Place) -> bool:
        if place.kind == "source" and not same_length(contrasts[i]):
            return False
        masks = source_masks if place.kind == "source" else label_masks
        return place.label is None or bool(masks.get(place.label, torch.zeros(n, 1, dtype=torch.bool))[i].any())

    rows = [(i, j) for j, place in enumerate(places) for i in range(n) if has(i, place)]
    out = np.full((n, len(places)), np.nan)
    longest = max(width, corrupt.source.shape[1] if corrupt.source is not None else 0)  # the encoder's too
    chunk = chunk_rows or max(1, BATCH_ELEMENTS // (longest * stack.n_heads * stack.head_dim))
    try:
        acts = clean_activations(model, stack, clean)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            pair = torch.tensor([i for i, _ in part], device=device)
            values = _run_rows(model, stack, corrupt.rows(pair), acts, pair, [places[j] for _, j in part],
                               label_masks, lasts[pair], source_masks)
            delta = (values.double() * direction[pair].double()).sum(-1)
            if offset is not None:
                delta = delta + offset[pair].double()
            for (i, j), value in zip(part, delta.cpu().tolist(), strict=True):
                out[i, j] = value
    finally:
        model.train(was_training)
    return out


def _run_rows(model: GPT | EncoderDecoder, stack: Stack, inputs: Reading, acts: dict[tuple, Tensor], pair: Tensor,
              places: list[Place], label_masks: dict[str, Tensor], lasts: Tensor,
              source_masks: dict[str, Tensor] | None = None) -> Tensor:
    """One batch: row r is the corrupt input of pair[r] patched at places[r]; returns ln_f's output at each
    row's last position [R, C]."""
    rows, width = inputs.ids.shape
    device = inputs.ids.device
    stream_masks: dict[int, Tensor] = {}
    encoder_masks: dict[int, Tensor] = {}
    head_masks: dict[tuple[str, int], Tensor] = {}
    mlp_masks: dict[int, Tensor] = {}
    for r, place in enumerate(places):
        if place.kind in ("resid", "source"):
            into, labelled, columns = ((stream_masks, label_masks, width) if place.kind == "resid" else
                                       (encoder_masks, source_masks or {}, inputs.source.shape[1]))
            mask = into.setdefault(place.layer, torch.zeros(rows, columns, dtype=torch.bool, device=device))
            mask[r] = True if place.label is None else labelled[place.label][pair[r]]
        elif place.kind == "head":
            key = (place.attention, place.layer)
            head_masks.setdefault(key, torch.zeros(rows, stack.n_heads, dtype=torch.bool, device=device))[
                r, place.head] = True
        elif place.kind == "mlp":
            mlp_masks.setdefault(place.layer, torch.zeros(rows, dtype=torch.bool, device=device))[r] = True

    # Each hook rewrites only the rows patched there (rows are grouped by place, so a batch has few places).
    def stream_patcher(key: tuple, mask: Tensor) -> Any:
        """The clean run's stream (decoder "resid" or encoder "source") at the masked positions of the rows
        patched at that point."""
        which = mask.any(-1).nonzero()[:, 0]

        def patch_stream(x: Tensor, _name: str) -> Tensor:
            x = x.clone()
            x[which] = torch.where(mask[which][..., None], acts[key][pair[which]], x[which])
            return x

        return patch_stream

    def heads_patcher(key: tuple, mask: Tensor) -> Any:
        """The clean run's output of the masked heads ([B, T, H, hd] at `hook_z`), in the rows patched there."""
        which = mask.any(-1).nonzero()[:, 0]

        def patch_heads(z: Tensor, _name: str) -> Tensor:
            z = z.clone()
            z[which] = torch.where(mask[which][:, None, :, None], acts[key][pair[which]], z[which])
            return z

        return patch_heads

    def mlp_patcher(key: tuple, which: Tensor) -> Any:
        def patch_mlp(output: Tensor, _name: str) -> Tensor:
            output = output.clone()
            output[which] = acts[key][pair[which]]
            return output

        return patch_mlp

    names = _activation_names(model, stack, inputs)
    fwd_hooks = [(names["resid", point], stream_patcher(("resid", point), mask))
                 for point, mask in stream_masks.items()]
    fwd_hooks += [(names["source", point], stream_patcher(("source", point), mask))
                  for point, mask in encoder_masks.items()]
    fwd_hooks += [(names["heads", name, layer], heads_patcher(("heads", name, layer), mask))
                  for (name, layer), mask in head_masks.items()]
    fwd_hooks += [(names["mlp", layer], mlp_patcher(("mlp", layer), mask.nonzero()[:, 0]))
                  for layer, mask in mlp_masks.items()]
    final: dict[str, Tensor] = {}

    def keep_final(x: Tensor, _name: str) -> None:
        final["x"] = x[torch.arange(rows, device=device), lasts]  # [R, C]

    # The pass ends at the final norm's output: Δ needs only two rows of the output layer, taken by the caller.
    model.run_with_hooks(*inputs.args(), fwd_hooks=[*fwd_hooks, (stack.final, keep_final)], stop_at=stack.final)
    return final["x"]


def residual_places(n_points: int, labels: list[str]) -> list[Place]:
    """The residual grid's places, row by row: every stream point × every label column."""
    return [Place("resid", point, label=label) for point in range(n_points) for label in labels]


def fractions(patched: np.ndarray, clean: np.ndarray, corrupt: np.ndarray, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Recovered fraction per place as a ratio of sums over the pairs that have it, and its 95% bootstrap
    interval: (mean, low, high, counts), each [n_places]."""
    have = ~np.isnan(patched)  # [N, P]
    gain = np.where(have, patched - corrupt[:, None], 0.0)
    span = np.where(have, (clean - corrupt)[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = gain.sum(0) / span.sum(0)
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(clean), size=(BOOTSTRAP_RESAMPLES, len(clean)))
        resampled = gain[picks].sum(1) / span[picks].sum(1)  # [resamples, P]
        low, high = np.nanquantile(resampled, [0.025, 0.975], axis=0) if len(clean) > 1 else (mean, mean)
    return mean, low, high, have.sum(0)


def patch(model: GPT | EncoderDecoder, contrasts: list[Contrast], *, seed: int = 0) -> PatchReport:
    """Patch every place of the grids (residual × position column, heads -- and cross-attention heads on an
    encoder-decoder -- and MLPs) for `contrasts`; on an encoder-decoder also the encoder's output (memory) and
    its stream × source position column, over the pairs whose sources have the same length."""
    stack = decoder_stack(model)
    columns = _ordered_labels(contrasts)
    points = point_names(stack.n_layers)
    head_places = [(name, layer, head) for layer in range(stack.n_layers) for name, _ in stack.attentions(layer)
                   for head in range(stack.n_heads)]
    encoder = contrasts[0].clean_source is not None
    even = [c for c in contrasts if same_length(c)] if encoder else []
    source_columns = _ordered_labels(even, source=True)
    source_points = point_names(len(encoder_stack(model).blocks)) if even else []
    places = [Place("none"), *residual_places(len(points), columns),
              *(Place("head", layer, head, name) for name, layer, head in head_places),
              *(Place("mlp", layer) for layer in range(stack.n_layers)),
              *(Place("source", point, label=label) for point in range(len(source_points))
                for label in source_columns)]
    patched = patched_differences(model, contrasts, places)
    corrupt = patched[:, 0]
    clean = patched_differences(model, _swapped(contrasts), [Place("none")])[:, 0]  # the clean prompt unpatched
    mean, low, high, counts = fractions(patched, clean, corrupt, seed)
    report = PatchReport(len(contrasts), clean, corrupt)

    def grid(title: str, rows: list[str], cols: list[str], cells: slice) -> PatchGrid:
        shape = (len(rows), len(cols))
        return PatchGrid(title, rows, cols, *(a[cells].reshape(shape) for a in (mean, low, high, counts)))

    first = 1
    n_res = len(points) * len(columns)
    report.grids.append(grid("residual stream", points, columns, slice(first, first + n_res)))
    first += n_res
    for name in dict.fromkeys(name for name, _, _ in head_places):
        layers = sorted({layer for n, layer, _ in head_places if n == name})
        size = len(layers) * stack.n_heads
        title = "heads" if name == "attn" else "cross-attention heads"
        report.grids.append(grid(title, [f"layer {layer}" for layer in layers],
                                 [f"head {h}" for h in range(stack.n_heads)], slice(first, first + size)))
        first += size
    report.grids.append(grid("MLPs", [f"layer {layer}" for layer in range(stack.n_layers)], ["mlp"],
                             slice(first, first + stack.n_layers)))
    first += stack.n_layers
    if even:
        n_source = len(source_points) * len(source_columns)
        # The memory is the last point's stream through the encoder's final norm, position by position: the
        # memory row is the stream grid's last row, measured once.
        last = slice(first + n_source - len(source_columns), first + n_source)
        report.grids.append(grid("encoder output (memory)", ["memory"], source_columns, last))
        report.grids.append(grid("encoder stream", source_points, source_columns, slice(first, first + n_source)))
        if len(even) < len(contrasts):
            report.notes.append(f"encoder grids: {len(even)} of {len(contrasts)} pairs (the other pairs' two sources "
                                "differ in token length, so a source position of one is not one of the other)")
    elif encoder:
        lengths = f" ({len(contrasts[0].clean_source or [])} and {len(contrasts[0].corrupt_source or [])} tokens)"
        report.notes.append("no encoder grids: patching a source position needs the two sources to have the same "
                            f"token length{lengths if len(contrasts) == 1 else ' in at least one pair'}; the "
                            "decoder's grids above do not depend on it")
    return report


def _ordered_labels(contrasts: list[Contrast], source: bool = False) -> list[str]:
    """Every label (`source`: every source label) in the order it first appears (role labels keep their fixed
    order)."""
    from minitx.inspect.contrasts import LABEL_ORDER, SOURCE_LABELS

    order = SOURCE_LABELS if source else LABEL_ORDER
    seen = list(dict.fromkeys(label for c in contrasts for label in (source_labels(c) if source else c.labels)))
    return sorted(seen, key=lambda label: order.index(label) if label in order else len(order))


def _swapped(contrasts: list[Contrast]) -> list[Contrast]:
    """The same contrasts with the clean input in the corrupt slot (to run it unpatched)."""
    from dataclasses import replace

    return [replace(c, corrupt=c.clean, corrupt_source=c.clean_source) for c in contrasts]
