"""Data-parallel training speed: 1 process × T threads against N processes × T/N threads (DDP, torchrun).

On a CPU this answers "what does DistributedDataParallel cost?": the same global batch is computed by
one process, or split over N processes that average their gradients with an all-reduce after every
backward pass. On a machine with GPUs it reports tokens/s and MFU per GPU count.

    python bench/bench_ddp.py                       # CPU: 1×2 threads vs 2×1 thread, nanoGPT's CPU shape
    python bench/bench_ddp.py --device cuda --gpus 1,2,4,8 --preset medium --dtype bfloat16

Configurations alternate (A B A B ...) and each figure is the median over the measured steps; the
all-reduce time is measured separately in the same processes: an all-reduce of one flat tensor as
large as all the gradients, which is what DDP's buckets add up to per step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: bf16 dense matrix-multiply peak of common GPUs (TFLOP/s), for MFU; pass --peak-tflops otherwise.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def worker(args: argparse.Namespace) -> None:
    """One rank: time training steps of the preset's model on random ids, then the all-reduce alone."""
    import torch
    import torch.distributed as dist

    from minitx.config import ModelConfig, TrainConfig, preset
    from minitx.dataset.batches import BatchSampler
    from minitx.model import GPT
    from minitx.training import distributed
    from minitx.training.optim import build_optimizer

    world = distributed.World.from_env()
    device = distributed.rank_device(args.device, world)
    distributed.init(world, device)
    torch.set_num_threads(args.threads)
    chosen = preset(args.preset)
    config = ModelConfig(**{**chosen["model"], "vocab_size": args.vocab, "dropout": 0.0})
    torch.manual_seed(0)
    model = GPT(config).to(device)
    ddp = distributed.wrap(model, world, device)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3, weight_decay=0.1, beta2=0.99), device.split(":")[0])
    data = torch.randint(args.vocab, (200_000,))
    batch = args.global_batch // world.size
    sampler = BatchSampler(data, config.block_size, batch, 0, device, rank=world.rank, world_size=world.size)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if args.dtype == "bfloat16" else None
    step_seconds = []
    for step in range(args.warmup + args.steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        x, y = sampler.next()
        if autocast is not None:
            with autocast:
                _, loss = ddp(x, y)
        else:
            _, loss = ddp(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= args.warmup:
            step_seconds.append(time.perf_counter() - started)
    reduce_seconds = []
    if world.distributed:
        flat = torch.zeros(sum(p.numel() for p in model.parameters()), device=device)
        for i in range(args.warmup + args.steps):
            distributed.barrier(world)
            started = time.perf_counter()
            dist.all_reduce(flat)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= args.warmup:
                reduce_seconds.append(time.perf_counter() - started)
    if world.is_main:
        result = {
            "world": world.size, "threads": args.threads, "ms_per_step": 1000 * statistics.median(step_seconds),
            "allreduce_ms": 1000 * statistics.median(reduce_seconds) if reduce_seconds else 0.0,
            "tokens_per_step": args.global_batch * config.block_size, "parameters": model.num_parameters(),
        }
        Path(args.out).write_text(json.dumps(result))
    distributed.shutdown(world)


def launch(nproc: int, threads: int, args: argparse.Namespace, out: Path) -> dict:
    """Run the worker as `nproc` torchrun processes with `threads` threads each; return rank 0's figures."""
    flags = ["--worker", "--threads", str(threads), "--preset", args.preset, "--device", args.device,
             "--dtype", args.dtype, "--global-batch", str(args.global_batch), "--steps", str(args.steps),
             "--warmup", str(args.warmup), "--vocab", str(args.vocab), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc == 1:
        cmd = [sys.executable, __file__, *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               __file__, *flags]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 (autocast)")
    parser.add_argument("--preset", default="nanogpt-cpu", help="model shape (minitx preset)")
    parser.add_argument("--global-batch", type=int, default=12, help="sequences per step over all processes")
    parser.add_argument("--steps", type=int, default=60, help="measured steps per configuration")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--vocab", type=int, default=65, help="vocabulary (65: tiny Shakespeare's characters)")
    parser.add_argument("--repeats", type=int, default=2, help="alternations of the configurations")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU: threads to share out")
    parser.add_argument("--gpus", default="1", help="cuda: comma-separated GPU counts to compare")
    parser.add_argument("--peak-tflops", type=float, default=None, help="per-GPU peak for MFU (default: by name)")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from rich.console import Console
    from rich.table import Table

    if args.device == "cpu":
        configs = [(1, args.cores), (args.cores, 1)] if args.cores > 1 else [(1, 1)]
    else:
        configs = [(int(n), 1) for n in args.gpus.split(",")]
    runs: dict[tuple[int, int], list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for nproc, threads in configs:  # A B A B: drift hits every configuration alike
                runs[nproc, threads].append(launch(nproc, threads, args, Path(tmp) / f"{nproc}-{repeat}.json"))
    peak = args.peak_tflops
    if peak is None and args.device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    base = statistics.median(r["ms_per_step"] for r in runs[configs[0]])
    table = Table(title=f"DDP, {args.preset} shape, global batch {args.global_batch}, {args.device} {args.dtype}")
    for col in ["processes × threads", "ms/step", "vs first", "all-reduce ms/step", "tokens/s", "MFU"]:
        table.add_column(col, justify="right")
    for (nproc, threads), rs in runs.items():
        ms = statistics.median(r["ms_per_step"] for r in rs)
        reduce_ms = statistics.median(r["allreduce_ms"] for r in rs)
        tokens_per_s = rs[0]["tokens_per_step"] / (ms / 1000)
        flops = 6 * rs[0]["parameters"] * tokens_per_s
        mfu = f"{100 * flops / (peak * 1e12 * nproc):.1f}%" if peak else "-"
        table.add_row(f"{nproc} × {threads}", f"{ms:.1f}", f"{ms / base:.2f}×", f"{reduce_ms:.2f}",
                      f"{tokens_per_s:,.0f}", mfu)
    Console().print(table)


if __name__ == "__main__":
    main()
