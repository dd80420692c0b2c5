"""The CUDA-only branches, reached without a GPU: torch's CUDA queries are faked, the decisions are checked.

What a fake cannot reach (bf16 autocast on a GPU, CUDA kernels, NCCL collectives, fused AdamW on
CUDA) is run by bench/gpu_check.sh on a machine with a GPU.
"""

from __future__ import annotations

import pytest
import torch

from minitx import device
from minitx.config import ModelConfig, TrainConfig
from minitx.errors import UserError
from minitx.training import distributed, mfu, precision
from minitx.training.distributed import World
from minitx.training.loop import should_compile


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch):
    """Make torch report `n` CUDA GPUs (named "Fake GPU"), with or without bf16 support."""

    def fake(n: int = 1, bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")

    return fake


def test_device_auto_picks_cuda_first_and_cuda_without_a_gpu_is_one_line(fake_gpus) -> None:
    fake_gpus(1)
    assert device.resolve_device("auto") == "cuda"
    assert device.resolve_device("cuda:0") == "cuda:0"
    fake_gpus(0)
    assert device.resolve_device("auto") in ("cpu", "mps")
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        device.resolve_device("cuda")


@pytest.mark.parametrize(("bf16", "chosen"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_on_a_gpu_is_bf16_where_it_is_supported(fake_gpus, bf16, chosen) -> None:
    fake_gpus(1, bf16=bf16)
    assert precision.train_dtype("auto", "cuda") == chosen
    assert precision.train_dtype("auto", "cuda:1") == chosen
    assert precision.train_dtype("auto", "cuda", resumed=True) == chosen  # only a CPU run resumes as fp32
    assert "CUDA" in precision.explain_auto("cuda").reason


def test_ranks_on_cuda_take_their_own_gpu_and_nccl() -> None:
    two = World(rank=1, local_rank=1, size=2)
    assert distributed.rank_device("cuda", two) == "cuda:1"
    assert distributed.rank_device("cuda", World(0, 0, 1)) == "cuda"  # one process keeps what it was given
    assert distributed.rank_device("cpu", two) == "cpu"
    assert distributed.backend_for("cuda:1") == "nccl"
    assert distributed.backend_for("cpu") == "gloo"


def test_nproc_on_cuda_is_refused_in_one_line_without_nccl_or_with_too_few_gpus(fake_gpus, monkeypatch) -> None:
    import torch.distributed as dist

    fake_gpus(1)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    with pytest.raises(UserError, match="needs NCCL"):
        distributed.check_can_launch(2, "cuda")
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    with pytest.raises(UserError, match="more than the 1 CUDA GPUs"):
        distributed.check_can_launch(2, "cuda")
    fake_gpus(2)
    distributed.check_can_launch(2, "cuda")  # two GPUs, NCCL: accepted (no CPU-core limit applies)


def test_a_cuda_rank_sets_its_gpu_before_joining_the_nccl_group(monkeypatch) -> None:
    import torch.distributed as dist

    calls: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: calls.append(("init", backend)))
    distributed.init(World(rank=1, local_rank=1, size=2), "cuda:1")
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]


def test_mfu_names_the_gpu(fake_gpus) -> None:
    fake_gpus(1)
    assert mfu.device_name("cuda:0") == "Fake GPU"
    assert mfu.peak_key("cuda", "bfloat16").startswith("Fake GPU | bfloat16")


def test_compile_pays_sooner_on_a_gpu() -> None:
    """The same run (an estimated ~8 minutes of arithmetic at 100 GFLOP/s) compiles on a GPU, not on a CPU."""
    model = ModelConfig(vocab_size=1024, n_layers=4, n_heads=4, dim=128, block_size=128)
    cfg = TrainConfig(steps=1000, batch_size=64)
    parameters = 1_000_000
    seconds = 6 * parameters * cfg.steps * cfg.batch_size * model.block_size / 100e9
    assert 120 < seconds < 600
    assert should_compile(cfg, model, parameters, "cuda")
    assert not should_compile(cfg, model, parameters, "cpu")
