"""bench/full_val.py, the one evaluator of bench_train.py: its windows, its split, and its number."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import random_model

_SPEC = importlib.util.spec_from_file_location("full_val", Path(__file__).parents[1] / "bench" / "full_val.py")
full_val = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(full_val)


def _hand_loss(model: torch.nn.Module, ids: list[int], block_size: int) -> float:
    """Window k: inputs ids[kB : kB + B], targets one on; one window at a time; mean over all targets."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, block_size):
            x = torch.tensor(ids[start:start + block_size + 1][:-1])[None]
            y = torch.tensor(ids[start + 1:start + block_size + 1])
            logits = model(x)[0][0]
            total += F.cross_entropy(logits.double(), y, reduction="sum").item()
            count += len(y)
    assert count == len(ids) - 1
    return total / count


@pytest.mark.parametrize(("n", "block", "expected"), [(65, 16, (4, 0)), (100, 16, (6, 4)), (17, 16, (1, 0)),
                                                       (18, 16, (1, 2))])
def test_window_count_covers_every_token_but_the_first(n: int, block: int, expected: tuple[int, int]) -> None:
    full, last = full_val.window_count(n, block)
    assert (full, last) == expected
    assert full * block + max(0, last - 1) == n - 1


@pytest.mark.parametrize("batch", [64, 4])
def test_score_ids_equals_a_hand_loop(batch: int) -> None:
    model = random_model(vocab_size=40, block_size=16)
    ids = [random.Random(3).randrange(40) for _ in range(203)]  # 12 full windows and one of 11 tokens
    got = full_val.score_ids(lambda x: model(x)[0], np.asarray(ids), 16, batch=batch)
    assert got == pytest.approx(_hand_loss(model, ids, 16), abs=1e-5)
    assert 2.0 < got < 3 * math.log(40)


def test_the_validation_text_is_what_both_splits_hold_out() -> None:
    """nanoGPT's data[int(n * 0.9):] and minitx's last int(n * 0.1): the evaluator takes the later start."""
    n = 1_115_394  # tiny Shakespeare: the two rules start one character apart
    assert (full_val.nanogpt_val_start(n), full_val.minitx_val_start(n)) == (1_003_854, 1_003_855)
    from minitx.dataset.batches import split_train_val
    from minitx.text.tokenizer import Tokenizer

    text = "".join(random.Random(0).choice("abc de\nf") for _ in range(1_005))
    tok = Tokenizer.train_char(text)
    val = full_val.validation_text(text)
    held_out = split_train_val(tok.encode(text), len(text), 16, 0.1).val
    assert tok.decode(held_out.tolist()) == val
    assert text[int(len(text) * 0.9):].endswith(val)


def test_a_minitx_run_scored_by_full_val_equals_a_hand_loop(tmp_path: Path) -> None:
    from minitx.rundir import load_model
    from minitx.training.setup import run_training

    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    rng = random.Random(1)
    text = " ".join(rng.choice(words) for _ in range(1_500)) + "\n"
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(text, encoding="utf-8")
    flags = {"preset": "tiny", "tokenizer": "char", "steps": 20, "eval_every": 10, "save_every": 10, "keep": 5,
             "threads": 1, "batch_size": 8, "warmup": 2, "n_layers": 1, "dim": 32, "n_heads": 2, "block_size": 32}
    run_training([corpus], tmp_path / "run", flags=flags, show_progress=False)
    steps = [s for s, _ in full_val.minitx_checkpoints(tmp_path / "run")]
    assert steps == [10, 20]
    model, run = load_model(tmp_path / "run")  # the newest: step 20
    ids = run.tokenizer.encode(full_val.validation_text(text))
    expected = _hand_loss(model, ids, 32)
    # the scorer also checks that its text is the run's own val.bin
    assert full_val.score_minitx(tmp_path / "run", text) == pytest.approx(expected, abs=1e-5)
    assert full_val.score_minitx(tmp_path / "run", text, step=10) != pytest.approx(expected, abs=1e-3)
