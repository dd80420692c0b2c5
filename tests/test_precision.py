"""--dtype auto is decided by the kind of device, at any thread count; CPU bf16 autocast keeps attention in fp32."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from minitx import device
from minitx.config import ModelConfig
from minitx.model.attention import AttentionMask, MultiHeadAttention
from minitx.training import precision


@pytest.fixture
def amx(monkeypatch):
    """Make torch report a CPU with (True) or without (False) AMX bf16 tiles."""

    def set_amx(present: bool) -> None:
        capabilities = {**torch.cpu.get_capabilities(), "amx_bf16": present, "amx_tile": present}
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)

    return set_amx


@pytest.mark.parametrize(("has_amx", "chosen"), [(True, "bfloat16"), (False, "float32")])
def test_auto_on_a_cpu_is_bfloat16_exactly_where_it_has_amx_tiles(amx, has_amx, chosen):
    amx(has_amx)
    assert precision.train_dtype("auto", "cpu") == chosen
    choice = precision.explain_auto("cpu")
    assert choice.dtype == chosen and ("with AMX" if has_amx else "without AMX") in choice.reason


@pytest.mark.parametrize("has_amx", [True, False])
def test_auto_does_not_depend_on_the_thread_count_or_omp_num_threads(amx, monkeypatch, has_amx):
    amx(has_amx)
    before = torch.get_num_threads()
    answers = set()
    try:
        for threads, omp in ((1, "1"), (2, "2"), (1, None), (4, "4")):
            torch.set_num_threads(threads)
            if omp is None:
                monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
            else:
                monkeypatch.setenv("OMP_NUM_THREADS", omp)
            answers.add(precision.explain_auto("cpu"))
    finally:
        torch.set_num_threads(before)
    assert len(answers) == 1


def test_auto_is_the_same_in_a_fresh_process_at_one_thread_as_here():
    """What a rank of `torchrun` (OMP_NUM_THREADS=1) decides is what this process decides."""
    code = "from minitx.device import auto_dtype; print(auto_dtype('cpu').dtype)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout.strip() == device.auto_dtype("cpu").dtype


def test_auto_on_gpus_and_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert device.resolve_dtype("auto", "cuda") == "bfloat16"
    assert device.resolve_dtype("auto", "cuda:1") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert device.auto_dtype("cuda").dtype == "float32"
    assert device.auto_dtype("mps").dtype == "float32"


def test_a_named_dtype_and_a_resumed_auto_run_are_not_second_guessed(amx):
    amx(True)
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


def test_a_run_records_the_dtype_it_trained_in_and_resumes_in_it(tmp_path, amx):
    from minitx.rundir.files import read_config
    from minitx.training.setup import run_training

    amx(True)  # this "CPU" has AMX tiles: auto picks bf16
    (tmp_path / "corpus.txt").write_text("the cat sat on the mat. " * 200, encoding="utf-8")
    flags = {"preset": "tiny", "tokenizer": "char", "steps": 4, "eval_every": 2, "eval_batches": 1, "save_every": 2,
             "threads": 1, "batch_size": 4, "n_layers": 1, "dim": 16, "n_heads": 2, "block_size": 16}
    run = tmp_path / "run"
    run_training([tmp_path / "corpus.txt"], run, flags=flags, show_progress=False)
    assert read_config(run)["train"]["dtype"] == "bfloat16"
    amx(False)  # the same run resumed where bf16 would not pay keeps bf16: its recipe
    run_training([tmp_path / "corpus.txt"], run, flags={"steps": 6, "threads": 1}, resume=True, show_progress=False)
    assert read_config(run)["train"]["dtype"] == "bfloat16"
