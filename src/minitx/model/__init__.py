"""The models: positional encodings, attention, the GPT that stacks them, and the registry that builds them.

positions.py   where a token stands: sinusoidal, learned, rope, alibi, none
attention.py   multi-head attention (self and cross; textbook and fused paths) and the KV cache
gpt.py         MLP, pre-LN residual block, and the decoder-only GPT with tied embeddings
encoder_decoder.py  the encoder-decoder: bidirectional encoder, decoder blocks with cross-attention
decode.py      the one-token decoding step (decode_next's pieces, transposed CPU weights)
registry.py    config.json's `arch` -> the model class; build_model(config)
quantize.py    --quantize int8 weights
"""

from minitx.model.attention import AttentionMask, KVCache, MultiHeadAttention, textbook_attention
from minitx.model.encoder_decoder import DecoderBlock, EncoderDecoder, pad_sources
from minitx.model.gpt import GPT, MLP, Block
from minitx.model.positions import PositionalEncoding, alibi_slopes, build_positional_encoding
from minitx.model.registry import ARCHITECTURES, build_model, check_model_config, model_class

__all__ = [
    "ARCHITECTURES",
    "GPT",
    "MLP",
    "AttentionMask",
    "Block",
    "DecoderBlock",
    "EncoderDecoder",
    "KVCache",
    "MultiHeadAttention",
    "PositionalEncoding",
    "alibi_slopes",
    "build_model",
    "build_positional_encoding",
    "check_model_config",
    "model_class",
    "pad_sources",
    "textbook_attention",
]
