"""What the hook points cost when no hook is set: training ms/step and generation tokens/s, hooked vs a baseline.

Two worker processes hold one model each, built from the same seed and shape: A imports minitx from this
tree (the model with `HookPoint`s), B from `--baseline`, the `src/` of another checkout -- main before the
hooks, e.g. made with `git archive <commit> src | tar -x -C ../minitx-base`. The driver asks them in
turn, A B A B ..., so both see the same machine state; only one runs at a time. Measured per round:

    train     fp32 eager training steps (forward, loss, backward, AdamW step) on random ids, ms per step
    generate  `generate_ids` from a 4-token prompt (prefill through forward, then decode_next), tokens/s

Reported: each variant's median over the rounds and the ratio hooked / baseline (goal: within 2%).

    python bench/bench_hooks.py --baseline ../minitx-base/src              # the default story shape
    python bench/bench_hooks.py --baseline ../minitx-base/src --preset tiny --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE_SRC = Path(__file__).resolve().parent.parent / "src"


def worker(args: argparse.Namespace) -> None:
    """Build the model once, then answer "train N" / "generate N" lines on stdin with one JSON line each."""
    import torch

    from minitx.config import ModelConfig, preset
    from minitx.generation.sampling import SamplingConfig, generate_ids
    from minitx.model import GPT

    torch.set_num_threads(args.threads)
    shape = preset(args.preset)
    torch.manual_seed(0)
    config = ModelConfig(**{**shape["model"], "dropout": 0.0})
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = shape["train"]["batch_size"]
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(config.vocab_size, (batch, config.block_size), generator=generator)
    y = torch.randint(config.vocab_size, (batch, config.block_size), generator=generator)

    def train(steps: int) -> float:
        model.train()
        started = time.perf_counter()
        for _ in range(steps):
            _, loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - started) / steps * 1000

    def generate(tokens: int) -> float:
        model.eval()
        cfg = SamplingConfig(max_new_tokens=tokens, temperature=1.0, seed=0)
        started = time.perf_counter()
        generate_ids(model, [1, 2, 3, 4], cfg)
        return tokens / (time.perf_counter() - started)

    hooks = sum(type(m).__name__ == "HookPoint" for m in model.modules())
    print(json.dumps({"ready": True, "hook_points": hooks}), flush=True)
    for line in sys.stdin:
        what, n = line.split()
        value = train(int(n)) if what == "train" else generate(int(n))
        print(json.dumps({what: value}), flush=True)


def start(src: Path, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--worker", "--preset", args.preset, "--threads", str(args.threads)]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(process: subprocess.Popen, line: str) -> dict:
    process.stdin.write(line + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="the src/ directory of the checkout to compare with")
    ap.add_argument("--preset", default="small", help="model shape (default: small, the default story model)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    ap.add_argument("--tokens", type=int, default=200, help="generated tokens per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 steps and 20 tokens: does it run?")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.baseline is None or not (args.baseline / "minitx").is_dir():
        ap.error("--baseline must be the src/ directory of a minitx checkout (it holds minitx/)")
    if args.quick:
        args.rounds, args.steps, args.tokens = 2, 2, 20
    variants = {"hooked": start(HERE_SRC, args), "baseline": start(args.baseline, args)}
    try:
        ready = {name: json.loads(p.stdout.readline()) for name, p in variants.items()}
        for p in variants.values():  # warm up: first calls allocate and pick kernels
            ask(p, "train 2")
            ask(p, "generate 10")
        results: dict[str, dict[str, list[float]]] = {name: {"train": [], "generate": []} for name in variants}
        for _ in range(args.rounds):
            for what, n in (("train", args.steps), ("generate", args.tokens)):
                for name, p in variants.items():  # A B A B: the same moment for both
                    results[name][what].append(ask(p, f"{what} {n}")[what])
    finally:
        for p in variants.values():
            p.stdin.close()
            p.wait()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "unknown CPU"
    print(f"{args.preset} preset, fp32 eager, {args.threads} threads, {args.rounds} rounds alternated, {cpu}")
    print(f"hook points: hooked {ready['hooked']['hook_points']}, baseline {ready['baseline']['hook_points']}")
    for what, unit in (("train", "ms/step"), ("generate", "tokens/s")):
        medians = {name: statistics.median(results[name][what]) for name in variants}
        ratio = medians["hooked"] / medians["baseline"]
        print(f"{what:9} hooked {medians['hooked']:8.2f}  baseline {medians['baseline']:8.2f} {unit:9}"
              f"  ratio {ratio:.3f}  (per round: {[round(v, 2) for v in results['hooked'][what]]} vs "
              f"{[round(v, 2) for v in results['baseline'][what]]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
