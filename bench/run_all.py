"""Run every benchmark, one after another (never two at once: on 2 cores, side-by-side timings are worthless).

    python bench/run_all.py                                   # tokenizer, training, generation
    python bench/run_all.py --quick                           # a short smoke run of each
    python bench/run_all.py --data FILE --nanogpt DIR         # offline: tiny Shakespeare and nanoGPT given

Without --data, tiny Shakespeare is fetched with `minitx data tinyshakespeare`; without --nanogpt, nanoGPT
is cloned at a pinned commit; both land in bench/_work/ (git-ignored) and are reused.
"""

from __future__ import annotations

import argparse

import bench_generate
import bench_tokenizer
import bench_train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run of each benchmark")
    ap.add_argument("--data", default=None, help="tiny Shakespeare (default: fetched into bench/_work)")
    ap.add_argument("--nanogpt", default=None, help="nanoGPT checkout (default: cloned into bench/_work)")
    args = ap.parse_args(argv)
    data = ["--data", args.data] if args.data else []
    nanogpt = ["--nanogpt", args.nanogpt] if args.nanogpt else []
    bench_tokenizer.main(["--repeats", "1" if args.quick else "5", *data])
    bench_generate.main([*(["--quick"] if args.quick else []), *nanogpt])
    bench_train.main([*(["--steps", "200", "--repeats", "1", "--part", "speed"] if args.quick else []), *data,
                      *nanogpt])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
