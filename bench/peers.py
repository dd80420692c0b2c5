"""Helpers the benchmarks share: where the data and the peers are, running a command and measuring it.

Peers are never vendored: nanoGPT is read at run time from a local git snapshot (`--nanogpt-git`,
default: the fetched mirror) or a checkout (`--nanogpt-dir`) and extracted into bench/_work/
(git-ignored).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "_work"
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
NANOGPT_GIT = Path("/work/.mirror/karpathy+nanoGPT/repo")
NANOGPT_FILES = ("model.py", "train.py", "configurator.py", "config/train_shakespeare_char.py",
                 "data/shakespeare_char/prepare.py")


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


def nanogpt_dir(git_dir: Path | None = None, checkout: Path | None = None) -> Path | None:
    """A directory with nanoGPT's files, extracted from its git snapshot if needed; None if unavailable."""
    if checkout:
        return checkout if (checkout / "train.py").is_file() else None
    git_dir = git_dir or NANOGPT_GIT
    if not git_dir.exists():
        return None
    target = WORK / "nanogpt"
    for name in NANOGPT_FILES:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        content = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{name}"], capture_output=True,
                                 check=True).stdout
        dest.write_bytes(content)
    return target


def single_thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def maxrss_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
