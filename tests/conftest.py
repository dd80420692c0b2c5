"""Shared fixtures: tiny model configurations and models that build in milliseconds.

tiny_config(pos="learned", **overrides) -> ModelConfig   vocab 50, dim 32, 2 layers, 4 heads, block 16
tiny_model                               -> GPT          learned positions, eval mode, seed 0
make_tiny_model(pos="learned", **overrides) -> GPT       same, for any positional encoding

What makes the suite independent of the machine's load and of the order the tests run in:
- one CPU thread everywhere: OMP_NUM_THREADS=1 is set before torch loads (so no in-process command
  probes the idle cores and changes the thread count for the tests after it; subprocesses inherit it),
  and every test starts with torch.get_num_threads() == 1;
- every test starts from the same seeds of torch's, numpy's and Python's global generators;
- hypothesis: the "ci" profile (CI set) is derandomized -- the same examples on every run;
- in CI (CI set) a skipped test is a failure: a skip there means a missing test dependency.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before anything imports torch
os.environ.setdefault("MKL_NUM_THREADS", "1")

from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402

IN_CI = bool(os.environ.get("CI")) and os.environ.get("CI", "").lower() not in ("0", "false", "no")

try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if IN_CI else "dev")
except ImportError:  # the tests that use hypothesis import it themselves, and fail (CI) or skip without it
    pass


@pytest.fixture(autouse=True)
def one_thread_and_fixed_seeds() -> Iterator[None]:
    """Every test starts with one torch thread and the same global random state, whatever ran before it."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


#: Tests of other modules that take seconds each (a real Ctrl-C, a browser): `make test` leaves them to CI.
#: The modules of this project's own slow tests mark them where they are (@pytest.mark.slow).
SLOW_ELSEWHERE = {"test_cli.py::test_ctrl_c_saves_a_checkpoint_and_resume_finishes", "test_inspect_browser.py::*"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if {f"{item.path.name}::{name}", f"{item.path.name}::*"} & SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """In CI a module that skips itself (e.g. `importorskip` at its top) fails instead."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI must run every test, and this module skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skip is a failure: CI has every optional dependency, so a skip there hides a broken setup."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI must run every test, and this one skipped: {reason}"

TINY = dict(vocab_size=50, block_size=16, n_layers=2, n_heads=4, dim=32, dropout=0.0)


@pytest.fixture
def tiny_config() -> Callable[..., object]:
    """Factory: tiny_config("rope") or tiny_config("alibi", n_heads=2) -> ModelConfig."""
    from minitx.config import ModelConfig

    def make(pos: str = "learned", **overrides: object) -> ModelConfig:
        return ModelConfig(**{**TINY, "pos": pos, **overrides})

    return make


@pytest.fixture
def make_tiny_model(tiny_config: Callable[..., object]) -> Callable[..., object]:
    """Factory: a freshly initialised tiny GPT (seeded, float32, eval mode)."""
    import torch

    from minitx.model import GPT

    def make(pos: str = "learned", seed: int = 0, **overrides: object) -> GPT:
        torch.manual_seed(seed)
        return GPT(tiny_config(pos, **overrides)).eval()

    return make


@pytest.fixture
def tiny_model(make_tiny_model: Callable[..., object]) -> object:
    """A tiny GPT with learned positions (seed 0, eval mode)."""
    return make_tiny_model("learned")


@pytest.fixture(autouse=True, scope="session")
def token_cache_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`minitx train CORPUS` prepares into $MINITX_CACHE: the tests (and their subprocesses) use a fresh one."""
    import os

    os.environ["MINITX_CACHE"] = str(tmp_path_factory.mktemp("token-cache"))
