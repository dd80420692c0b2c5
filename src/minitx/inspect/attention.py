"""What each attention head looks at: capture the weights α for a text, and name the simple patterns.

In every layer, every head mixes the tokens' values with weights α (see `minitx.model.attention`):

    c_t = Σ_{t'} α[t, t'] v_{t'}      α[t, t'] = how much of token t'’s value goes into token t’s output

Each row t of α sums to 1: it is how token t shares out its attention. The upper triangle (t' > t)
is the future; the causal mask puts -inf there before the softmax, so those weights are exactly 0.
Each head has its own query, key and value maps, and so its own pattern; `minitx.inspect.roles`
names the simple ones (previous token, first token, broad, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from minitx.errors import UserError
from minitx.inspect.heatmap import terminal_heatmap
from minitx.inspect.roles import (
    head_roles,
    head_scores,
    name_role,
    role_label,
)
from minitx.text.tokenizer import DOC_TOKEN

if TYPE_CHECKING:
    from rich.console import RenderableType

    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer

#: Heatmaps show at most the last this many tokens (a terminal row is 2 characters per token).
MAX_SHOWN_TOKENS = 40
#: What `minitx inspect-attention` reads when no --prompt is given: story-corpus words, with repeats.
DEFAULT_PROMPT = "The little dog sees the big red ball. The dog runs to the ball. The dog"
#: The line `minitx inspect-attention` starts with.
HOW_TO_READ = (
    "Heatmap: a row is a token; a cell is how much of an earlier token's value it takes (darker = more); "
    "rows sum to 1; blank = the future."
)
@dataclass
class AttentionCapture:
    """The attention weights of every layer and head for one text.

    Attributes:
        tokens: display text of each token, e.g. ["<|doc|>", "The", " dog"].
        token_ids: the ids the model read.
        weights: α as [L, H, T, T] float32 on the CPU: weights[l, h, t, t'] is how much query t of
            head h in layer l takes from key t'.
        pos: the model's positional encoding kind ("learned", "rope", ...).
    """

    tokens: list[str]
    token_ids: list[int]
    weights: torch.Tensor
    pos: str

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.weights.shape[-1]


def capture_attention(
    model: GPT, tokenizer: Tokenizer, text: str, *, max_tokens: int | None = None
) -> AttentionCapture:
    """Run `text` through `model` once and keep every head's attention weights.

    As in generation, a tokenizer that knows <|doc|> gets it in front of the text (every training
    document starts with it). Only the last min(block_size, max_tokens) tokens are kept, so a long
    text loses its beginning, <|doc|> included. The model runs in eval mode without gradients and
    is put back in its previous mode.

    Example:
        >>> capture = capture_attention(model, tokenizer, "The dog runs.")   # 4 layers of 4 heads
        >>> capture.tokens, capture.weights.shape
        (['<|doc|>', 'The', ' dog', ' runs', '.'], torch.Size([4, 4, 5, 5]))
    """
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    ids = tokenizer.encode(text)
    doc = tokenizer.token_id(DOC_TOKEN)
    if doc is not None and (not ids or ids[0] != doc):
        ids = [doc, *ids]
    if not ids:
        raise UserError("the prompt is empty after tokenizing; give --prompt some text")
    limit = model.config.block_size if max_tokens is None else min(model.config.block_size, max_tokens)
    ids = ids[-limit:]

    device = next(model.parameters()).device
    idx = torch.tensor(ids, dtype=torch.long, device=device)[None]  # [1, T]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx, return_weights=True)
    finally:
        model.train(was_training)
    weights = torch.stack([layer_weights[0] for layer_weights in model.attn_weights])  # L x [H, T, T] -> [L, H, T, T]
    tokens = [tokenizer.id_to_token_text(i) for i in ids]
    return AttentionCapture(tokens, ids, weights.float().cpu(), model.config.pos)


# ---------------------------------------------------------------------------------------------
# views of one head


def check_head(capture: AttentionCapture, layer: int | None, head: int | None) -> None:
    """Raise a UserError naming the valid range when `layer` or `head` (None: not given) is not in the capture."""
    if layer is not None and not 0 <= layer < capture.n_layers:
        raise UserError(f"--layer {layer} does not exist: this model has layers 0..{capture.n_layers - 1}")
    if head is not None and not 0 <= head < capture.n_heads:
        raise UserError(f"--head {head} does not exist: each layer has heads 0..{capture.n_heads - 1}")


def shown_window(capture: AttentionCapture, limit: int = MAX_SHOWN_TOKENS) -> tuple[int, str]:
    """Where the shown tokens start, and a note for titles: (0, "") or (80, " (last 40 of 120 tokens)")."""
    start = max(0, capture.n_tokens - limit)
    return start, f" (last {capture.n_tokens - start} of {capture.n_tokens} tokens)" if start else ""


def _causal_rows(matrix: torch.Tensor) -> list[list[float]]:
    """A [T, T] weight matrix as lists, with NaN in the future (the upper triangle) so it is drawn blank."""
    future = torch.ones_like(matrix, dtype=torch.bool).triu(1)
    return matrix.masked_fill(future, float("nan")).tolist()


def attention_heatmap(
    capture: AttentionCapture, layer: int, head: int, limit: int = MAX_SHOWN_TOKENS
) -> RenderableType:
    """One head's weights as a terminal heatmap: queries down, keys across, the future blank.

    Long inputs show the last `limit` queries over the last `limit` keys (the
    title says so); the mass those queries give to earlier keys is then off the picture.
    """
    check_head(capture, layer, head)
    scores = head_scores(capture.weights[layer, head], capture.token_ids)
    role, score = name_role(scores)
    start, note = shown_window(capture, limit)
    matrix = capture.weights[layer, head, start:, start:]  # [T', T']
    labels = capture.tokens[start:]
    title = f"layer {layer} head {head}: {role_label(role, score)}{note}"
    return terminal_heatmap(_causal_rows(matrix), labels, labels, title=title)


def top_attended(
    capture: AttentionCapture, layer: int, head: int, query: int, k: int = 3
) -> list[tuple[int, str, float]]:
    """The `k` tokens the token at position `query` attends to most: [(position, text, weight), ...].

    `query` may be negative, counted from the end as in Python (-1 = the last token).

        >>> top_attended(capture, 0, 2, -1)     # for "<|doc|> The cat sat"
        [(2, ' cat', 0.71), (0, '<|doc|>', 0.2), (3, ' sat', 0.06)]
    """
    check_head(capture, layer, head)
    n = capture.n_tokens
    if not -n <= query < n:
        raise ValueError(f"query {query} is outside the {n} tokens")
    query %= n
    row = capture.weights[layer, head, query, : query + 1]  # the keys it can see
    weights, positions = row.topk(min(k, query + 1))
    return [(p, capture.tokens[p], w) for p, w in zip(positions.tolist(), weights.tolist(), strict=True)]


def _quoted(position: int, token: str) -> str:
    return f'{position}:"' + token.replace("\n", "↵").replace("\t", "⇥") + '"'


def readout_line(capture: AttentionCapture, layer: int, head: int, query: int, k: int = 3) -> str:
    """What one token reads, positions first: '3:" sat" ← 2:" cat" 0.71, 0:"<|doc|>" 0.20, 3:" sat" 0.06'."""
    read = top_attended(capture, layer, head, query, k)  # checks the query position
    query %= capture.n_tokens
    shown = ", ".join(f"{_quoted(position, text)} {weight:.2f}" for position, text, weight in read)
    return f"{_quoted(query, capture.tokens[query])} ← {shown}"


def save_attention_png(capture: AttentionCapture, path: str | Path, layer: int | None = None) -> Path:
    """Save all heads of `layer` (or every layer × head when None) as one PNG; return its path.

    Each panel is titled with its layer, head and role; long inputs keep the last MAX_SHOWN_TOKENS
    tokens, as in the terminal. Needs matplotlib (a UserError says so when it is missing).
    """
    from minitx.inspect.heatmap import save_png_heatmaps

    check_head(capture, layer, None)
    layers = range(capture.n_layers) if layer is None else [layer]
    roles = {(r.layer, r.head): r for r in head_roles(capture)}
    start, note = shown_window(capture)
    matrices, titles = [], []
    for lay in layers:
        for head in range(capture.n_heads):
            role = roles[lay, head]
            matrices.append(_causal_rows(capture.weights[lay, head, start:, start:]))
            titles.append(f"L{lay} H{head} {role_label(role.role, role.score)}")
    labels = capture.tokens[start:]
    try:
        return save_png_heatmaps(path, matrices, titles, labels, labels, columns=capture.n_heads,
                                 colour_label="attention weight α" + note)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --png path") from None
