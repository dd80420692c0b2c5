"""Activation patching speed: one residual × position grid, batched (minitx) vs one forward pass per cell.

The grid: a 4-layer, 4-head, 128-wide model (vocab 1024, random weights), 64 clean/corrupt pairs of
16 tokens, the residual stream patched at every (point, position) -- 5 points × 16 positions = 80
cells, 5,120 (pair, cell) runs. Goal: the whole grid in ≤ 10 s on 2 cores.

  batched   `minitx.inspect.patching.patched_differences`: every (pair, cell) is a row of a few large
            batches; hooks rewrite each row at its own place; the pass stops at ln_f.
  per cell  the loop the TransformerLens tutorials write: for each cell one forward pass of the 64
            corrupt prompts with a hook that puts in the clean activation there (80 passes), full logits.
  per run   the naive loop: one forward pass per (pair, cell), batch 1 (5,120 passes); timed on the
            first --loop-pairs pairs and scaled to all of them (it is linear in pairs).

Both give the same numbers (checked here, ≤ 1e-4). Runs alternate A B A B; the median of each is
reported, and the ratio per cell / batched.

    python bench/bench_patch.py                 # 3 repeats
    python bench/bench_patch.py --quick         # 1 repeat, 16 pairs: does it run?
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from minitx.config import ModelConfig
from minitx.inspect.contrasts import Contrast
from minitx.inspect.patching import Place, patched_differences
from minitx.inspect.residual import decoder_stack, residual_stream
from minitx.model import GPT


def make_pairs(n_pairs: int, length: int, vocab: int, seed: int = 0) -> list[Contrast]:
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n_pairs):
        clean = torch.randint(vocab, (length,), generator=g).tolist()
        corrupt = list(clean)
        corrupt[3] = (clean[3] + 1) % vocab
        pairs.append(Contrast(clean, corrupt, good=1, bad=2, labels=[str(t) for t in range(length)]))
    return pairs


@torch.no_grad()
def per_cell(model: GPT, pairs: list[Contrast]) -> np.ndarray:
    """One forward pass of all corrupt prompts per (point, position), a hook putting the clean stream there."""
    stack = decoder_stack(model)
    clean_ids = torch.tensor([p.clean for p in pairs])
    corrupt_ids = torch.tensor([p.corrupt for p in pairs])
    clean_stream, _ = residual_stream(model, clean_ids)  # [P, N, T, C]
    n_points, _, length, _ = clean_stream.shape
    out = np.zeros((len(pairs), n_points * length))
    for point in range(n_points):
        for position in range(length):
            def put(x: torch.Tensor, _name: str, point=point, position=position) -> torch.Tensor:
                x = x.clone()
                x[:, position] = clean_stream[point][:, position]
                return x

            logits = model.run_with_hooks(corrupt_ids, fwd_hooks=[(stack.stream(point), put)])
            out[:, point * length + position] = (logits[:, -1, 1] - logits[:, -1, 2]).double().numpy()
    return out


def per_run(model: GPT, pairs: list[Contrast]) -> np.ndarray:
    """One batch-1 forward pass per (pair, cell)."""
    return np.concatenate([per_cell(model, [pair]) for pair in pairs])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop-pairs", type=int, default=8, help="pairs the per-run loop is timed on")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.pairs, args.repeats = 16, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=1024, block_size=128, n_layers=4, n_heads=4, dim=128)
    model = GPT(config).eval()
    pairs = make_pairs(args.pairs, args.length, config.vocab_size)
    places = [Place("resid", point, label=str(t)) for point in range(config.n_layers + 1)
              for t in range(args.length)]
    times: dict[str, list[float]] = {"batched": [], "per cell": [], "per run": []}
    scale = len(pairs) / min(args.loop_pairs, len(pairs))
    results = {}
    for _ in range(args.repeats):
        for name, run in (("batched", lambda: patched_differences(model, pairs, places)),
                          ("per cell", lambda: per_cell(model, pairs)),
                          ("per run", lambda: per_run(model, pairs[: args.loop_pairs]))):
            start = time.perf_counter()
            results[name] = run()
            times[name].append((time.perf_counter() - start) * (scale if name == "per run" else 1.0))
    gap = float(np.abs(results["batched"] - results["per cell"]).max())
    gap = max(gap, float(np.abs(results["batched"][: len(results["per run"])] - results["per run"]).max()))
    batched, naive = statistics.median(times["batched"]), statistics.median(times["per cell"])
    one_by_one = statistics.median(times["per run"])
    cells = len(places)
    print(f"grid: {config.n_layers + 1} points × {args.length} positions = {cells} cells, {args.pairs} pairs, "
          f"{args.threads} threads; max |Δ batched − per cell| = {gap:.1e}")
    print(f"batched   {batched:7.2f} s   ({len(pairs) * cells / batched:8.0f} patched runs/s)")
    print(f"per cell  {naive:7.2f} s   ({len(pairs) * cells / naive:8.0f} patched runs/s)")
    print(f"per run   {one_by_one:7.2f} s   ({len(pairs) * cells / one_by_one:8.0f} patched runs/s; scaled from "
          f"{min(args.loop_pairs, len(pairs))} pairs)")
    print(f"ratio per cell / batched: {naive / batched:.2f}x   per run / batched: {one_by_one / batched:.1f}x   "
          f"goal ≤ 10 s: {'met' if batched <= 10 else 'NOT met'}")
    return 0 if gap <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
