"""Direct logit attribution: split "how much more the model says GOOD than BAD" into what each part wrote.

At the last position the final residual is a sum of parts (see `minitx.inspect.residual`),

    x_L = x_embed + Σ_l [ Σ_h c_l^(h) W_O^(h)ᵀ + b_O,l ] + Σ_l mlp_l

and the logit difference is Δ = (lm_head(ln_f(x_L)))[GOOD] - [BAD] = ln_f(x_L) · d + (bias gap), with
d = W_U[GOOD] - W_U[BAD]. ln_f(x) = γ ⊙ (x - mean(x)) / σ(x) + β is not linear in x because σ depends
on x; the standard linearisation freezes σ at its value on this input. Then every step is linear and

    Δ = Σ_parts  γ ⊙ (part - mean(part)) / σ · d   +   β · d + (bias gap)

exactly: the parts sum to the model's own Δ (a test holds it within 1e-4). A part's share says how
much it pushes GOOD over BAD *directly*, through the output layer; a head that only feeds later
layers gets little here even when it matters (activation patching, `minitx.inspect.patching`, sees that).

On an encoder-decoder the residual is the decoder's, and every decoder block adds a third kind of part:
its cross-attention heads (named "L1xH0"), which read the encoder's memory of the source. Those heads
are the only parts that can know the source, so a decoder that translates a word shows it as a large
share on one or two of them (and on the MLPs that turn what they brought into the word).

Example (2 layers × 2 heads: embed, 4 heads, 2 attention biases, 2 MLPs, the constant; they sum to Δ):
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT
    >>> model = GPT(ModelConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, dim=8)).eval()
    >>> report = attribute(model, [1, 2, 3], good=4, bad=5)
    >>> len(report.parts), abs(sum(p.value for p in report.parts) - report.total) < 1e-5
    (10, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minitx.inspect.residual import decoder_stack, evaluating, reading

if TYPE_CHECKING:
    from minitx.model import GPT
    from minitx.model.encoder_decoder import EncoderDecoder


@dataclass(frozen=True)
class Part:
    """One addend of the final residual and its direct share of the logit difference.

    kind: "embed", "head", "attn bias", "mlp" or "constant" (ln_f's β and the output bias);
    attention: "attn" or "cross_attn" for heads and attention biases, else "".
    """

    name: str
    kind: str
    value: float
    layer: int | None = None
    head: int | None = None
    attention: str = ""


@dataclass
class AttributionReport:
    """The logit difference GOOD - BAD at the last position, and every part's direct share of it."""

    good: int
    bad: int
    total: float
    scale: float  # ln_f's σ on this input, frozen
    parts: list[Part]

    def heads(self, attention: str = "attn") -> Tensor:
        """Every head's share as [L, H] (of the self-attention, or of "cross_attn")."""
        found = [p for p in self.parts if p.kind == "head" and p.attention == attention]
        n_layers = max(p.layer for p in found) + 1
        n_heads = max(p.head for p in found) + 1
        grid = torch.zeros(n_layers, n_heads, dtype=torch.float64)
        for p in found:
            grid[p.layer, p.head] = p.value
        return grid

    def top(self, k: int = 8) -> list[Part]:
        """The `k` parts with the largest |share|, largest first."""
        return sorted(self.parts, key=lambda p: abs(p.value), reverse=True)[:k]


@torch.no_grad()
def attribute(model: GPT | EncoderDecoder, ids: list[int], *, good: int, bad: int, source: list[int] | None = None
              ) -> AttributionReport:
    """Direct logit attribution of logit[good] - logit[bad] at the last position of `ids` (see the module); an
    encoder-decoder reads `source` (its ids ending in the end token) and `ids` is its decoder's input.

    The split is exact only where the stream meets one final LayerNorm and nothing else normalizes it (pre-LN):
    any other `--norm`/`--norm-kind` is a UserError, before anything runs."""
    from minitx.errors import UserError
    from minitx.model.norm import flat_decode, norm_kind, norm_place

    if not flat_decode(model.config):
        raise UserError(f"direct logit attribution reads a pre-LN LayerNorm stream; this run has --norm "
                        f"{norm_place(model.config).name} --norm-kind {norm_kind(model.config)}: use inspect-lens "
                        "without --attribute")
    stack = decoder_stack(model)
    names = {"stream 0": stack.stream(0), f"stream {stack.n_layers}": stack.stream(stack.n_layers)}
    for layer in range(stack.n_layers):
        names.update({f"{name} {layer}": stack.name(layer, f"{name}.hook_z") for name, _ in stack.attentions(layer)})
        names[f"mlp {layer}"] = stack.name(layer, "hook_mlp_out")
    inputs = reading(model, torch.tensor([ids], dtype=torch.long), None if source is None else [source])
    with evaluating(model):
        logits, cache = model.run_with_cache(*inputs.args(), names=list(names.values()))
    last = {key: cache[name][0, -1].double() for key, name in names.items()}  # at the last position, float64
    total = float(logits[0, -1, good].double() - logits[0, -1, bad].double())

    norm, unembed = stack.final_norm, stack.unembed
    final = last[f"stream {stack.n_layers}"]
    scale = torch.sqrt(final.var(unbiased=False) + norm.eps)
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(final)
    direction = unembed.weight[good].double() - unembed.weight[bad].double()  # d = W_U[GOOD] - W_U[BAD]

    def share(vector: Tensor) -> float:
        return float(((vector - vector.mean()) / scale * gamma) @ direction)

    parts = [Part("embed", "embed", share(last["stream 0"]))]
    for layer in range(stack.n_layers):
        for name, attention in stack.attentions(layer):
            written = attention.head_results(last[f"{name} {layer}"])  # hook_z [H, hd] -> each head's write [H, C]
            prefix = "" if name == "attn" else "x"  # cross-attention heads read "L1xH0"
            for head in range(stack.n_heads):
                parts.append(Part(f"L{layer}{prefix}H{head}", "head", share(written[head]), layer, head, name))
            if attention.c_proj.bias is not None:
                parts.append(Part(f"L{layer} {name} bias", "attn bias", share(attention.c_proj.bias.double()),
                                  layer, attention=name))
        parts.append(Part(f"L{layer} mlp", "mlp", share(last[f"mlp {layer}"]), layer))
    constant = float(norm.bias.double() @ direction) if norm.bias is not None else 0.0
    if getattr(unembed, "bias", None) is not None:
        constant += float(unembed.bias[good].double() - unembed.bias[bad].double())
    parts.append(Part("ln_f bias", "constant", constant))
    return AttributionReport(good, bad, total, float(scale), parts)
