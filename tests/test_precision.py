"""--dtype auto is decided by measured matmul peaks; bf16 autocast on a CPU keeps attention in fp32."""

from __future__ import annotations

import json

import pytest
import torch

from minitx.config import ModelConfig
from minitx.model.attention import AttentionMask, MultiHeadAttention
from minitx.training import mfu, precision


@pytest.fixture
def peaks(tmp_path, monkeypatch):
    """Write fake cached peaks (GFLOP/s by dtype) for this CPU at the current thread count."""
    monkeypatch.setenv("MINITX_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()

    def write(**gflops: float) -> None:
        found = {mfu.peak_key("cpu", dtype): {"flops": value * 1e9, "device_name": "test", "dtype": dtype,
                                              "threads": torch.get_num_threads(), "size": 1, "measured_at": "-",
                                              "seconds": 0.0} for dtype, value in gflops.items()}
        (tmp_path / "cache" / mfu.PEAK_FILE).write_text(json.dumps(found))

    return write


@pytest.mark.parametrize(("fp32", "bf16", "chosen"), [(200, 1500, "bfloat16"), (200, 400, "bfloat16"),
                                                      (200, 399, "float32"), (200, 100, "float32")])
def test_auto_on_a_cpu_is_bfloat16_only_where_its_measured_peak_is_twice_fp32s(peaks, fp32, bf16, chosen):
    peaks(float32=fp32, bfloat16=bf16)
    assert precision.train_dtype("auto", "cpu") == chosen


def test_a_named_dtype_and_a_resumed_auto_run_are_not_second_guessed(peaks):
    peaks(float32=200, bfloat16=1500)
    assert precision.train_dtype("float32", "cpu") == "float32"
    assert precision.train_dtype("bfloat16", "cpu") == "bfloat16"
    # a run saved with "auto" was saved when auto meant float32 on every CPU: it resumes as it began
    assert precision.train_dtype("auto", "cpu", resumed=True) == "float32"


@pytest.mark.parametrize("cross", [False, True])
def test_attention_under_cpu_autocast_runs_in_fp32_and_matches_the_textbook(cross):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, block_size=16, n_layers=1, n_heads=2, dim=16)
    attention = MultiHeadAttention(config, cross=cross)
    x, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    mask = (AttentionMask(5, t_k=7, causal=False, key_padding=padding) if cross else AttentionMask(5))
    kwargs = {"context": context} if cross else {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused, _ = attention(x, mask, **kwargs)
        reference, _ = attention(x, mask, textbook=True, **kwargs)
    assert fused.dtype == torch.bfloat16  # c_proj after it is still a bf16 matmul
    assert torch.allclose(fused.float(), reference.float(), atol=2e-2)
    fused.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in attention.parameters())


def test_a_run_records_the_dtype_it_trained_in_and_resumes_in_it(tmp_path, peaks):
    from minitx.rundir.files import read_config
    from minitx.training.setup import run_training

    peaks(float32=200, bfloat16=1500)  # this "CPU" pays for bf16: auto picks it
    (tmp_path / "corpus.txt").write_text("the cat sat on the mat. " * 200, encoding="utf-8")
    flags = {"preset": "tiny", "tokenizer": "char", "steps": 4, "eval_every": 2, "eval_batches": 1, "save_every": 2,
             "threads": 1, "batch_size": 4, "n_layers": 1, "dim": 16, "n_heads": 2, "block_size": 16}
    run = tmp_path / "run"
    run_training([tmp_path / "corpus.txt"], run, flags=flags, show_progress=False)
    assert read_config(run)["train"]["dtype"] == "bfloat16"
    peaks(float32=200, bfloat16=100)  # the same run resumed where bf16 would not pay keeps bf16: its recipe
    run_training([tmp_path / "corpus.txt"], run, flags={"steps": 6, "threads": 1}, resume=True, show_progress=False)
    assert read_config(run)["train"]["dtype"] == "bfloat16"
