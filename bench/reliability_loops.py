"""Reliability loops for DDP jobs, run many times in a row on a loaded machine (docs/decisions.md).

    python bench/reliability_loops.py killed --runs 30 --burners 1
    python bench/reliability_loops.py sigterm --runs 10 --burners 1
    python bench/reliability_loops.py sigint --runs 10 --burners 1

`killed`: `minitx train --nproc 2` with rank 1 dying right after step 7 (the test-only
MINITX_TEST_FAIL_RANK_AT_STEP); each run must end with exactly one line on stderr naming rank 1 and
the checkpoint kept (step 6), and that checkpoint must load (weights and trainer state); every
--resume-every-th run is also resumed and must end with the weights of an uninterrupted run.
`sigterm` / `sigint`: the signal is sent to `minitx train --nproc 2` while both ranks wait after step 6
(MINITX_TEST_HOLD_AT_STEP); each run must exit 130 with nothing on stderr and a step-6 checkpoint.
`race`: two `minitx train` (seeds 1 and 2, one thread each) started together on one --out (issue 31);
each time one must train (exit 0) and the other refuse with exit 2 and one line ("... is in use:
minitx process PID ..."), and the directory must load, hold the winner's seed and the winner's
weights (equal to a reference run of that seed), and `--resume` it to more steps.
`--burners K` keeps K busy-looping processes running meanwhile. Prints one line per run and a count.

    python bench/reliability_loops.py race --runs 20 --burners 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = ["--tokenizer", "char", "--layers", "2", "--heads", "2", "--dim", "32", "--block-size", "32",
         "--steps", "12", "--eval-every", "6", "--eval-batches", "2", "--save-every", "1", "--lr", "3e-3",
         "--warmup", "2", "--device", "cpu", "--quiet", "--batch-size", "4", "--grad-accum", "2"]


def burn() -> None:
    while True:
        pass


def nproc(corpus: Path, out: Path, extra_env: dict[str, str], *more: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MINITX_DIST_TIMEOUT": "100", **extra_env}
    cmd = [sys.executable, "-m", "minitx", "train", "--nproc", "2", str(corpus), "--out", str(out), *MODEL, *more]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def weights(run: Path) -> dict:
    from minitx.rundir import load_model

    model, _ = load_model(run)
    return {k: v.clone() for k, v in model.state_dict().items()}


def checkpoint_loads(out: Path) -> int | None:
    """The step of the newest checkpoint if its weights and trainer state load, else None."""
    from minitx import rundir

    checkpoint = rundir.latest_checkpoint(out)
    if checkpoint is None:
        return None
    rundir.read_tensors(checkpoint / rundir.WEIGHTS, "weights file")
    return json.loads((checkpoint / rundir.TRAINER_STATE).read_text())["step"]


def one_killed(corpus: Path, out: Path, reference: Path | None) -> tuple[bool, str]:
    started = time.monotonic()
    job = nproc(corpus, out, {"MINITX_TEST_FAIL_RANK_AT_STEP": "1:7"})
    _, stderr = job.communicate(timeout=300)
    from minitx.rundir import latest_checkpoint

    lines = stderr.strip().splitlines()
    want = (f"minitx: error: rank 1 stopped with exit code 1; torchrun stopped the other ranks -- the checkpoint "
            f"kept is {latest_checkpoint(out)}; continue with --resume")
    ok = job.returncode != 0 and lines == [want] and checkpoint_loads(out) == 6
    note = f"{time.monotonic() - started:.1f} s, exit {job.returncode}, {len(lines)} line(s)"
    if not ok:
        return False, note + ": " + stderr[-1500:]
    if reference is not None:
        resumed = nproc(corpus, out, {}, "--resume")
        _, err = resumed.communicate(timeout=300)
        same = resumed.returncode == 0 and all(
            (a == b).all() for a, b in zip(weights(out).values(), weights(reference).values(), strict=True))
        note += f", resumed {'= uninterrupted' if same else 'DIFFERS: ' + err[-800:]}"
        ok = same
    return ok, note


def one_signal(corpus: Path, out: Path, sig: int) -> tuple[bool, str]:
    started = time.monotonic()
    marker = out.parent / f"{out.name}.held"
    job = nproc(corpus, out, {"MINITX_TEST_HOLD_AT_STEP": f"6:{marker}"})
    while not all(Path(f"{marker}.rank{r}").exists() for r in range(2)):
        if job.poll() is not None:
            return False, "ended before step 6: " + job.stderr.read()[-1500:]
        time.sleep(0.05)
    job.send_signal(sig)
    _, stderr = job.communicate(timeout=300)
    ok = job.returncode == 130 and stderr.strip() == "" and checkpoint_loads(out) == 6
    note = f"{time.monotonic() - started:.1f} s, exit {job.returncode}, stderr {len(stderr.strip())} chars"
    return ok, note + ("" if ok else ": " + stderr[-1500:])


RACE = ["--tokenizer", "char", "--preset", "tiny", "--layers", "1", "--heads", "2", "--dim", "16", "--block-size",
        "16", "--batch-size", "4", "--steps", "6", "--save-every", "1", "--keep", "2", "--eval-every", "6",
        "--eval-batches", "1", "--threads", "1", "--device", "cpu", "--no-compile", "--quiet"]


def trainer(corpus: Path, out: Path, seed: int, *more: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "minitx", "train", str(corpus), "--out", str(out), *RACE, "--seed", str(seed), *more]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def one_race(corpus: Path, out: Path, references: dict[int, Path]) -> tuple[bool, str]:
    started = time.monotonic()
    jobs = {seed: trainer(corpus, out, seed) for seed in (1, 2)}
    results = {seed: (job.wait(timeout=300), job.stderr.read()) for seed, job in jobs.items()}
    codes = sorted(code for code, _ in results.values())
    winners = [seed for seed, (code, _) in results.items() if code == 0]
    losers = [err.strip().splitlines() for code, err in results.values() if code == 2]
    note = f"{time.monotonic() - started:.1f} s, exits {codes}"
    if codes != [0, 2] or len(losers[0]) != 1 or "is in use: minitx process" not in losers[0][0]:
        return False, note + ": " + " | ".join(err[-600:] for _, err in results.values())
    from minitx.rundir import load_model

    model, run = load_model(out)
    winner = winners[0]
    same = all((a == b).all() for a, b in zip(weights(out).values(), weights(references[winner]).values(),
                                              strict=True))
    if run.train_config.seed != winner or not same:
        return False, note + f": the directory holds seed {run.train_config.seed}, weights of the winner {same}"
    resumed = subprocess.run([sys.executable, "-m", "minitx", "train", "--out", str(out), "--resume", "--steps", "8",
                              "--threads", "1", "--quiet"], capture_output=True, text=True, timeout=300)
    ok = resumed.returncode == 0 and checkpoint_loads(out) == 8
    return ok, note + f", seed {winner} won, loaded, resumed to 8 {'ok' if ok else resumed.stderr[-600:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["killed", "sigterm", "sigint", "race"])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--burners", type=int, default=1)
    parser.add_argument("--resume-every", type=int, default=5)
    args = parser.parse_args()
    from minitx.corpus import generate_corpus

    work = Path(tempfile.mkdtemp(prefix="minitx-loops-"))
    os.environ["MINITX_CACHE"] = str(work / "cache")
    corpus = work / "stories.txt"
    corpus.write_text(generate_corpus(60_000, 0), encoding="utf-8")
    reference = None
    if args.what == "killed" and args.resume_every:
        reference = work / "reference"
        done = nproc(corpus, reference, {})
        _, err = done.communicate(timeout=300)
        assert done.returncode == 0, err
    references = {}
    if args.what == "race":
        for seed in (1, 2):
            references[seed] = work / f"reference-seed{seed}"
            done = trainer(corpus, references[seed], seed)
            assert done.wait(timeout=300) == 0, done.stderr.read()
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
    for b in burners:
        b.start()
    passed = 0
    try:
        for i in range(args.runs):
            out = work / f"run{i}"
            if args.what == "race":
                ok, note = one_race(corpus, out, references)
            elif args.what == "killed":
                resume = reference if args.resume_every and i % args.resume_every == 0 else None
                ok, note = one_killed(corpus, out, resume)
            else:
                ok, note = one_signal(corpus, out, signal.SIGTERM if args.what == "sigterm" else signal.SIGINT)
            passed += ok
            print(f"{args.what} run {i + 1}/{args.runs}: {'ok' if ok else 'FAILED'} ({note})", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        for b in burners:
            b.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.what}: {passed}/{args.runs} ok with {args.burners} CPU burner(s)")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
