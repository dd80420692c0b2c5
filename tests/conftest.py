"""Shared fixtures: tiny model configurations and models that build in milliseconds.

tiny_config(pos="learned", **overrides) -> ModelConfig   vocab 50, dim 32, 2 layers, 4 heads, block 16
tiny_model                               -> GPT          learned positions, eval mode, seed 0
make_tiny_model(pos="learned", **overrides) -> GPT       same, for any positional encoding
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

TINY = dict(vocab_size=50, block_size=16, n_layers=2, n_heads=4, dim=32, dropout=0.0)


@pytest.fixture
def tiny_config() -> Callable[..., object]:
    """Factory: tiny_config("rope") or tiny_config("alibi", n_heads=2) -> ModelConfig."""
    from minitx.config import ModelConfig

    def make(pos: str = "learned", **overrides: object) -> ModelConfig:
        return ModelConfig(**{**TINY, "pos": pos, **overrides})

    return make


@pytest.fixture
def make_tiny_model(tiny_config: Callable[..., object]) -> Callable[..., object]:
    """Factory: a freshly initialised tiny GPT (seeded, float32, eval mode)."""
    import torch

    from minitx.model import GPT

    def make(pos: str = "learned", seed: int = 0, **overrides: object) -> GPT:
        torch.manual_seed(seed)
        return GPT(tiny_config(pos, **overrides)).eval()

    return make


@pytest.fixture
def tiny_model(make_tiny_model: Callable[..., object]) -> object:
    """A tiny GPT with learned positions (seed 0, eval mode)."""
    return make_tiny_model("learned")


@pytest.fixture(autouse=True, scope="session")
def token_cache_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`minitx train CORPUS` prepares into $MINITX_CACHE: the tests (and their subprocesses) use a fresh one."""
    import os

    os.environ["MINITX_CACHE"] = str(tmp_path_factory.mktemp("token-cache"))
