"""What an encoder-decoder attends to, and how well each cross-attention head aligns the words.

One sentence pair is read with teacher forcing: the encoder reads the source (and its end token), the
decoder reads b y_1 .. y_m, and every attention's weights are kept (`capture_pair`):

    encoder  [L][H, S, S]   bidirectional self-attention over the source
    decoder  [L][H, T, T]   masked self-attention over the target so far
    cross    [L][H, T, S]   queries from the target, keys from the source: not square

Decoder query t reads y_0..y_t and writes y_{t+1}, so for alignment a cross-attention row is the
target token it writes. A head's links are each target word's most-attended source word (tokens
pooled to words, evaluation/translation.py); its AER against the gold links, summed over pairs, is
set beside heads whose weights are random (Dirichlet(1) rows): a head far below them aligns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from minitx.evaluation.translation import (
    Link,
    alignment_error_rate,
    attention_to_links,
    corpus_alignment_error_rate,
    random_head_links,
    token_to_word,
)

if TYPE_CHECKING:
    from minitx.model.encoder_decoder import EncoderDecoder
    from minitx.text.tokenizer import Tokenizer

KINDS = ("encoder", "decoder", "cross")
#: Draws of the random-head baseline (each one AER over all the pairs).
RANDOM_DRAWS = 20


@dataclass
class PairCapture:
    """The attention of every layer and head of an encoder-decoder reading one pair (see the module docstring).

    `source_tokens` are the encoder's tokens (the end token last); `target_tokens` the decoder's inputs
    (the start token first); `written` the token each decoder query writes (the end token last).
    `source_words`, `target_words`: the word each token belongs to (-1: none, e.g. the end token).
    """

    source: str
    target: str
    source_tokens: list[str]
    target_tokens: list[str]
    written: list[str]
    source_words: list[int]
    target_words: list[int]
    weights: dict[str, list[np.ndarray]]  # kind -> per layer [H, Tq, Tk]
    pos: str
    encoder_pos: str

    @property
    def n_heads(self) -> int:
        return self.weights["cross"][0].shape[0]

    def head_links(self, layer: int, head: int) -> list[Link]:
        """The head's links (source word, target word): each target word's most-attended source word."""
        return attention_to_links(self.weights["cross"][layer][head], self.source_words, self.target_words)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "source_tokens": self.source_tokens,
                "target_tokens": self.target_tokens, "written_tokens": self.written,
                "source_words": self.source_words, "target_words": self.target_words,
                "pos": self.pos, "encoder_pos": self.encoder_pos,
                "attention": {kind: [np.round(w, 4).tolist() for w in layers] for kind, layers in self.weights.items()}}


def _token_maps(tokenizer: Tokenizer, text: str, ids: Sequence[int]) -> list[int]:
    return token_to_word(text, [tokenizer.token_bytes(i) for i in ids])


@torch.no_grad()
def capture_pair(model: EncoderDecoder, tokenizer: Tokenizer, source: str, target: str) -> PairCapture:
    """Read `source` -> `target` with teacher forcing and keep every attention weight (see the module docstring)."""
    from minitx.errors import UserError
    from minitx.model.encoder_decoder import pad_sources
    from minitx.model.inputs import end_token
    from minitx.text.special import DOC_TOKEN

    boundary = end_token(tokenizer)
    source, target = source.strip(), target.strip()
    source_ids, target_ids = tokenizer.encode(source), tokenizer.encode(target)
    if not source_ids or not target_ids:
        raise UserError("the source and the target must both have text")
    block = model.config.block_size
    if len(source_ids) + 1 > block or len(target_ids) + 1 > block:
        raise UserError(f"the pair is {len(source_ids)} + {len(target_ids)} tokens, but the model reads at most "
                        f"{block - 1} per side (its block size less the end token); give a shorter sentence")
    device = next(model.parameters()).device
    src, padding = (t.to(device) for t in pad_sources([source_ids], boundary))
    target_in = torch.tensor([[boundary] + target_ids], device=device)  # [1, T]
    model.eval()
    _, cache = model.run_with_cache(src, target_in, padding, names=lambda name: name.endswith("attn.hook_pattern"))
    weights: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    for name, pattern in cache.items():  # in forward order, so layer by layer within each kind
        kind = "cross" if ".cross_attn." in name else name.split(".")[0]  # "encoder" / "decoder"
        weights[kind].append(pattern[0].float().cpu().numpy())
    if not weights["cross"]:
        raise UserError(f"this {model.config.arch} model has no attention over its source to draw or score")
    # the kinds of positions each side adds, as the model says (an RNN adds none: "none" both sides)
    encoder_positions = getattr(model, "encoder_positions", model.positions)
    pieces = [tokenizer.id_to_token_text(i) for i in source_ids]
    return PairCapture(
        source, target, pieces + [DOC_TOKEN], [DOC_TOKEN] + [tokenizer.id_to_token_text(i) for i in target_ids],
        [tokenizer.id_to_token_text(i) for i in target_ids] + [DOC_TOKEN],
        _token_maps(tokenizer, source, source_ids) + [-1], _token_maps(tokenizer, target, target_ids) + [-1],
        weights, model.positions.kind, encoder_positions.kind)


@dataclass
class HeadAlignment:
    """One cross-attention head's AER: over all pairs (counts summed), and the mean and spread per pair."""

    layer: int
    head: int
    aer: float
    mean: float
    spread: float


@dataclass
class AlignmentReport:
    """Every cross-attention head's AER beside random heads', over `pairs` sentence pairs."""

    pairs: int
    heads: list[HeadAlignment]
    random_aer: float
    random_spread: float
    links: dict[tuple[int, int], list[list[Link]]] = field(default_factory=dict, repr=False)

    @property
    def best(self) -> HeadAlignment:
        return min(self.heads, key=lambda h: (h.aer, h.layer, h.head))

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"pairs": self.pairs, "random_head": {"aer": self.random_aer, "spread": self.random_spread},
                "best_head": {"layer": best.layer, "head": best.head, "aer": best.aer},
                "heads": [vars(h) for h in self.heads]}


def alignment_report(captures: Sequence[PairCapture], gold: Sequence[Sequence[Sequence[int]]],
                     seed: int = 0) -> AlignmentReport:
    """Score every cross-attention head of the captures against their gold links (one list per capture)."""
    if not captures:
        raise ValueError("no sentence pairs to align")
    n_layers, n_heads = len(captures[0].weights["cross"]), captures[0].n_heads
    heads, links = [], {}
    for layer in range(n_layers):
        for head in range(n_heads):
            predicted = [c.head_links(layer, head) for c in captures]
            per_pair = [alignment_error_rate(p, g) for p, g in zip(predicted, gold, strict=True)]
            mean = statistics.fmean(per_pair)
            spread = statistics.stdev(per_pair) if len(per_pair) > 1 else 0.0
            heads.append(HeadAlignment(layer, head, corpus_alignment_error_rate(predicted, gold), mean, spread))
            links[(layer, head)] = predicted
    rng = np.random.default_rng(seed)
    draws = [corpus_alignment_error_rate([random_head_links(c.source_words, c.target_words, rng) for c in captures],
                                         gold) for _ in range(RANDOM_DRAWS)]
    return AlignmentReport(len(captures), heads, statistics.fmean(draws), statistics.stdev(draws), links)


def parse_alignment(text: str) -> list[Link]:
    """'0-0 1-2 2-1' (source-target word pairs, the Pharaoh format) -> [(0, 0), (1, 2), (2, 1)]."""
    from minitx.errors import UserError

    links = []
    for piece in text.split():
        left, dash, right = piece.partition("-")
        if not dash or not left.isdigit() or not right.isdigit():
            raise UserError(f"--alignment: {piece!r} is not SOURCE-TARGET word indices; write e.g. \"0-0 1-2 2-1\"")
        links.append((int(left), int(right)))
    if not links:
        raise UserError("--alignment is empty; write word links as \"0-0 1-2 2-1\"")
    return links


def check_links_fit(links: Sequence[Link], capture: PairCapture) -> None:
    """UserError if a link names a word the source or target does not have."""
    from minitx.errors import UserError

    n_src, n_tgt = max(capture.source_words) + 1, max(capture.target_words) + 1
    for s, t in links:
        if s >= n_src or t >= n_tgt:
            raise UserError(f"--alignment link {s}-{t} is outside the pair: the source has {n_src} words and the "
                            f"target {n_tgt} (indices from 0)")


def mean_or_nan(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan
