"""Weight-only int8 quantization: the same model, a quarter of the bytes to read per token.

Decoding one token reads every weight once for one multiply-add, so its time goes into moving the
weights, and int8 weights are 4× fewer bytes. (Training and prefill reuse each weight across many
tokens and gain nothing: an inference-only option.) Row i of W [out, in] keeps its own scale s_i,
a bfloat16 number rounded up from max_j |W_ij| / 127:

    W_ij ≈ s_i · q_ij,   q_ij = round(W_ij / s_i) ∈ [-127, 127],   y_i = s_i · Σ_j x_j q_ij + b_i

Everything else runs in bfloat16, the type the CPU's fused int8 kernel multiplies in; losses and
sampling probabilities stay fp32. Why each choice, with the error bound: docs/model.md; the
measurements: docs/decisions.md.

The same function serves every architecture of the registry: it replaces every `nn.Linear` of the
model wherever it sits (`linear_maps`), so a GPT's blocks and output layer, and an encoder-decoder's
encoder blocks, decoder blocks (self-attention, cross-attention c_q/c_kv/c_proj, MLP) and output
layer all become `Int8Linear`; both `decode_next`s take each one's `as_function`.

Example:
    >>> from minitx.config import ModelConfig
    >>> from minitx.model import GPT, build_model
    >>> model = GPT(ModelConfig(vocab_size=64, block_size=16, n_layers=2, n_heads=2, dim=64))
    >>> quantize_int8(model)           # every linear map, in place (4 per block + lm_head); the rest to bfloat16
    {'layers': 9, 'bytes_before': 409600, 'bytes_after': 107264}
    >>> translator = build_model(ModelConfig(vocab_size=64, block_size=16, n_layers=2, encoder_layers=2, n_heads=2,
    ...                                      dim=64, arch="encoder-decoder"))
    >>> quantize_int8(translator)["layers"]   # 4 per encoder block + 7 per decoder block + lm_head
    23
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minitx.config import Quantize

QUANTIZE_CHOICES = tuple(q.value for q in Quantize)


class Int8Linear(nn.Module):
    """A frozen `nn.Linear` whose weight is stored as int8 rows with one scale per row.

    Buffers: `qweight` int8 [out, in], `scale` [out] and `bias` [out] or None, both floating
    point (fp32, then bfloat16 once `quantize_int8` has converted the model). There are no
    parameters: a quantized model cannot be trained or saved as a run, only used to generate and
    evaluate.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = _round_up_to_bfloat16(weight.abs().amax(dim=1) / 127.0)  # s_i: the row's largest |w| -> ±127
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any scale works
        qweight = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self._scale_bf16 = scale.to(torch.bfloat16)  # what the CPU kernel wants; rebuilt by _apply

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._scale_bf16 = self.scale.to(torch.bfloat16)  # follow .to(device) like the buffers do
        return self

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """s_i · q_ij as a float [out, in] matrix: the weight this layer actually applies (s_i is a
        bfloat16 number, so the CPU kernel's bfloat16 scale is this very s_i)."""
        return self.qweight.to(dtype) * self.scale.to(dtype)[:, None]

    def forward(self, x: Tensor) -> Tensor:
        """y = x Wᵀ + b with W ≈ s·q; x [..., in] -> [..., out] in x's dtype."""
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)  # the kernel takes a matrix [N, in]
        if x.device.type == "cpu" and hasattr(torch, "_weight_int8pack_mm"):
            y = torch._weight_int8pack_mm(x2.to(torch.bfloat16), self.qweight, self._scale_bf16)  # [N, out]
            y = y.to(x.dtype) if self.bias is None else torch.add(self.bias, y)  # bf16 + fp32 -> fp32
        else:
            y = F.linear(x2, self.dequantized_weight(x.dtype), self.bias)
        return y.view(*shape[:-1], self.out_features)

    def as_function(self) -> Callable[[Tensor], Tensor]:
        """This layer as a plain function of x for `decode_next` (the GPT's and the encoder-decoder's):
        the fewest kernel calls that serve.

        In a quantized model on the CPU, x is a bfloat16 matrix [B, in] already, so the kernel
        needs no reshaping or conversion and the bias is added in place: 2 kernels instead of 5.
        Anywhere else, `forward`.
        """
        fast = self.qweight.device.type == "cpu" and hasattr(torch, "_weight_int8pack_mm")
        if not fast or self.scale.dtype != torch.bfloat16:
            return self.forward
        qweight, scale, bias = self.qweight, self._scale_bf16, self.bias
        if bias is None:
            return lambda x: torch._weight_int8pack_mm(x, qweight, scale)
        return lambda x: torch._weight_int8pack_mm(x, qweight, scale).add_(bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def _round_up_to_bfloat16(x: Tensor) -> Tensor:
    """The smallest bfloat16 numbers ≥ x (x ≥ 0, fp32), returned as fp32: 0.3 -> 0.30078125.

    A bfloat16 is the top 16 bits of an fp32, so rounding up means: add 0xFFFF to the bit pattern
    and clear the low 16 bits (x already a bfloat16 number stays as it is).
    """
    bits = x.float().contiguous().view(torch.int32)
    return ((bits + 0xFFFF) & ~0xFFFF).view(torch.float32)


def linear_maps(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """Every `nn.Linear` of the model as (parent module, attribute name, layer), in module order.

    The one walk over "a model's linear maps" that quantization needs, whatever the architecture:
    it looks at the module tree, not at a GPT's or an encoder-decoder's layout. A tied output layer
    is listed like any other (its weight is the embedding table's; the table itself is an
    `nn.Embedding` and is not).
    """
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, nn.Linear)]


def quantize_int8(model: nn.Module) -> dict[str, int]:
    """Int8 weights for every linear map of the model; bfloat16 for everything else. In place.

    Quantized: every `nn.Linear` (`linear_maps`) -- for a GPT the blocks' four and the output layer
    `lm_head`; for an encoder-decoder also the encoder's blocks and each decoder block's
    cross-attention (c_q, c_kv, c_proj). The output layer shares its matrix with the token embedding
    `wte` (weight tying); the int8 copy serves the output direction only, and `wte` stays a bfloat16
    table for reading tokens in (an output layer left in bfloat16 was the slowest product of a step:
    docs/decisions.md). The model is switched to eval mode. Returns how many layers were replaced
    and their weight bytes before (fp32) and after (int8 values + fp32 row scales).
    """
    replaced, before, after = 0, 0, 0
    for parent, name, linear in linear_maps(model):  # listed first, replaced after: no walk over a changing tree
        q = Int8Linear(linear)
        setattr(parent, name, q)  # a tied lm_head is untied: wte keeps the table, lm_head an int8 copy
        replaced += 1
        before += linear.weight.numel() * linear.weight.element_size()
        after += q.qweight.numel() + q.scale.numel() * q.scale.element_size()
    model.to(torch.bfloat16)  # floating parameters and buffers; int8 weights are left alone
    model.eval()
    return {"layers": replaced, "bytes_before": before, "bytes_after": after}


def check_quantize(kind: str | None) -> None:
    """Raise a UserError unless `kind` is a --quantize choice (checked before any file is read)."""
    from minitx.errors import UserError

    if kind is not None and kind not in QUANTIZE_CHOICES:
        raise UserError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {kind!r}")


def apply_quantization(model: nn.Module, kind: str | None) -> dict[str, int] | None:
    """`--quantize KIND` for generate/eval/translate: "none" (or None) does nothing, "int8" calls quantize_int8."""
    check_quantize(kind)
    return quantize_int8(model) if kind == "int8" else None
