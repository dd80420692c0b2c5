"""Which heads a model needs: switch one head off and measure how much the validation loss rises.

A layer's attention output is c_proj applied to the heads' outputs side by side,

    out_t = W_O [c_t^(0); c_t^(1); …; c_t^(H-1)] + b_O      c_t^(h) = Σ_{t'} α^(h)[t, t'] v^(h)_{t'}

so one head can be switched off exactly by replacing its output c^(h) before W_O (the hook point
`blocks.{l}.attn.hook_z`, [B, T, H, hd]), leaving every other head and every other layer as they
were. Two ways to switch it off:

    zero ablation   c^(h) := 0                         the head says nothing at all
    mean ablation   c^(h) := mean of c^(h) over the data   the head says what it says on average

Zeroing also removes the head's constant part (a bias the rest of the model may rely on), so it can
overstate a head's importance; mean ablation keeps that average and removes only what the head
tells about *this* input. The importance of a head is the rise of the loss, ablated minus intact:
about 0 for a head the model does not use.

Example (a hook that zeroes head 1 of layer 0 while the `with` block runs):
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import build_model
    >>> model = build_model(ModelConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=2, dim=8)).eval()
    >>> with head_replaced(model, 0, 1):
    ...     logits, _ = model(torch.zeros(1, 4, dtype=torch.long))
    >>> logits.shape, model.hook_points()["blocks.0.attn.hook_z"].active
    (torch.Size([1, 4, 10]), False)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from minitx.evaluation.scoring import score_ids

if TYPE_CHECKING:
    from minitx.model import GPT


@dataclass(frozen=True)
class HeadAblation:
    """The validation loss with one head switched off, both ways, and its rise over the intact model."""

    layer: int
    head: int
    zero_loss: float
    mean_loss: float
    base_loss: float

    @property
    def zero_rise(self) -> float:
        return self.zero_loss - self.base_loss

    @property
    def mean_rise(self) -> float:
        return self.mean_loss - self.base_loss


@dataclass(frozen=True)
class AblationReport:
    """`ablate_heads`' result: the intact loss, and every head ablated (layer by layer, head by head)."""

    base_loss: float
    tokens: int
    heads: list[HeadAblation]

    def most_needed(self, k: int = 3) -> list[HeadAblation]:
        """The `k` heads whose mean ablation raises the loss most, largest first."""
        return sorted(self.heads, key=lambda h: h.mean_rise, reverse=True)[:k]


def head_output(layer: int) -> str:
    """The hook point of layer `layer`'s heads' outputs c [B, T, H, hd], before W_O."""
    return f"blocks.{layer}.attn.hook_z"


@contextmanager
def head_replaced(model: GPT, layer: int, head: int, replacement: torch.Tensor | None = None) -> Iterator[None]:
    """While the block runs, head `head` of layer `layer` outputs `replacement` [head_dim] (None: zeros).

    A hook on `blocks.{layer}.attn.hook_z` rewrites that head's output at every position, on every path
    (textbook or fused attention); it is removed on leaving the block, even after an error.
    """

    def rewrite(z: torch.Tensor, _name: str) -> torch.Tensor:
        z = z.clone()  # [B, T, H, hd]
        z[..., head, :] = 0.0 if replacement is None else replacement.to(z.dtype)
        return z

    with model.hooks([(head_output(layer), rewrite)]):
        yield


@torch.no_grad()
def head_means(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """Every head's output averaged over all positions of the windows `score_ids` cuts from `ids`: [L, H, head_dim]."""
    config = model.config
    sums = torch.zeros(config.n_layers, config.n_heads, config.head_dim, dtype=torch.float64)
    counts = [0] * config.n_layers

    def record(z: torch.Tensor, name: str) -> None:
        layer = int(name.split(".")[1])
        heads = z.reshape(-1, config.n_heads, config.head_dim)  # every position of every window: [B·T, H, hd]
        sums[layer] += heads.double().sum(dim=0).cpu()
        counts[layer] += heads.shape[0]

    with model.hooks([(head_output(layer), record) for layer in range(config.n_layers)]):
        score_ids(model, ids, len(ids))
    return (sums / torch.tensor(counts, dtype=torch.float64)[:, None, None]).float()


def ablate_heads(model: GPT, ids: torch.Tensor) -> AblationReport:
    """The loss on `ids` (1-D, cut into block_size windows as `minitx eval` does) intact and with each head ablated.

    1 + 2·L·H passes over the windows, plus one to take the heads' means.
    """
    base = score_ids(model, ids, len(ids))
    means = head_means(model, ids)
    heads = []
    for layer in range(model.config.n_layers):
        for head in range(model.config.n_heads):
            with head_replaced(model, layer, head):
                zero = score_ids(model, ids, len(ids)).loss
            with head_replaced(model, layer, head, means[layer, head]):
                mean = score_ids(model, ids, len(ids)).loss
            heads.append(HeadAblation(layer, head, zero, mean, base.loss))
    return AblationReport(base.loss, base.tokens, heads)
