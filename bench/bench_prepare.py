"""Preparing a large corpus: `minitx prepare` against the `tokenizers` batch encoder alone and a nanoGPT-style script.

    python bench/bench_prepare.py --corpus BIG.txt --tokenizer TOKENIZER.json --work SCRATCH_DIR \\
        [--rounds 2] [--threads 2] [--train]

(on a shared machine under the benchmark lock: `flock LOCKFILE python bench/bench_prepare.py ...`;
BIG.txt and SCRATCH_DIR outside the repository: the scratch directory gets ~2 GB per GB of corpus).

Contenders, alternated A B C A B C in one run (timings on a shared machine drift), each in a fresh
process with RAYON_NUM_THREADS = --threads (the same cores for all):

* **minitx**: `minitx prepare CORPUS --tokenizer T --out DIR` (streams, exact ids, writes train/val.bin).
* **tokenizers**: the floor -- read the file in ~4 MB batches of lines and call `encode_batch_fast` on
  each, counting the ids (no file written). What any wrapper of the Rust encoder is measured against.
* **nanoGPT-style**: what nanoGPT's openwebtext `prepare.py` does, in a minimal script of our own: worker
  processes (one per thread) encode batches of lines with the same tokenizer, the parent appends the
  uint16 ids to a file read back with `np.memmap`. (nanoGPT's shakespeare `prepare.py` reads the whole
  text and encodes it in one call: at 1 GB that is a list of ~250M Python ints, far past 1 GB of RAM.)

With --train it then measures `minitx train DATA_DIR` (the time of a whole 1-step run, which bounds
the time to the first step; peak RSS of 30 steps against the same on a 1 MB prepared corpus) and the
token cache (`minitx train CORPUS` twice: the second reuses the prepared tokens).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from peers import run_measured

HERE = Path(__file__).resolve().parent

DIRECT = r"""
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
n = 0
with open(sys.argv[2], encoding="utf-8", newline="") as f:
    while lines := f.readlines(4 << 20):
        n += sum(len(e.ids) for e in tok.encode_batch_fast(lines, add_special_tokens=False))
print(n)
"""

NANOGPT_STYLE = r"""
import os, sys
from multiprocessing import Pool
import numpy as np

def batches(path):
    with open(path, encoding="utf-8", newline="") as f:
        while lines := f.readlines(4 << 20):
            yield lines

def init(path):
    global tok
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(path)

def encode(lines):
    ids = [i for e in tok.encode_batch_fast(lines, add_special_tokens=False) for i in e.ids]
    return np.array(ids, dtype=np.uint16)

if __name__ == "__main__":
    tok_path, corpus, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    n = 0
    with Pool(workers, initializer=init, initargs=(tok_path,)) as pool, open(out, "wb") as f:
        for ids in pool.imap(encode, batches(corpus)):
            f.write(ids.tobytes())
            n += len(ids)
    data = np.memmap(out, dtype=np.uint16, mode="r")
    assert len(data) == n
    print(n)
"""


def minitx(*args: str) -> list[str]:
    return [sys.executable, "-m", "minitx", *args]


def env_with(threads: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), **extra)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def bench_prepare(corpus: Path, tokenizer: Path, work: Path, rounds: int, threads: int, console: Console,
                  only: list[str] | None = None) -> None:
    size = corpus.stat().st_size
    (work / "direct.py").write_text(DIRECT)
    (work / "nanogpt_style.py").write_text(NANOGPT_STYLE)
    contenders = {
        "minitx prepare": minitx("prepare", str(corpus), "--tokenizer", str(tokenizer), "--out",
                                 str(work / "prepared"), "--force", "--quiet"),
        "tokenizers encode_batch_fast": [sys.executable, str(work / "direct.py"), str(tokenizer), str(corpus)],
        "nanoGPT-style (processes + memmap)": [sys.executable, str(work / "nanogpt_style.py"), str(tokenizer),
                                               str(corpus), str(work / "nanogpt.bin"), str(threads)],
    }
    contenders = {name: cmd for n, (name, cmd) in enumerate(contenders.items()) if not only or str(n) in only}
    results: dict[str, list] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name, cmd in contenders.items():
            if name == "minitx prepare":  # its output stays for --train
                shutil.rmtree(work / "prepared", ignore_errors=True)
            (work / "nanogpt.bin").unlink(missing_ok=True)
            measured = run_measured(cmd, env=env_with(threads))
            if measured.returncode != 0:
                raise SystemExit(f"{name} failed:\n{measured.stderr[-3000:]}")
            results[name].append(measured)
            console.print(f"round {round_ + 1} {name}: {measured.seconds:.1f} s, {size / 1e6 / measured.seconds:.2f} "
                          f"MB/s, peak RSS {measured.peak_rss_mb:.0f} MB")
    table = Table(title=f"prepare {corpus} ({size / 1e9:.2f} GB), {threads} threads, {rounds} rounds alternated")
    for column in ("contender", "seconds (each round)", "MB/s (best)", "peak RSS MB (max)", "vs tokenizers"):
        table.add_column(column)
    direct = results.get("tokenizers encode_batch_fast")
    floor = min(m.seconds for m in direct) if direct else float("nan")
    for name, runs in results.items():
        best = min(m.seconds for m in runs)
        table.add_row(name, " / ".join(f"{m.seconds:.1f}" for m in runs), f"{size / 1e6 / best:.2f}",
                      f"{max(m.peak_rss_mb for m in runs):.0f}", f"{floor / best:.2f}×")
    console.print(table)


def bench_train(corpus: Path, tokenizer: Path, work: Path, threads: int, console: Console) -> None:
    small = work / "small.txt"
    with open(corpus, "rb") as f:
        head = f.read(1_000_000)
    small.write_bytes(head[: head.rindex(b"\n") + 1])
    env = env_with(threads, MINITX_CACHE=str(work / "cache"))
    run_measured(minitx("prepare", str(small), "--tokenizer", str(tokenizer), "--out", str(work / "prepared-1mb"),
                        "--force", "--quiet"), env=env)
    if not (work / "prepared" / "meta.json").exists():
        run_measured(minitx("prepare", str(corpus), "--tokenizer", str(tokenizer), "--out", str(work / "prepared"),
                            "--quiet"), env=env)
    common = ["--preset", "small", "--eval-batches", "1", "--force", "--quiet", "--threads", str(threads)]
    rows = []
    for label, data in (("1 MB", "prepared-1mb"), ("full", "prepared"), ("1 MB", "prepared-1mb"), ("full", "prepared")):
        one = run_measured(minitx("train", str(work / data), "--out", str(work / "run"), "--steps", "1", *common),
                           env=env)
        thirty = run_measured(minitx("train", str(work / data), "--out", str(work / "run"), "--steps", "30",
                                     "--eval-every", "30", *common), env=env)
        for m in (one, thirty):
            if m.returncode != 0:
                raise SystemExit(f"train on {data} failed:\n{m.stderr[-3000:]}")
        rows.append((label, one.seconds, thirty.seconds, thirty.peak_rss_mb))
        console.print(f"train {label}: 1-step run {one.seconds:.2f} s; 30 steps {thirty.seconds:.1f} s, "
                      f"peak RSS {thirty.peak_rss_mb:.0f} MB")
    shutil.rmtree(work / "cache", ignore_errors=True)
    cached = []
    for _ in range(2):
        m = run_measured(minitx("train", str(corpus), "--tokenizer", str(tokenizer), "--out", str(work / "run"),
                                "--steps", "1", *[c for c in common if c != "--quiet"]), env=env)
        if m.returncode != 0:
            raise SystemExit(f"train on the raw corpus failed:\n{m.stderr[-3000:]}")
        reused = "reus" in (m.stdout + m.stderr)
        cached.append((m.seconds, m.peak_rss_mb, reused))
        console.print(f"train CORPUS: {m.seconds:.1f} s, peak RSS {m.peak_rss_mb:.0f} MB, reused the cache: {reused}")
    table = Table(title="minitx train on prepared data (preset small, 1 eval batch)")
    for column in ("data", "1-step run s", "30-step run s", "peak RSS MB (30 steps)"):
        table.add_column(column)
    for label, one_s, thirty_s, rss in rows:
        table.add_row(label, f"{one_s:.2f}", f"{thirty_s:.1f}", f"{rss:.0f}")
    console.print(table)
    console.print(f"train CORPUS, first (prepares into the cache): {cached[0][0]:.1f} s; second: {cached[1][0]:.1f} s "
                  f"(reused: {cached[1][2]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a large UTF-8 text file (outside the repo)")
    parser.add_argument("--tokenizer", type=Path, required=True, help="a minitx BPE tokenizer.json")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (outside the repo)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", action="store_true", help="also measure minitx train on the prepared data")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--contenders", default="", help="comma-separated indices to run: 0 minitx, 1 tokenizers, "
                                                          "2 nanoGPT-style (default: all)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    console = Console()
    if not args.skip_prepare:
        bench_prepare(args.corpus, args.tokenizer, args.work, args.rounds, args.threads, console,
                      [c for c in args.contenders.split(",") if c])
    if args.train:
        bench_train(args.corpus, args.tokenizer, args.work, args.threads, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
