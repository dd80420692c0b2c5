"""Training speed and quality: minitx vs nanoGPT on tiny Shakespeare, nanoGPT's CPU configuration.

Runs are alternated (nanoGPT, minitx, nanoGPT, minitx, ...) with nothing else running; timings on a
shared 2-core machine drift by ±25% over minutes, so only figures from the same run are compared.

    python bench/bench_train.py                  # both parts
    python bench/bench_train.py --part speed     # per-step time, val loss at 2000, peak memory
    python bench/bench_train.py --part quality   # time until nanoGPT's final val loss (same run)
    python bench/bench_train.py --part variants  # ms/step, tokens/s, MFU of fp32/bf16/compile/Muon, alternated
    python bench/bench_train.py --part variants --device cuda --variants "bf16 autocast,bf16 compile"

Validation losses are those of one evaluator, bench/full_val.py: each tool's final checkpoint (nanoGPT's
ckpt.pt of iteration --steps, minitx's checkpoints/step-NNNNNN) scored on the whole validation split,
not each tool's own average of a few random batches (shown as a secondary row).

Per-step time is the median over all optimisation steps (evaluation steps excluded for both).
Time to quality: the target is nanoGPT's full-split loss after --steps steps (median over --repeats);
minitx's fast recipe saves a checkpoint every 50 steps, each is scored afterwards, and the first at or
below the target counts; times are optimisation time only (evaluations and saves excluded for both).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from peers import WORK, nanogpt_dir, run_measured, shakespeare, single_thread_env

NANOGPT_FLAGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--log_interval=1",
                 "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
                 "--lr_decay_iters={steps}", "--max_iters={steps}", "--dropout=0.0", "--eval_iters={eval_iters}",
                 "--eval_interval={eval_interval}", "--always_save_checkpoint=True", "--out_dir={out_dir}"]
MINITX_SAME = ["--tokenizer", "char", "--layers", "4", "--heads", "4", "--dim", "128", "--block-size", "64",
               "--batch-size", "12", "--steps", "{steps}", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "100",
               "--beta2", "0.99", "--weight-decay", "0.1", "--grad-clip", "1", "--dropout", "0", "--pos", "learned",
               "--no-bias", "--eval-every", "250", "--eval-batches", "{eval_iters}", "--save-every", "100000",
               "--optimizer", "adamw"]  # nanoGPT's optimizer, whatever the preset's default (Muon since session 7)
# minitx's own recipe for reaching the target quickly (see docs/decisions.md for how it was chosen)
MINITX_FAST = ["--tokenizer", "char", "--layers", "4", "--heads", "4", "--dim", "128", "--block-size", "64",
               "--pos", "rope", "--no-bias", "--dropout", "0", "--batch-size", "12", "--lr", "4e-3",
               "--min-lr", "4e-4", "--warmup", "50", "--steps", "600", "--beta2", "0.99", "--weight-decay", "0.1",
               "--grad-clip", "1", "--eval-every", "50", "--eval-batches", "{eval_iters}", "--save-every", "50",
               "--keep", "1000", "--optimizer", "muon", "--muon-lr", "0.02", "--no-compile"]


def cpu_name() -> str:
    """The processor the figures were measured on, and whether it has AMX tiles: bf16 speeds differ by kind."""
    from minitx.device import cpu_has_amx
    from minitx.training.mfu import device_name

    return f"{device_name('cpu')}, {'AMX' if cpu_has_amx() else 'no AMX'}"


def _fill(args: list[str], **values: object) -> list[str]:
    return [a.format(**values) for a in args]


#: nanoGPT's prepare.py imports `requests` for a download it skips when input.txt is there (it always is,
#: below): an empty stand-in spares minitx's bench extra that dependency.
RUN_PREPARE = ("import runpy, sys, types; sys.modules.setdefault('requests', types.ModuleType('requests')); "
               "runpy.run_path('prepare.py', run_name='__main__')")


def prepare_nanogpt(data: Path, checkout: Path | None) -> Path | None:
    root = nanogpt_dir(checkout)
    if root is None:
        return None
    ddir = root / "data" / "shakespeare_char"
    if not (ddir / "meta.pkl").exists():
        shutil.copyfile(data, ddir / "input.txt")
        rc = run_measured([sys.executable, "-c", RUN_PREPARE], cwd=ddir)
        if rc.returncode != 0:
            print(rc.stderr[-2000:])
            return None
    return root


def _eval_interval(steps: int) -> int:
    """nanoGPT's eval (and checkpoint) interval: the largest divisor of `steps` up to 250, so that its last
    evaluation -- and the checkpoint saved with it -- falls on iteration `steps`."""
    return next(d for d in range(min(250, steps), 0, -1) if steps % d == 0)


#: glibc's settings minitx's trainer makes itself (src/minitx/training/allocator.py), as environment variables
KEPT_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024 ** 3)}


def run_nanogpt(root: Path, steps: int, eval_iters: int, threads: int, corpus: str, tag: str,
                kept_memory: bool = False) -> dict:
    """One nanoGPT run, its ckpt.pt scored on the full validation split.

    nanoGPT's loop evaluates (and with --always_save_checkpoint=True saves) at the top of iteration
    `iter_num`, before that iteration's update: the checkpoint of iteration `steps` holds the weights
    after exactly `steps` updates (the loop then makes one more update, which no checkpoint holds).
    Iteration i's printed time covers its evaluation, if any, and update i + 1, so the optimisation
    time to the final checkpoint is iterations 0 .. steps - 1, evaluation iterations counted at the median.
    `kept_memory`: with the allocator settings minitx makes for itself (KEPT_MEMORY_ENV), for comparison.
    """
    import full_val

    out_dir = WORK / f"nanogpt-{tag}"
    shutil.rmtree(out_dir, ignore_errors=True)  # never score a checkpoint of an earlier run
    flags = _fill(NANOGPT_FLAGS, steps=steps, eval_iters=eval_iters, eval_interval=_eval_interval(steps),
                  out_dir=out_dir)
    env = {**single_thread_env(threads), **(KEPT_MEMORY_ENV if kept_memory else {})}
    out = run_measured([sys.executable, "train.py", *flags], cwd=root, env=env)
    if out.returncode != 0:
        raise SystemExit(f"nanoGPT failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    iters = {int(m[1]): float(m[2]) for m in re.finditer(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", out.stdout)}
    evals = {int(m[1]): float(m[2]) for m in re.finditer(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)",
                                                         out.stdout)}
    eval_steps = set(evals)
    median = statistics.median(ms for it, ms in iters.items() if it not in eval_steps and it > 0)
    at_final = sum(iters[i] if i not in eval_steps else median for i in iters if i < steps) / 1000
    val_full, saved_at = full_val.score_nanogpt(out_dir / "ckpt.pt", root, corpus)
    if saved_at != steps:
        raise SystemExit(f"nanoGPT's ckpt.pt is of iteration {saved_at}, not {steps}")
    return {"ms_per_step": median, "val_random": evals[max(evals)], "val_full": val_full,
            "peak_mb": out.peak_rss_mb, "seconds_at_final": at_final, "wall": out.seconds}


def run_minitx(data: Path, args: list[str], threads: int, tag: str, dtype: str, corpus: str,
               every_checkpoint: bool = False) -> dict:
    """One minitx run; its final checkpoint (or, with `every_checkpoint`, each one) scored on the full split.

    `curve`: (step, full-split loss, train_seconds) per checkpoint, train_seconds being metrics.jsonl's
    optimisation time up to that step (evaluations and saves excluded), so checkpoints must fall on
    evaluation steps.
    """
    import full_val

    out_dir = WORK / f"minitx-{tag}"
    cmd = [sys.executable, "-m", "minitx.cli", "train", str(data), "--out", str(out_dir), "--force", "--quiet",
           "--threads", str(threads), *args, "--dtype", dtype]
    out = run_measured(cmd, env=single_thread_env(threads))
    if out.returncode != 0:
        raise SystemExit(f"minitx failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    metrics = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    ran = json.loads((out_dir / "config.json").read_text())["train"]["dtype"]
    ms = [m["ms_per_step"] for m in metrics if m.get("ms_per_step")]
    seconds = {m["step"]: m["train_seconds"] for m in metrics}
    checkpoints = full_val.minitx_checkpoints(out_dir)
    scorer = full_val.MinitxScorer(out_dir, corpus)
    scored = checkpoints if every_checkpoint else checkpoints[-1:]
    curve = [(step, scorer.score(path), seconds[step]) for step, path in scored]
    return {"ms_per_step": statistics.median(ms), "val_random": metrics[-1]["val_loss"], "val_full": curve[-1][1],
            "final_step": checkpoints[-1][0], "curve": curve, "dtype": ran, "peak_mb": out.peak_rss_mb,
            "wall": out.seconds, "seconds_at_final": metrics[-1]["train_seconds"]}

#: --part variants: TrainConfig/ModelConfig changes measured against today's default (fp32, eager)
VARIANTS = {
    "fp32 eager": {"dtype": "float32", "compile": False},
    "bf16 autocast": {"dtype": "bfloat16", "compile": False},
    "fp32 compile": {"dtype": "float32", "compile": True},
    "bf16 compile": {"dtype": "bfloat16", "compile": True},
    "muon fp32": {"optimizer": "muon", "dtype": "float32", "compile": False},
}


def step_variants(data: Path, threads: int, names: list[str], rounds: int, steps: int, device: str) -> dict:
    """In one process, alternate the variants: per round, `steps` optimisation steps of each, timed.

    Returns per variant: the median ms/step of each round, and the cold start (building, and for
    torch.compile its first compiled steps) in seconds.
    """
    import tempfile
    import time

    from minitx.config import ModelConfig, TrainConfig
    from minitx.dataset.training_data import load_training_data
    from minitx.training import mfu
    from minitx.training.loop import Trainer

    corpus = load_training_data([data], tokenizer="char", vocab_size=0, val_fraction=0.1)
    split = corpus.split(64, 0.1, False)
    shape = {"vocab_size": corpus.tokenizer.vocab_size, "n_layers": 4, "n_heads": 4, "dim": 128, "block_size": 64,
             "bias": False, "dropout": 0.0}
    trainers, out = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            started = time.perf_counter()
            train = {"steps": 100_000, "batch_size": 12, "lr": 1e-3, "warmup": 100, "beta2": 0.99, "threads": threads,
                     "device": device, "seed": 1337, **VARIANTS[name]}
            t = Trainer(Path(tmp) / name.replace(" ", "-"), ModelConfig(**shape), TrainConfig(**train), split)
            for _ in range(5):  # compiles here, when it does
                t.train_step()
            trainers[name] = t
            peak = mfu.matmul_peak(t.device, t.dtype)
            out[name] = {"cold_start_s": time.perf_counter() - started, "rounds": [],
                         "flops_per_step": mfu.flops_per_token(t.model_config) * 12 * 64, "peak": peak.flops}
        for _ in range(rounds):
            for name, t in trainers.items():
                times = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    t.train_step()
                    times.append(time.perf_counter() - t0)
                out[name]["rounds"].append(1000 * statistics.median(times))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="tiny Shakespeare (default: fetched into bench/_work)")
    ap.add_argument("--nanogpt", type=Path, default=None, help="nanoGPT checkout (default: cloned into bench/_work)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", choices=["speed", "quality", "both", "variants"], default="both")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="--part variants: which, comma-separated")
    ap.add_argument("--rounds", type=int, default=4, help="--part variants: alternated rounds")
    ap.add_argument("--round-steps", type=int, default=40, help="--part variants: steps per variant per round")
    ap.add_argument("--device", default="cpu", help="--part variants: cpu, cuda, mps")
    ap.add_argument("--fast-recipe", default="", help="extra minitx flags for the quality run")
    ap.add_argument("--same-recipe", default="", help="extra minitx flags for the speed run, e.g. --compile")
    ap.add_argument("--minitx-dtype", default="both", choices=["both", "auto", "float32", "bfloat16"],
                    help="minitx's --dtype: both (speed: float32 and bfloat16 side by side; quality: auto), or one")
    ap.add_argument("--nanogpt-kept-memory", action="store_true",
                    help="--part speed: also run nanoGPT with minitx's glibc allocator settings (KEPT_MEMORY_ENV)")
    args = ap.parse_args(argv)
    console = Console()
    WORK.mkdir(parents=True, exist_ok=True)
    args.data = shakespeare(args.data)
    if args.data is None:
        console.print("skipped: tiny Shakespeare is needed for this benchmark")
        return 0
    if args.part == "variants":
        names = [n.strip() for n in args.variants.split(",")]
        found = step_variants(args.data, args.threads, names, args.rounds, args.round_steps, args.device)
        table = Table(title=f"ms/step, nanoGPT's CPU shape, {args.threads} threads, {args.device} ({cpu_name()}): "
                            f"median of "
                            f"{args.rounds} alternated rounds of {args.round_steps} steps")
        for col in ("variant", "ms / step", "rounds", "vs first", "tokens / s", "MFU", "cold start s"):
            table.add_column(col, justify="right")
        base = statistics.median(found[names[0]]["rounds"])
        for name in names:
            r, ms = found[name]["rounds"], statistics.median(found[name]["rounds"])
            share = found[name]["flops_per_step"] / (ms / 1000) / found[name]["peak"]
            table.add_row(name, f"{ms:.1f}", " ".join(f"{x:.1f}" for x in r), f"{base / ms:.2f}×",
                          f"{12 * 64 / (ms / 1000):,.0f}", f"{100 * share:.1f}%", f"{found[name]['cold_start_s']:.1f}")
        console.print(table)
        console.print("MFU against this machine's measured matmul peak of the variant's dtype (minitx info --device); "
                      "on a GPU: untested (no GPU was available when this benchmark was written).")
        return 0
    root = prepare_nanogpt(args.data, args.nanogpt)
    if root is None:
        console.print("skipped: nanoGPT is needed for this benchmark")
        return 0
    import torch

    torch.set_num_threads(args.threads)  # the full-split scoring, in this process, between runs
    corpus = args.data.read_text(encoding="utf-8")
    from full_val import validation_text

    n_val = len(validation_text(corpus))
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731

    if args.part in ("speed", "both"):
        # "both": minitx in float32 and in bfloat16, alternated with nanoGPT in the same run, side by side
        dtypes = ["float32", "bfloat16"] if args.minitx_dtype == "both" else [args.minitx_dtype]
        nano, nano_kept = [], []
        mini: dict[str, list[dict]] = {d: [] for d in dtypes}
        for r in range(args.repeats):
            console.print(f"[dim]repeat {r + 1}/{args.repeats}: nanoGPT …[/]")
            nano.append(run_nanogpt(root, args.steps, args.eval_iters, args.threads, corpus, "speed"))
            if args.nanogpt_kept_memory:
                console.print(f"[dim]repeat {r + 1}/{args.repeats}: nanoGPT, minitx's allocator settings …[/]")
                nano_kept.append(run_nanogpt(root, args.steps, args.eval_iters, args.threads, corpus, "speed",
                                             kept_memory=True))
            for dtype in dtypes:
                console.print(f"[dim]repeat {r + 1}/{args.repeats}: minitx --dtype {dtype} …[/]")
                mini[dtype].append(run_minitx(args.data, _fill(MINITX_SAME, steps=args.steps,
                                                               eval_iters=args.eval_iters)
                                              + args.same_recipe.split(), args.threads, "same", dtype, corpus))
        ran = {d: "/".join(sorted({m["dtype"] for m in runs})) for d, runs in mini.items()}
        table = Table(title=f"training, nanoGPT's CPU config, {args.steps} steps, {args.threads} threads, median "
                            f"of {args.repeats} alternated runs, on {cpu_name()}")
        table.add_column("")
        table.add_column("nanoGPT", justify="right")
        for d in dtypes:
            table.add_column(f"minitx --dtype {d} (ran {ran[d]})", justify="right")
        n_ms = med(nano, "ms_per_step")
        table.add_row("ms / step", f"{n_ms:.1f}", *(f"{med(mini[d], 'ms_per_step'):.1f} = "
                                                    f"{n_ms / med(mini[d], 'ms_per_step'):.2f}× nanoGPT"
                                                    for d in dtypes))
        if nano_kept:
            k_ms = med(nano_kept, "ms_per_step")
            table.add_row("  nanoGPT, kept memory", f"{k_ms:.1f}", *(f"{k_ms / med(mini[d], 'ms_per_step'):.2f}×"
                                                                      for d in dtypes))
        n_v = med(nano, "val_full")
        table.add_row(f"val loss @ {args.steps} (full split)", f"{n_v:.4f}",
                      *(f"{med(mini[d], 'val_full'):.4f} ({med(mini[d], 'val_full') - n_v:+.4f})" for d in dtypes))
        table.add_row(f"  own eval ({args.eval_iters} batches)", f"{med(nano, 'val_random'):.4f}",
                      *(f"{med(mini[d], 'val_random'):.4f}" for d in dtypes))
        n_mb = med(nano, "peak_mb")
        table.add_row("peak memory MB", f"{n_mb:.0f}", *(f"{med(mini[d], 'peak_mb'):.0f}" for d in dtypes))
        table.add_row("wall s (start, evals)", f"{med(nano, 'wall'):.1f}", *(f"{med(mini[d], 'wall'):.1f}"
                                                                              for d in dtypes))
        console.print(table)
        console.print(f"  full split: the {n_val:,} validation characters both tools held out, every one but the "
                      "first predicted once (bench/full_val.py), fp32; goals: ≥ 1× nanoGPT per step, val ≤ +0.02")
        for i, n in enumerate(nano):
            kept = f" (kept memory {nano_kept[i]['ms_per_step']:.1f} ms)" if nano_kept else ""
            mine = " | ".join(f"minitx {m[i]['dtype']} {m[i]['ms_per_step']:.1f} ms, full {m[i]['val_full']:.4f} "
                              f"(own {m[i]['val_random']:.4f})" for m in mini.values())
            console.print(f"  run {i + 1}: nanoGPT {n['ms_per_step']:.1f} ms{kept}, full {n['val_full']:.4f} "
                          f"(own {n['val_random']:.4f}) | {mine}")

    if args.part in ("quality", "both"):
        fast = _fill(MINITX_FAST, eval_iters=args.eval_iters) + args.fast_recipe.split()
        quality_dtype = "auto" if args.minitx_dtype == "both" else args.minitx_dtype
        pairs = []
        for r in range(args.repeats):
            console.print(f"[dim]quality {r + 1}/{args.repeats}: nanoGPT …[/]")
            n = run_nanogpt(root, args.steps, args.eval_iters, args.threads, corpus, "quality")
            console.print(f"[dim]quality {r + 1}/{args.repeats}: minitx fast recipe, every checkpoint scored …[/]")
            pairs.append((n, run_minitx(args.data, fast, args.threads, "fast", quality_dtype, corpus,
                                        every_checkpoint=True)))
        # the target: nanoGPT's own final checkpoint, full split, median over this run's repeats
        target = statistics.median(n["val_full"] for n, _ in pairs)
        ran = sorted({m["dtype"] for _, m in pairs})
        table = Table(title=f"time to nanoGPT's full-split val loss after {args.steps} steps, {target:.4f} (median "
                            f"of {args.repeats}); optimisation time, evaluations excluded; minitx --dtype "
                            f"{quality_dtype} ran {'/'.join(ran)}, on {cpu_name()}")
        for col in ("pair", "nanoGPT loss", "nanoGPT s", "minitx step", "minitx loss", "minitx s", "ratio"):
            table.add_column(col, justify="right")
        ratios = []
        for i, (n, m) in enumerate(pairs):
            hit = next(((s, v, t) for s, v, t in m["curve"] if v <= target), None)
            if hit is None:  # not reached: its time is more than all of its optimisation time
                best = min(m["curve"], key=lambda c: c[1])
                bound = m["seconds_at_final"] / n["seconds_at_final"]
                ratios.append(None)
                table.add_row(str(i + 1), f"{n['val_full']:.4f}", f"{n['seconds_at_final']:.1f}",
                              f"> {m['final_step']}", f"best {best[1]:.4f} @ {best[0]}",
                              f"> {m['seconds_at_final']:.1f}", f"> {bound:.2f}")
                continue
            ratios.append(hit[2] / n["seconds_at_final"])
            table.add_row(str(i + 1), f"{n['val_full']:.4f}", f"{n['seconds_at_final']:.1f}", str(hit[0]),
                          f"{hit[1]:.4f}", f"{hit[2]:.1f}", f"{ratios[-1]:.2f}")
        reached = [x for x in ratios if x is not None]
        summary = (f"{statistics.median(reached):.2f}" if len(reached) == len(ratios)
                   else f"- ({len(ratios) - len(reached)} of {len(ratios)} not reached)")
        table.add_row("median", "", "", "", "", "", summary)
        console.print(table)
        console.print(f"  ratio: minitx s / nanoGPT s of the same pair (goal ≤ 0.35). nanoGPT s: its iterations "
                      f"0..{args.steps - 1} (evaluation iterations at the median); "
                      "minitx s: metrics.jsonl train_seconds at the first checkpoint (every 50 steps) at or below "
                      f"the target; losses on the {n_val:,} validation characters (bench/full_val.py)")
        console.print(f"  minitx fast recipe flags: {' '.join(fast)} --dtype {quality_dtype}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
