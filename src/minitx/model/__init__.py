"""The decoder-only transformer: positional encodings, attention, and the GPT that stacks them.

positions.py   where a token stands: sinusoidal, learned, rope, alibi, none
attention.py   masked multi-head self-attention (textbook and fused paths) and the KV cache
gpt.py         MLP, pre-LN residual block, and the GPT model with tied embeddings
"""

from minitx.model.attention import AttentionMask, CausalSelfAttention, KVCache, textbook_attention
from minitx.model.gpt import GPT, MLP, Block
from minitx.model.positions import PositionalEncoding, alibi_slopes, build_positional_encoding

__all__ = [
    "GPT",
    "MLP",
    "AttentionMask",
    "Block",
    "CausalSelfAttention",
    "KVCache",
    "PositionalEncoding",
    "alibi_slopes",
    "build_positional_encoding",
    "textbook_attention",
]
