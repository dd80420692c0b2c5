"""Export: the same function, written under a transformers architecture's names (more: docs/interop.md).

A minitx model is a pre-LN GPT. Each positional kind names the transformers architecture that
computes exactly its function (`hf_architecture` on its class, model/positions.py), or is refused:

    learned, sinusoidal, none   GPT-2      Conv1D weights transposed; wpe = the kind's table or zeros;
                                           an embedding scaled by √d exported scaled (and untied)
    rope                        GPT-NeoX   q/k/v rows regrouped per head; rotary on the full head
    alibi                       MPT        same slopes and fused q/k/v; MPT has no biases (--no-bias)

"gelu" exports as transformers' "gelu", "gelu_tanh" as "gelu_new"; missing biases (--no-bias) as
zeros; `lm_head` stays tied to `wte` when it is. config.json also carries a "minitx" section (the
ModelConfig), so `minitx import-hf` gives back the kind that was exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.interop.hf_tokenizer import boundary_token, tokenizer_files
from minitx.model.positions import PositionalEncoding, encoding_class
from minitx.text.tokenizer import Tokenizer

if TYPE_CHECKING:
    from minitx.model import GPT

#: transformers' name of each minitx activation.
HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
#: minitx's LayerNorms use torch's default epsilon.
LAYER_NORM_EPS = 1e-5
ROPE_BASE = 10000.0
#: One block's weights: minitx's name, GPT-NeoX's (the fused q/k/v is regrouped separately).
NEOX_LAYER_NAMES = (
    ("ln_1", "input_layernorm"),
    ("ln_2", "post_attention_layernorm"),
    ("attn.c_proj", "attention.dense"),
    ("mlp.c_fc", "mlp.dense_h_to_4h"),
    ("mlp.c_proj", "mlp.dense_4h_to_h"),
)
#: One block's weights: minitx's name, MPT's (MPT has no biases).
MPT_LAYER_NAMES = (
    ("ln_1", "norm_1"),
    ("attn.c_attn", "attn.Wqkv"),
    ("attn.c_proj", "attn.out_proj"),
    ("ln_2", "norm_2"),
    ("mlp.c_fc", "ffn.up_proj"),
    ("mlp.c_proj", "ffn.down_proj"),
)


@dataclass
class HFExport:
    """A model in transformers' terms: config.json's contents, named tensors, tokenizer files."""

    architecture: str  # "gpt2" | "gpt_neox" | "mpt"
    config: dict
    tensors: dict[str, Tensor]
    tokenizer_files: dict[str, str]


def hf_architecture(config: ModelConfig) -> str:
    """The transformers architecture that computes this model exactly, or a UserError saying why none does.

    The model's architecture says which transformers architectures it can become (`hf_families`; none: its
    `hf_refusal`), and among them the positional kind names its target (`hf_architecture` on its class); a kind
    with none is refused with its `hf_refusal`, never sent to another architecture's branch.
    """
    from minitx.model.registry import architecture as model_architecture

    arch = model_architecture(config.arch)
    if not arch.hf_families:
        raise UserError(f"{arch.label} model has no transformers architecture to export to: {arch.hf_refusal}")
    from minitx.model.norm import hf_refusal as norm_refusal

    if norm_refusal(config):
        raise UserError(norm_refusal(config))
    encoding = encoding_class(config.pos)
    architecture = encoding.hf_architecture
    if architecture is None:
        raise UserError(f"{config.pos} positions have no exact transformers architecture: {encoding.hf_refusal}")
    if architecture not in BUILDERS or architecture not in arch.hf_families:
        raise UserError(f"{config.pos} positions export to {architecture}, which minitx cannot write yet")
    if architecture == "mpt":
        check_mpt(config)
    return architecture


def check_mpt(config: ModelConfig) -> None:
    """UserError unless MPT computes this model: MPT has no bias terms and a 4x exact-GELU MLP."""
    if config.bias:
        raise UserError(
            "an alibi model with biases has no exact transformers architecture: MPT has minitx's ALiBi "
            "but no bias terms, BLOOM has biases but a LayerNorm on the embeddings and tanh-GELU; "
            "train it with --no-bias to export it as MPT"
        )
    if config.mlp_ratio != 4 or config.activation != "gelu":
        raise UserError(
            f"MPT (transformers' ALiBi model) has a 4x exact-GELU MLP; this model has mlp_ratio "
            f"{config.mlp_ratio} and {config.activation}, so it cannot be exported"
        )


def export_hf(model: GPT, tokenizer: Tokenizer) -> HFExport:
    """Everything `from_pretrained` needs to rebuild `model` and `tokenizer` in transformers."""
    config = model.config
    architecture = hf_architecture(config)
    state = {name: t.detach().float().cpu() for name, t in model.state_dict().items()}
    state["lm_head.weight"] = model.lm_head.weight.detach().float().cpu()  # tied or not
    boundary = boundary_token(tokenizer)
    boundary_id = tokenizer.token_id(boundary) if boundary is not None else None
    if architecture == "gpt2":  # absolute positions: the table GPT-2 adds, and the embedding scale minitx uses
        hf_config, tensors = _gpt2(config, state, model.positions)
    else:
        hf_config, tensors = BUILDERS[architecture](config, state)
    hf_config.update(
        bos_token_id=boundary_id,
        eos_token_id=boundary_id,
        torch_dtype="float32",
        minitx=config.to_dict(),
    )
    return HFExport(architecture, hf_config, tensors, tokenizer_files(tokenizer, config.block_size))


def _bias(state: dict[str, Tensor], name: str, size: int) -> Tensor:
    """The bias `name`, or zeros when the model has none (--no-bias): adding 0 changes nothing."""
    return state[name] if name in state else torch.zeros(size)


# ---------------------------------------------------------------------------------------------
# GPT-2: learned, sinusoidal and none


def _gpt2(config: ModelConfig, state: dict[str, Tensor], positions: PositionalEncoding,
          ) -> tuple[dict, dict[str, Tensor]]:
    """GPT2LMHeadModel: the same names as minitx, Conv1D weights stored [in, out].

    GPT-2 adds wpe[p] to a plain lookup wte[token]: wpe is the kind's table (zeros if it adds none), and
    a kind that scales the embeddings first (x = √d·wte[token] + PE[p]) exports the scaled matrix.
    """
    dim, hidden = config.dim, config.mlp_ratio * config.dim
    wte = state["transformer.wte.weight"]
    tied = config.tie_embeddings
    if positions.has_table:
        wpe = positions.encoding_matrix(config.block_size).detach().float().cpu()
    else:
        wpe = torch.zeros(config.block_size, dim)
    if positions.embedding_scale is not None:
        wte = wte * positions.embedding_scale
        tied = False  # ... but the output layer still multiplies by the unscaled matrix
    tensors = {"transformer.wte.weight": wte, "transformer.wpe.weight": wpe}
    for i in range(config.n_layers):
        ours = f"transformer.h.{i}."
        for name, size in (("ln_1", dim), ("ln_2", dim)):
            tensors[f"{ours}{name}.weight"] = state[f"{ours}{name}.weight"]
            tensors[f"{ours}{name}.bias"] = _bias(state, f"{ours}{name}.bias", size)
        for name, size in (("attn.c_attn", 3 * dim), ("attn.c_proj", dim), ("mlp.c_fc", hidden), ("mlp.c_proj", dim)):
            tensors[f"{ours}{name}.weight"] = state[f"{ours}{name}.weight"].t()  # [out, in] -> Conv1D [in, out]
            tensors[f"{ours}{name}.bias"] = _bias(state, f"{ours}{name}.bias", size)
    tensors["transformer.ln_f.weight"] = state["transformer.ln_f.weight"]
    tensors["transformer.ln_f.bias"] = _bias(state, "transformer.ln_f.bias", dim)
    if not tied:
        tensors["lm_head.weight"] = state["lm_head.weight"]
    hf_config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": dim,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": hidden,
        "activation_function": HF_ACTIVATION[config.activation],
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": LAYER_NORM_EPS,
        "scale_attn_weights": True,
        "tie_word_embeddings": tied,
    }
    return hf_config, tensors


# ---------------------------------------------------------------------------------------------
# GPT-NeoX: rope


def qkv_rows_per_head(rows: Tensor, n_heads: int) -> Tensor:
    """minitx's fused q/k/v rows [q (all heads) | k | v] -> GPT-NeoX's [q_0 k_0 v_0 | q_1 k_1 v_1 | ...].

    Works on a weight [3C, C] or a bias [3C]. With 2 heads of size 1, rows q0 q1 k0 k1 v0 v1:

    >>> qkv_rows_per_head(torch.tensor([0.0, 1.0, 10.0, 11.0, 20.0, 21.0]), n_heads=2).tolist()
    [0.0, 10.0, 20.0, 1.0, 11.0, 21.0]
    """
    head_dim = rows.shape[0] // (3 * n_heads)
    grouped = rows.reshape(3, n_heads, head_dim, *rows.shape[1:])  # [3, H, hd, (C)]
    return grouped.transpose(0, 1).reshape(rows.shape)  # [H, 3, hd, (C)] -> [3C, (C)]


def _gpt_neox(config: ModelConfig, state: dict[str, Tensor]) -> tuple[dict, dict[str, Tensor]]:
    """GPTNeoXForCausalLM with a sequential residual and rotary embeddings on the whole head.

    minitx's rotation is NeoX's: pairs (x_i, x_{i+hd/2}) turned by p·10000^(-2i/hd), with
    rotate_half([a, b]) = [-b, a]; so q and k need no reordering inside a head, only the per-head
    grouping of the fused projection (`qkv_rows_per_head`).
    """
    dim, hidden = config.dim, config.mlp_ratio * config.dim
    tensors = {"gpt_neox.embed_in.weight": state["transformer.wte.weight"]}
    for i in range(config.n_layers):
        ours, theirs = f"transformer.h.{i}.", f"gpt_neox.layers.{i}."
        for name, hf_name in NEOX_LAYER_NAMES:
            size = hidden if name == "mlp.c_fc" else dim
            tensors[f"{theirs}{hf_name}.weight"] = state[f"{ours}{name}.weight"]
            if config.bias or not hf_name.startswith("attention."):  # NeoX's attention_bias=False drops these
                tensors[f"{theirs}{hf_name}.bias"] = _bias(state, f"{ours}{name}.bias", size)
        qkv = f"{theirs}attention.query_key_value"
        tensors[f"{qkv}.weight"] = qkv_rows_per_head(state[f"{ours}attn.c_attn.weight"], config.n_heads)
        if config.bias:
            tensors[f"{qkv}.bias"] = qkv_rows_per_head(state[f"{ours}attn.c_attn.bias"], config.n_heads)
    tensors["gpt_neox.final_layer_norm.weight"] = state["transformer.ln_f.weight"]
    tensors["gpt_neox.final_layer_norm.bias"] = _bias(state, "transformer.ln_f.bias", dim)
    if not config.tie_embeddings:
        tensors["embed_out.weight"] = state["lm_head.weight"]  # NeoX's name for the output layer
    hf_config = {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": config.vocab_size,
        "hidden_size": dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "intermediate_size": hidden,
        "hidden_act": HF_ACTIVATION[config.activation],
        "max_position_embeddings": config.block_size,
        "rotary_pct": 1.0,
        "rotary_emb_base": ROPE_BASE,
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_BASE, "partial_rotary_factor": 1.0},
        "use_parallel_residual": False,
        "attention_bias": config.bias,
        "layer_norm_eps": LAYER_NORM_EPS,
        "attention_dropout": config.dropout,
        "hidden_dropout": config.dropout,
        "tie_word_embeddings": config.tie_embeddings,
    }
    return hf_config, tensors


# ---------------------------------------------------------------------------------------------
# MPT: alibi without biases


def _mpt(config: ModelConfig, state: dict[str, Tensor]) -> tuple[dict, dict[str, Tensor]]:
    """MptForCausalLM: fused q/k/v in minitx's order, no biases, ALiBi with alibi_bias_max 8.

    MPT adds slope·(j - t_k + 1) to the score of key j, minitx -slope·(i - j); the two differ by
    slope·(i - t_k + 1), the same for every key of a query, and softmax ignores such a shift.
    """
    tensors = {"transformer.wte.weight": state["transformer.wte.weight"]}
    for i in range(config.n_layers):
        ours, theirs = f"transformer.h.{i}.", f"transformer.blocks.{i}."
        for name, hf_name in MPT_LAYER_NAMES:
            tensors[f"{theirs}{hf_name}.weight"] = state[f"{ours}{name}.weight"]
    tensors["transformer.norm_f.weight"] = state["transformer.ln_f.weight"]
    if not config.tie_embeddings:
        tensors["lm_head.weight"] = state["lm_head.weight"]
    hf_config = {
        "architectures": ["MptForCausalLM"],
        "model_type": "mpt",
        "vocab_size": config.vocab_size,
        "d_model": config.dim,
        "n_heads": config.n_heads,
        "n_layers": config.n_layers,
        "expansion_ratio": config.mlp_ratio,
        "max_seq_len": config.block_size,
        "layer_norm_epsilon": LAYER_NORM_EPS,
        "learned_pos_emb": False,
        "no_bias": True,
        "resid_pdrop": config.dropout,
        "emb_pdrop": config.dropout,
        "attn_config": {"alibi": True, "alibi_bias_max": 8},  # attn_pdrop: transformers types it int
        "tie_word_embeddings": config.tie_embeddings,
    }
    return hf_config, tensors


#: The writer of each architecture that takes (config, state); GPT-2 also needs the positional module.
BUILDERS = {"gpt2": _gpt2, "gpt_neox": _gpt_neox, "mpt": _mpt}
