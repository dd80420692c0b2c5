"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import torch

from minitx.config import ModelConfig
from minitx.model import GPT


def random_model(
    pos: str = "learned", *, vocab_size: int = 40, block_size: int = 16, n_layers: int = 2, n_heads: int = 2,
    seed: int = 0,
) -> GPT:
    """A small random model, eval mode, with weights larger than GPT-2's init (std 0.1, not 0.02),
    so that its predictions and attention heads are not all alike."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layers=n_layers, n_heads=n_heads, dim=32,
                         pos=pos)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model.eval()
