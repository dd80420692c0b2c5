"""Training an encoder-decoder on sentence pairs: batches, the copy task, resume, the built-in pairs, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from minitx import rundir
from minitx.dataset import pairs as pairs_module
from minitx.dataset.pairs import EncodedPairs, PairSampler, collate
from minitx.errors import UserError
from minitx.text.pairs import read_pairs
from minitx.training.setup import run_training

COPY_FLAGS = {"arch": "encoder-decoder", "tokenizer": "char", "n_layers": 1, "encoder_layers": 1, "dim": 32,
              "n_heads": 2, "block_size": 16, "batch_size": 32, "lr": 1e-2, "min_lr": 1e-3, "warmup": 20,
              "eval_every": 100, "eval_batches": 2, "threads": 1, "pos": "learned"}


def write_copy_pairs(path, n: int = 800, seed: int = 0, letters: str = "abcdef", longest: int = 8):
    """A copy task: the target is the source, strings of 2..`longest` of the `letters`."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            word = "".join(rng.choice(letters) for _ in range(rng.randint(2, longest)))
            f.write(json.dumps({"source": word, "target": word}) + "\n")
    return path


def test_collate_pads_and_shifts_the_target_by_the_boundary_token():
    source, target_in, padding, targets = collate([np.array([5, 6]), np.array([7])],
                                                  [np.array([8]), np.array([9, 9])], boundary_id=0)
    assert source.tolist() == [[5, 6, 0], [7, 0, 0]]  # the end token b = 0 closes each source
    assert padding.tolist() == [[False, False, False], [False, False, True]]
    assert target_in.tolist() == [[0, 8, 0], [0, 9, 9]]
    assert targets.tolist() == [[8, 0, -1], [9, 9, 0]]


def _pairs(n: int = 50) -> EncodedPairs:
    rng = np.random.default_rng(0)
    sources = [rng.integers(1, 20, rng.integers(1, 12)) for _ in range(n)]
    return EncodedPairs(sources, [s[::-1].copy() for s in sources])


def test_batches_hold_pairs_of_similar_length():
    pairs = _pairs(200)
    source, _, padding, _ = PairSampler(pairs, batch_size=8, seed=0, boundary_id=0).next()
    lengths = (~padding).sum(1)
    assert int(lengths.max() - lengths.min()) <= 2  # neighbours in length order, not a random mix


def test_ranks_split_one_global_batch_and_the_state_replays_it():
    pairs = _pairs()
    whole = PairSampler(pairs, batch_size=8, seed=3, boundary_id=0)
    halves = [PairSampler(pairs, batch_size=4, seed=3, boundary_id=0, rank=r, world_size=2) for r in (0, 1)]
    state = whole.get_state()
    expected = whole.next()
    parts = [h.next() for h in halves]
    width = max(p[0].shape[1] for p in parts)
    joined = torch.cat([torch.nn.functional.pad(p[0], (0, width - p[0].shape[1])) for p in parts])
    assert torch.equal(joined[:, : expected[0].shape[1]], expected[0])
    whole.set_state(state)
    assert all(torch.equal(a, b) for a, b in zip(whole.next(), expected, strict=True))


def test_copy_task_reaches_100_percent_on_held_out_strings(tmp_path):
    from minitx.generation.translate import translate

    corpus = write_copy_pairs(tmp_path / "copy.jsonl", n=3000, letters="abcd", longest=5)
    flags = {**COPY_FLAGS, "steps": 600, "lr": 3e-3, "n_layers": 2, "eval_every": 600}
    run_training([corpus], tmp_path / "run", flags=flags, show_progress=False)
    model, run = rundir.load_model(tmp_path / "run")
    assert run.model_config.arch == "encoder-decoder"
    held_out = [p["source"] for p in read_pairs(corpus)[-300:]]  # the last 10%: never trained on
    assert translate(model, run.tokenizer, held_out) == held_out


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    corpus = write_copy_pairs(tmp_path / "copy.jsonl", n=200)
    flags = {**COPY_FLAGS, "eval_every": 5, "save_every": 5, "dropout": 0.1}
    whole, _ = run_training([corpus], tmp_path / "whole", flags={**flags, "steps": 10}, show_progress=False)
    run_training([corpus], tmp_path / "part", flags={**flags, "steps": 5}, show_progress=False)
    resumed, _ = run_training([], tmp_path / "part", flags={"steps": 10, "threads": 1}, resume=True,
                              show_progress=False)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_train_arch_encoder_decoder_alone_uses_the_built_in_pairs_and_the_translate_preset(tmp_path, monkeypatch):
    monkeypatch.setattr(pairs_module, "BUILTIN_PAIRS", 300)
    flags = {"arch": "encoder-decoder", "steps": 2, "dim": 32, "n_layers": 1, "encoder_layers": 1, "vocab_size": 300,
             "eval_every": 2, "eval_batches": 1, "threads": 1}
    trainer, _ = run_training([], tmp_path / "run", flags=flags, show_progress=False)
    run = rundir.load_run(tmp_path / "run")
    assert run.train_config.preset == "translate" and run.train_config.corpus == pairs_module.BUILTIN_NAME
    assert run.model_config.arch == "encoder-decoder" and run.model_config.block_size == 64  # the preset's
    assert trainer.history[-1]["val_bpb"] > 0


@pytest.mark.parametrize("line, message", [
    ('{"text": "a"}', "has no field 'source'"),
    ('{"source": "", "target": "b"}', "is empty"),
    ("not json", "is not JSON"),
])
def test_pairs_without_the_fields_are_one_clear_error(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"source": "a", "target": "b"}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message) as error:
        run_training([path], tmp_path / "run", flags={**COPY_FLAGS, "steps": 1}, show_progress=False)
    assert "bad.jsonl line 2" in str(error.value)
    assert not (tmp_path / "run").exists()  # nothing written


def test_other_fields_are_read_with_source_field_and_target_field(tmp_path):
    path = tmp_path / "de.jsonl"
    path.write_text("".join(json.dumps({"en": w, "de": w.upper()}) + "\n" for w in ["ab", "cd", "ef"] * 10),
                    encoding="utf-8")
    assert read_pairs(path, "en", "de")[0]["target"] == "AB"
    flags = {**COPY_FLAGS, "steps": 1, "source_field": "en", "target_field": "de"}
    run_training([path], tmp_path / "run", flags=flags, show_progress=False)
    assert rundir.load_run(tmp_path / "run").train_config.source_field == "en"
