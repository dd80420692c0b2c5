"""Import: a GPT-2-family checkpoint from a local directory, rebuilt as a minitx model -- no pickle.

The directory is what transformers' `save_pretrained` writes, or a snapshot in the Hugging Face
cache (~/.cache/huggingface/hub/models--gpt2/snapshots/<hash>/; the models--gpt2 folder itself is
accepted too):

    config.json                               the architecture ("model_type": "gpt2", sizes, activation)
    model.safetensors                         the weights (or model-0000k-of-0000n.safetensors + an index)
    tokenizer.json, or vocab.json+merges.txt  the tokenizer (see hf_tokenizer.py)

Only safetensors files are read (hf_checkpoint.py): a pickle (pytorch_model.bin, *.pt) can run code
while it loads, so one lying beside the safetensors is ignored, and a folder with nothing else is
refused with a line that says how to convert it.

Three architectures come in -- the ones `hf_export` writes -- each when it computes a function
minitx can compute:

    GPT-2      learned positions; biases; "gelu_new" -> activation "gelu_tanh"; tied or untied head
    GPT-NeoX   rope on the whole head (rotary_pct 1, base 10000) and a sequential residual
    MPT        alibi (alibi_bias_max 8), no biases

Weights go through the inverse of the export's renaming. A config.json written by `minitx export`
also holds a "minitx" section; when the weights agree with it (a fixed sinusoidal table, a zero
position table, zero biases) the original kind comes back, so export then import is the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from minitx.config import ModelConfig, PositionKind
from minitx.errors import UserError
from minitx.interop.hf_checkpoint import checkpoint_directory, read_json, read_safetensors
from minitx.interop.hf_export import LAYER_NORM_EPS, MPT_LAYER_NAMES, NEOX_LAYER_NAMES, ROPE_BASE
from minitx.interop.hf_tokenizer import read_hf_tokenizer
from minitx.model import GPT, build_model
from minitx.model.positions import ENCODINGS, PositionalEncoding
from minitx.rundir.files import check_tensors_fit
from minitx.text.tokenizer import Tokenizer

#: transformers' activation names -> minitx's (gelu_new, gelu_fast and gelu_pytorch_tanh are one tanh formula).
ACTIVATION_OF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh"}


@dataclass
class ImportedModel:
    """A checkpoint rebuilt in minitx: the model (eval mode, float32), its tokenizer, and where it came from."""

    model: GPT
    tokenizer: Tokenizer
    source: Path
    architecture: str


def import_hf(directory: str | Path) -> ImportedModel:
    """Read a GPT-2 / GPT-NeoX / MPT checkpoint directory into a minitx model and tokenizer."""
    directory = checkpoint_directory(Path(directory))
    hf_config = read_json(directory / "config.json")
    architecture = hf_config.get("model_type")
    readers = {"gpt2": _from_gpt2, "gpt_neox": _from_gpt_neox, "mpt": _from_mpt}
    if architecture not in readers:
        raise UserError(
            f"{directory} holds a {architecture!r} model; minitx imports gpt2, gpt_neox and mpt "
            "checkpoints (the GPT-2 family and what `minitx export` writes)"
        )
    tensors = {name: t.float() for name, t in read_safetensors(directory).items()}  # buffers left out
    config, state = readers[architecture](hf_config, tensors, directory)
    config, state = _restore_exported_kind(hf_config.get("minitx"), config, state)
    tokenizer = read_hf_tokenizer(directory)
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary "
            f"{config.vocab_size}; minitx needs the two to agree (padded vocabularies are not supported)"
        )
    return ImportedModel(_build(config, state, directory), tokenizer, directory, architecture)


def _setting(hf_config: dict[str, Any], directory: Path, *names: str, default: Any = None) -> Any:
    """The first of `names` present in config.json (architectures rename fields), else `default`."""
    for name in names:
        if name in hf_config and hf_config[name] is not None:
            return hf_config[name]
    if default is None:
        raise UserError(f"{directory / 'config.json'} has no {names[0]!r}; the checkpoint is damaged")
    return default


def _require(ok: bool, directory: Path, what: str) -> None:
    """A UserError naming the setting minitx's model does not have."""
    if not ok:
        raise UserError(f"{directory} cannot be imported exactly: {what}")


def _activation(name: str, directory: Path) -> str:
    _require(name in ACTIVATION_OF, directory, f"its activation {name!r} is not GELU (exact or tanh)")
    return ACTIVATION_OF[name]


def _mlp_ratio(hidden: int, dim: int, directory: Path) -> int:
    _require(hidden % dim == 0, directory, f"its MLP width {hidden} is not a multiple of the width {dim}")
    return hidden // dim


def _check_eps(eps: float, directory: Path) -> None:
    _require(math.isclose(eps, LAYER_NORM_EPS), directory, f"its LayerNorm epsilon is {eps}, minitx's is 1e-5")


def _take(tensors: dict[str, Tensor], name: str, directory: Path) -> Tensor:
    if name not in tensors:
        raise UserError(f"{directory}: the weights have no {name!r}; the checkpoint does not match its config.json")
    return tensors.pop(name)


def _head(tensors: dict[str, Tensor], names: tuple[str, ...], tied: bool, directory: Path) -> Tensor | None:
    """The output layer's own matrix (None when tied to the embedding; a stored copy is then dropped)."""
    found = [name for name in names if name in tensors]
    if tied:
        for name in found:
            tensors.pop(name)
        return None
    if not found:
        raise UserError(f"{directory}: config.json says the output layer is untied but the weights have no {names[0]}")
    return tensors.pop(found[0])


def _no_leftovers(tensors: dict[str, Tensor], directory: Path) -> None:
    if tensors:
        names = sorted(tensors)[:3]
        raise UserError(f"{directory}: unexpected weights {names}; the checkpoint does not match its config.json")


# ---------------------------------------------------------------------------------------------
# the three architectures, each the inverse of its export


def _from_gpt2(hf: dict[str, Any], tensors: dict[str, Tensor], directory: Path) -> tuple[ModelConfig, dict]:
    """GPT2LMHeadModel weights (with or without the "transformer." prefix) -> minitx names, Conv1D transposed back."""
    _require(hf.get("scale_attn_weights", True), directory, "it does not scale attention scores by 1/√d")
    _require(not hf.get("scale_attn_by_inverse_layer_idx", False), directory, "it scales attention by layer index")
    _require(not hf.get("add_cross_attention", False), directory, "it has cross-attention")
    _check_eps(float(hf.get("layer_norm_epsilon", LAYER_NORM_EPS)), directory)
    tensors = {name.removeprefix("transformer."): t for name, t in tensors.items()}
    dim, n_layers = int(_setting(hf, directory, "n_embd")), int(_setting(hf, directory, "n_layer"))
    hidden = int(hf.get("n_inner") or 4 * dim)
    tied = bool(hf.get("tie_word_embeddings", True))
    config = ModelConfig(
        vocab_size=int(_setting(hf, directory, "vocab_size")),
        block_size=int(_setting(hf, directory, "n_positions", "n_ctx")),
        n_layers=n_layers,
        n_heads=int(_setting(hf, directory, "n_head")),
        dim=dim,
        pos=PositionKind.learned.value,
        mlp_ratio=_mlp_ratio(hidden, dim, directory),
        bias=True,
        activation=_activation(hf.get("activation_function", "gelu_new"), directory),
        tie_embeddings=tied,
    )
    state = {
        "transformer.wte.weight": _take(tensors, "wte.weight", directory),
        "transformer.wpe.weight": _take(tensors, "wpe.weight", directory),
    }
    for i in range(n_layers):
        for name in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            weight = _take(tensors, f"h.{i}.{name}.weight", directory)
            is_conv1d = not name.startswith("ln_")
            state[f"transformer.h.{i}.{name}.weight"] = weight.t() if is_conv1d else weight  # [in, out] -> [out, in]
            state[f"transformer.h.{i}.{name}.bias"] = _take(tensors, f"h.{i}.{name}.bias", directory)
    state["transformer.ln_f.weight"] = _take(tensors, "ln_f.weight", directory)
    state["transformer.ln_f.bias"] = _take(tensors, "ln_f.bias", directory)
    head = _head(tensors, ("lm_head.weight",), tied, directory)
    if head is not None:
        state["lm_head.weight"] = head
    _no_leftovers(tensors, directory)
    return config, state


def _from_gpt_neox(hf: dict[str, Any], tensors: dict[str, Tensor], directory: Path) -> tuple[ModelConfig, dict]:
    """GPTNeoXForCausalLM -> minitx: q/k/v rows regrouped from per-head back to [q | k | v]."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rotary = float(rope.get("partial_rotary_factor", hf.get("rotary_pct", 0.25)))
    base = float(rope.get("rope_theta", hf.get("rotary_emb_base", ROPE_BASE)))
    _require(rotary == 1.0, directory, f"it rotates {rotary:.0%} of each head; minitx's rope rotates all of it")
    _require(base == ROPE_BASE, directory, f"its rotary base is {base:g}, minitx's is 10000")
    _require(rope.get("rope_type", "default") == "default", directory, f"its rope is scaled ({rope.get('rope_type')})")
    _require(not hf.get("use_parallel_residual", True), directory,
             "it uses a parallel residual (attention and MLP read the same input); minitx's blocks are sequential")
    _check_eps(float(hf.get("layer_norm_eps", LAYER_NORM_EPS)), directory)
    dim, n_layers = int(_setting(hf, directory, "hidden_size")), int(_setting(hf, directory, "num_hidden_layers"))
    n_heads = int(_setting(hf, directory, "num_attention_heads"))
    tied = bool(hf.get("tie_word_embeddings", False))
    config = ModelConfig(
        vocab_size=int(_setting(hf, directory, "vocab_size")),
        block_size=int(_setting(hf, directory, "max_position_embeddings")),
        n_layers=n_layers,
        n_heads=n_heads,
        dim=dim,
        pos=PositionKind.rope.value,
        mlp_ratio=_mlp_ratio(int(_setting(hf, directory, "intermediate_size")), dim, directory),
        bias=True,  # NeoX's MLP and LayerNorms always have biases; attention_bias=False gives zeros below
        activation=_activation(hf.get("hidden_act", "gelu"), directory),
        tie_embeddings=tied,
    )
    attention_bias = bool(hf.get("attention_bias", True))
    state = {"transformer.wte.weight": _take(tensors, "gpt_neox.embed_in.weight", directory)}
    for i in range(n_layers):
        ours, theirs = f"transformer.h.{i}.", f"gpt_neox.layers.{i}."
        for name, hf_name in NEOX_LAYER_NAMES:
            state[f"{ours}{name}.weight"] = _take(tensors, f"{theirs}{hf_name}.weight", directory)
            if attention_bias or not hf_name.startswith("attention."):
                state[f"{ours}{name}.bias"] = _take(tensors, f"{theirs}{hf_name}.bias", directory)
            else:
                state[f"{ours}{name}.bias"] = torch.zeros(dim)
        qkv = f"{theirs}attention.query_key_value"
        state[f"{ours}attn.c_attn.weight"] = _qkv_rows_back(_take(tensors, f"{qkv}.weight", directory), n_heads)
        qkv_bias = _take(tensors, f"{qkv}.bias", directory) if attention_bias else torch.zeros(3 * dim)
        state[f"{ours}attn.c_attn.bias"] = _qkv_rows_back(qkv_bias, n_heads)
    state["transformer.ln_f.weight"] = _take(tensors, "gpt_neox.final_layer_norm.weight", directory)
    state["transformer.ln_f.bias"] = _take(tensors, "gpt_neox.final_layer_norm.bias", directory)
    head = _head(tensors, ("embed_out.weight", "lm_head.weight"), tied, directory)
    if head is not None:
        state["lm_head.weight"] = head
    _no_leftovers(tensors, directory)
    return config, state


def _qkv_rows_back(rows: Tensor, n_heads: int) -> Tensor:
    """GPT-NeoX's [q_0 k_0 v_0 | q_1 k_1 v_1 | ...] -> minitx's [q | k | v] (the inverse of qkv_rows_per_head).

    >>> _qkv_rows_back(torch.tensor([0.0, 10.0, 20.0, 1.0, 11.0, 21.0]), n_heads=2).tolist()
    [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]
    """
    head_dim = rows.shape[0] // (3 * n_heads)
    grouped = rows.reshape(n_heads, 3, head_dim, *rows.shape[1:])  # [H, 3, hd, (C)]
    return grouped.transpose(0, 1).reshape(rows.shape)


def _from_mpt(hf: dict[str, Any], tensors: dict[str, Tensor], directory: Path) -> tuple[ModelConfig, dict]:
    """MptForCausalLM -> minitx alibi without biases (the layouts are the same; only names change)."""
    attn = hf.get("attn_config") or {}
    _require(attn.get("alibi", True) and attn.get("alibi_bias_max", 8) == 8, directory,
             "it does not use ALiBi with alibi_bias_max 8")
    _require(not attn.get("clip_qkv") and not attn.get("qk_ln") and attn.get("softmax_scale") is None, directory,
             "it clips or normalises q/k/v or rescales the softmax")
    _require(hf.get("logit_scale") is None and hf.get("no_bias", True), directory,
             "it scales logits or has biases")
    _require(int(hf.get("expansion_ratio", 4)) == 4, directory, "its MLP is not 4x wide (transformers' MPT is)")
    _check_eps(float(hf.get("layer_norm_epsilon", LAYER_NORM_EPS)), directory)
    n_layers = int(_setting(hf, directory, "n_layers"))
    tied = bool(hf.get("tie_word_embeddings", True))
    config = ModelConfig(
        vocab_size=int(_setting(hf, directory, "vocab_size")),
        block_size=int(_setting(hf, directory, "max_seq_len")),
        n_layers=n_layers,
        n_heads=int(_setting(hf, directory, "n_heads")),
        dim=int(_setting(hf, directory, "d_model")),
        pos=PositionKind.alibi.value,
        bias=False,
        tie_embeddings=tied,
    )
    state = {"transformer.wte.weight": _take(tensors, "transformer.wte.weight", directory)}
    for i in range(n_layers):
        ours, theirs = f"transformer.h.{i}.", f"transformer.blocks.{i}."
        for name, hf_name in MPT_LAYER_NAMES:
            state[f"{ours}{name}.weight"] = _take(tensors, f"{theirs}{hf_name}.weight", directory)
    state["transformer.ln_f.weight"] = _take(tensors, "transformer.norm_f.weight", directory)
    head = _head(tensors, ("lm_head.weight",), tied, directory)
    if head is not None:
        state["lm_head.weight"] = head
    _no_leftovers(tensors, directory)
    return config, state


# ---------------------------------------------------------------------------------------------
# back to the kind that was exported


def _restore_exported_kind(marker: Any, config: ModelConfig, state: dict[str, Tensor]) -> tuple[ModelConfig, dict]:
    """Undo what the export added, where config.json's "minitx" section says so and the weights agree.

    - bias False: every bias is zero -> dropped.
    - pos of a kind that exports to GPT-2 with a fixed table (`encoding_matrix`, zeros if it has
      none): the position table is that table -> dropped, and an embedding the kind scales
      (`embedding_scale`, √d for sinusoidal) is un-scaled (taken from the output layer when the
      original was tied).
    Anything else (no section, or weights changed since the export, e.g. fine-tuned in
    transformers) keeps the plain import, which computes the same function.
    """
    if not isinstance(marker, dict):
        return config, state
    state = dict(state)
    changes: dict[str, Any] = {}
    if marker.get("bias") is False and config.bias:
        biases = [name for name in state if name.endswith(".bias")]
        if all(not state[name].any() for name in biases):
            for name in biases:
                del state[name]
            changes["bias"] = False
    wpe = state.get("transformer.wpe.weight")
    positions = _fixed_gpt2_positions(marker.get("pos"), config)
    if positions is not None and wpe is not None:
        table = positions.encoding_matrix(config.block_size) if positions.has_table else torch.zeros_like(wpe)
        if torch.allclose(wpe, table, atol=1e-6, rtol=0):
            del state["transformer.wpe.weight"]
            changes["pos"] = positions.kind
        scale = positions.embedding_scale
        if "pos" in changes and scale is not None:
            head = state.get("lm_head.weight")
            wte = state["transformer.wte.weight"]
            scaled_head = None if head is None else head * scale
            if marker.get("tie_embeddings") and scaled_head is not None and torch.allclose(scaled_head, wte):
                state["transformer.wte.weight"] = state.pop("lm_head.weight")  # the original matrix, exactly
                changes["tie_embeddings"] = True
            else:
                state["transformer.wte.weight"] = wte / scale
    if "dropout" in marker and isinstance(marker["dropout"], (int, float)):
        changes["dropout"] = float(marker["dropout"])
    if not changes:
        return config, state
    return ModelConfig.from_dict({**config.to_dict(), **changes}), state


def _fixed_gpt2_positions(kind: Any, config: ModelConfig) -> PositionalEncoding | None:
    """The positional module of `kind` for this shape if the export wrote it as GPT-2's fixed wpe, else None."""
    encoding = ENCODINGS.get(kind) if isinstance(kind, str) else None
    if config.pos != PositionKind.learned or encoding is None or encoding.trained or encoding.hf_architecture != "gpt2":
        return None
    try:
        return encoding(ModelConfig.from_dict({**config.to_dict(), "pos": kind}))
    except UserError:  # a shape the kind cannot take: not what the export wrote
        return None


def _build(config: ModelConfig, state: dict[str, Tensor], directory: Path) -> GPT:
    """A GPT with exactly these weights: every name and shape must match (UserError naming the first that does not)."""
    model = build_model(config)
    expected = model.state_dict()
    if config.tie_embeddings:
        state = {**state, "lm_head.weight": state["transformer.wte.weight"]}
    check_tensors_fit(expected, state, directory, "the checkpoint")
    model.load_state_dict(state, strict=True)  # copies in place: a tied matrix stays one shared Parameter
    return model.eval()
