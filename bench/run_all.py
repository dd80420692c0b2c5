"""Run every benchmark, one after another (never two at once: on 2 cores, side-by-side timings are worthless).

    python bench/run_all.py            # tokenizer, training, generation
    python bench/run_all.py --quick    # a short smoke run of each
"""

from __future__ import annotations

import sys

import bench_generate
import bench_tokenizer
import bench_train


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    bench_tokenizer.main(["--repeats", "1" if quick else "5"])
    bench_generate.main(["--quick"] if quick else [])
    bench_train.main(["--steps", "100", "--repeats", "1", "--part", "speed"] if quick else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
