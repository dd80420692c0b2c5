"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch

from minitx.config import ModelConfig
from minitx.model import GPT, EncoderDecoder


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


def random_translator(pos: str = "rope", *, vocab_size: int = 30, block_size: int = 12, n_layers: int = 2,
                      encoder_layers: int | None = None, bias: bool = True, seed: int = 0) -> EncoderDecoder:
    """A small random encoder-decoder, eval mode, with large weights (std 0.3), so that its heads, its answers and
    every source position differ -- the one builder the translation tests share."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layers=n_layers,
                         encoder_layers=encoder_layers, n_heads=2, dim=16, pos=pos, bias=bias, arch="encoder-decoder")
    model = EncoderDecoder(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def train_story_run(out: Path, pos: str = "rope", steps: int = 150, corpus_bytes: int = 120_000) -> Path:
    """Train a tiny model on the built-in stories into run directory `out` (a few seconds); return `out`."""
    from minitx.corpus.generate import generate_corpus
    from minitx.training.setup import run_training

    corpus = out.parent / f"{out.name}-corpus.txt"
    corpus.write_text(generate_corpus(corpus_bytes, seed=0), encoding="utf-8")
    flags = {"preset": "tiny", "steps": steps, "eval_every": steps, "threads": 1, "batch_size": 16, "warmup": 10,
             "pos": pos, "n_layers": 2, "dim": 32, "block_size": 32, "vocab_size": 300}
    run_training([corpus], out, flags=flags, show_progress=False)
    return out


def train_pair_run(out: Path) -> Path:
    """Train a 1 + 1-layer encoder-decoder for 3 steps on the built-in pairs into `out` via the CLI; return `out`."""
    from typer.testing import CliRunner

    from minitx.cli import app

    result = CliRunner().invoke(app, ["train", "--arch", "encoder-decoder", "--tokenizer", "char", "--layers", "1",
                                      "--encoder-layers", "1", "--heads", "2", "--dim", "16", "--block-size", "96",
                                      "--steps", "3", "--batch-size", "4", "--warmup", "1", "--eval-every", "3",
                                      "--eval-batches", "1", "--threads", "1", "--device", "cpu", "--no-compile",
                                      "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


# -- a real browser (Debian's chromium driven by Playwright for Python) ------------------------------------------


def chromium_executable() -> str | None:
    """$MINITX_CHROMIUM, or the first Chromium on the PATH (Playwright's own browser download is not needed)."""
    if os.environ.get("MINITX_CHROMIUM"):
        return os.environ["MINITX_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def unavailable(why: str) -> NoReturn:
    """Skip locally; in CI a missing browser is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser test (.ci/run installs chromium)")
    pytest.skip(why)


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless Chromium browser for the page tests (closed after); skipped locally, failed in CI, when
    Playwright or a Chromium executable is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_executable()
    if executable is None:
        unavailable("no Chromium found (apt-get install chromium, or set MINITX_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
