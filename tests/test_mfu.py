"""MFU: FLOPs per token from the shape, a matmul peak measured once and cached, MFU in metrics.jsonl."""

from __future__ import annotations

import json

import pytest
import torch

from minitx import rundir
from minitx.config import ModelConfig, TrainConfig
from minitx.dataset.batches import split_train_val
from minitx.training import mfu
from minitx.training.loop import Trainer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_flops_per_token_counts_six_per_matmul_weight_plus_attention():
    from minitx.model import GPT

    cfg = ModelConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=2, dim=32, bias=False)
    model = GPT(cfg)
    # every weight a token meets in a matmul: the blocks' linears and the (tied) output layer
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert mfu.flops_per_token(cfg) == 6 * matmul_weights + 12 * 2 * 16 * 32


def test_the_peak_is_measured_once_and_then_read_from_the_cache(cache, monkeypatch):
    calls = []
    real = mfu.measure_matmul_peak

    def counting(device, dtype, budget_seconds=0.05):
        calls.append((device, dtype))
        return real(device, dtype, budget_seconds=0.05)

    monkeypatch.setattr(mfu, "measure_matmul_peak", counting)
    assert mfu.matmul_peak("cpu", "float32", measure=False) is None
    first = mfu.matmul_peak("cpu", "float32")
    again = mfu.matmul_peak("cpu", "float32")
    assert calls == [("cpu", "float32")] and again == first and first.flops > 0
    saved = json.loads((cache / mfu.PEAK_FILE).read_text())
    assert list(saved) == [mfu.peak_key("cpu", "float32")]
    assert saved[mfu.peak_key("cpu", "float32")]["device_name"] == mfu.device_name("cpu")


def test_measuring_the_peak_leaves_the_random_state_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    mfu.measure_matmul_peak("cpu", "float32", budget_seconds=0.02)
    assert torch.equal(before, torch.get_rng_state())


def test_metrics_record_mfu_against_the_cached_peak(tmp_path, cache):
    torch.set_num_threads(1)  # the Trainer's --threads 1: the key of the peak it looks up
    key = mfu.peak_key("cpu", "float32")
    cache.mkdir()
    (cache / mfu.PEAK_FILE).write_text(json.dumps({key: {
        "flops": 1e9, "device_name": "test", "dtype": "float32", "threads": 1, "size": 1, "measured_at": "-",
        "seconds": 0.0}}))
    ids = (torch.arange(3000) % 9).tolist()
    split = split_train_val(ids, n_bytes=3000, block_size=16, val_fraction=0.1)
    mc = ModelConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=2, dim=32)
    tc = TrainConfig(steps=4, batch_size=4, warmup=1, eval_every=2, eval_batches=1, save_every=4, device="cpu",
                     threads=1, dtype="float32")
    rundir.save_config(tmp_path, mc, tc)
    result = Trainer(tmp_path, mc, tc, split).fit()
    record = rundir.read_metrics(tmp_path)[-1]
    tokens_per_second = 4 * 16 / (record["ms_per_step"] / 1000)
    assert record["mfu"] == pytest.approx(tokens_per_second * mfu.flops_per_token(mc) / 1e9)
    assert result.mfu == pytest.approx(result.tokens_per_second * mfu.flops_per_token(mc) / 1e9)
