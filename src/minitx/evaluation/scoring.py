"""Measuring a trained model: how well it predicts text, and how grammatical its stories are.

- **Loss** is the mean cross-entropy of the next token, in nats: -mean log p(token | the tokens before).
- **Perplexity** = e^loss: the model is as unsure as if it picked uniformly among that many tokens.
- **Bits per byte** = loss / ln 2 × tokens / bytes: the same uncertainty per byte of text, which can be
  compared between models with different tokenizers (a BPE token covers several bytes, a char one).
- **Grammaticality**: sample stories, parse every sentence with the built-in grammar's checker
  (`minitx data check`), and report the share accepted. This is what positional encodings buy: a
  model that ignores word order writes "the red little ball", which the checker rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from minitx.config import DEFAULT_TEMPERATURE
from minitx.dataset import bits_per_byte
from minitx.errors import UserError

if TYPE_CHECKING:
    from minitx.corpus import CheckReport
    from minitx.model import GPT
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer


@dataclass
class TextScore:
    tokens: int
    bytes: int
    loss: float
    perplexity: float
    bits_per_byte: float


@torch.no_grad()
def score_ids(model: GPT, ids: torch.Tensor, n_bytes: int, batch_size: int = 16) -> TextScore:
    """Mean next-token loss over `ids`, cut into non-overlapping windows of block_size + 1 tokens.

    Every token after the first of each window is predicted once, from the tokens before it in its
    window (so at most block_size tokens of context, as in training).
    """
    block = model.config.block_size
    device = next(model.parameters()).device
    n_windows = (len(ids) - 1) // block
    if n_windows < 1:
        from minitx.errors import UserError

        raise UserError(f"the text has {len(ids)} tokens; scoring needs at least block size + 1 = {block + 1}")
    windows = ids[: n_windows * block + 1]
    x_all = windows[:-1].view(n_windows, block)  # (N, T)
    y_all = windows[1:].view(n_windows, block)  # (N, T)
    total, count = 0.0, 0
    model.eval()
    for start in range(0, n_windows, batch_size):
        x = x_all[start : start + batch_size].to(device)
        y = y_all[start : start + batch_size].to(device)
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    loss = total / count
    bytes_per_token = n_bytes / max(1, len(ids))
    return TextScore(count, n_bytes, loss, math.exp(loss), bits_per_byte(loss, bytes_per_token))


def validation_ids(run: Run) -> tuple[torch.Tensor, int, str]:
    """Rebuild a run's validation split: the same corpus, tokenizer and split as in training."""
    from minitx.dataset import load_training_data

    tc = run.train_config
    data = load_training_data([Path(f) for f in tc.corpus_files], tokenizer=run.tokenizer, vocab_size=0,
                              val_fraction=tc.val_fraction, prepared_hint=tc.prepared_data, text_field=tc.text_field)
    if tc.corpus_sha256 not in (None, data.text_sha256):
        raise UserError(f"the corpus ({data.source}) changed since the run was trained on it (its sha256 differs); "
                        "pass the text to score as FILES")
    split = data.split(run.model_config.block_size, tc.val_fraction, doc_aligned=False)
    val = torch.from_numpy(np.asarray(split.val, dtype=np.int64))
    return val, round(split.bytes_per_token * len(val)), f"validation split of {data.source}"


def sample_stories(
    model: GPT,
    tokenizer: Tokenizer,
    n: int,
    seed: int,
    temperature: float = DEFAULT_TEMPERATURE,
    max_new_tokens: int | None = None,
) -> list[str]:
    """Sample `n` stories: each starts after a <|doc|> token and ends at the next one (or the token limit)."""
    from minitx.generation.sampling import SamplingConfig, generate_text

    limit = max_new_tokens or model.config.block_size
    stories: list[str] = []
    batch = 25
    for i in range(0, n, batch):
        cfg = SamplingConfig(max_new_tokens=limit, temperature=temperature, seed=seed + i,
                             num_samples=min(batch, n - i))
        stories.extend(text.strip() for text in generate_text(model, tokenizer, "", cfg).texts)
    return stories


def grammar_score(stories: list[str]) -> CheckReport:
    from minitx.corpus import DOC_TOKEN, check_text

    return check_text("".join(f"{DOC_TOKEN}{s}\n" for s in stories))
