"""Helpers the benchmarks share: where the data and the peers are, running a command and measuring it.

Nothing here depends on one machine's layout. Peers are never vendored: nanoGPT is cloned at a pinned
commit into bench/_work/ (git-ignored) the first time a benchmark needs it, or read from a checkout
given with `--nanogpt DIR`. Tiny Shakespeare is fetched with `minitx data tinyshakespeare` into
bench/_work/, or read from `--data FILE`. Without a network, pass both.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "_work"
NANOGPT_URL = "https://github.com/karpathy/nanoGPT.git"
#: The nanoGPT every figure in docs/decisions.md was measured against (its code is that of Dec 2024).
NANOGPT_COMMIT = "3adf61e154c3fe3fca428ad6bc3818b27a3b8291"


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


def run_measured(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` in a fresh process and report its wall time and peak resident memory.

    The child is started through a tiny Python launcher, so RUSAGE_CHILDREN sees exactly one child.
    """
    launcher = (
        "import resource, subprocess, sys, json; p = subprocess.run(sys.argv[1:]); "
        "print(json.dumps({'rc': p.returncode, 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}),"
        " file=sys.stderr)"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", launcher, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
    try:
        info = json.loads(last)
    except json.JSONDecodeError:
        info = {"rc": proc.returncode, "rss": 0}
    return Measured(info.get("rc", proc.returncode), proc.stdout, proc.stderr, seconds, info.get("rss", 0) / 1024)


def nanogpt_dir(checkout: Path | None = None, url: str = NANOGPT_URL) -> Path | None:
    """nanoGPT's files: `checkout` if given, else a clone of `url` at NANOGPT_COMMIT in bench/_work/
    (made on first use). None, with the reason printed, when neither is available."""
    if checkout is not None:
        if (checkout / "train.py").is_file() and (checkout / "model.py").is_file():
            return checkout
        print(f"--nanogpt {checkout} is not a nanoGPT checkout (no train.py and model.py): nanoGPT skipped")
        return None
    target = WORK / f"nanoGPT-{NANOGPT_COMMIT[:8]}"
    if (target / "train.py").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for cmd in (["git", "clone", "--quiet", url, str(partial)],
                ["git", "-C", str(partial), "checkout", "--quiet", NANOGPT_COMMIT]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
            print(f"could not clone nanoGPT from {url} ({reason}); pass --nanogpt DIR: nanoGPT skipped")
            shutil.rmtree(partial, ignore_errors=True)
            return None
    partial.rename(target)  # only a complete clone gets the name that is reused
    return target


def shakespeare(data: Path | None = None) -> Path | None:
    """Tiny Shakespeare: `data` if given, else bench/_work/tinyshakespeare.txt, downloaded (and its sha256
    checked) by `minitx data tinyshakespeare` on first use. None, with the reason printed, if unavailable."""
    if data is not None:
        if data.is_file():
            return data
        print(f"--data {data} not found")
        return None
    target = WORK / "tinyshakespeare.txt"
    if not target.is_file():
        done = subprocess.run([sys.executable, "-m", "minitx", "data", "tinyshakespeare", "--out", str(target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{done.stderr.strip()}\n(or pass --data FILE)")
            return None
    return target


def single_thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def maxrss_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
