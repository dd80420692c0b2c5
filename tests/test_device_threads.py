"""The default thread count: the idle cores, where a core must look busy in every window to count as busy."""

from __future__ import annotations

import pytest

from minitx import device


def _windows(monkeypatch: pytest.MonkeyPatch, idle_shares: list[float] | None, cores: int = 2) -> list[int]:
    """Make /proc/stat report windows of 100 jiffies with the given idle shares; returns the reads made."""
    reads: list[int] = []
    times = [(0, 0)]
    for share in idle_shares or []:
        idle, total = times[-1]
        times.append((idle + round(100 * share), total + 100))

    def fake() -> tuple[int, int] | None:
        if idle_shares is None:
            return None
        reads.append(len(reads))
        return times[min(len(reads) - 1, len(times) - 1)]

    monkeypatch.setattr(device, "_cpu_times", fake)
    monkeypatch.setattr(device.time, "sleep", lambda s: None)
    monkeypatch.setattr(device.os, "cpu_count", lambda: cores)
    return reads


def test_a_core_busy_in_one_window_only_still_counts_as_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    _windows(monkeypatch, [0.5, 1.0, 1.0])  # a test held one of two cores for the first 0.2 s
    assert device.idle_cores() == 2


def test_a_core_busy_in_every_window_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _windows(monkeypatch, [0.5, 0.5, 0.5])
    assert device.idle_cores() == 1
    assert len(reads) == 4  # three windows: four reads


def test_an_idle_machine_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _windows(monkeypatch, [1.0, 0.5, 0.5])
    assert device.idle_cores() == 2
    assert len(reads) == 2  # one window, then it stops


def test_no_proc_stat_means_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    _windows(monkeypatch, None)
    assert device.idle_cores() is None
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert device.choose_threads(0) == (2, "all cores")


def test_threads_and_omp_num_threads_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    _windows(monkeypatch, [0.0, 0.0, 0.0])
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert device.choose_threads(5) == (5, "--threads")
    assert device.choose_threads(0) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert device.choose_threads(0) == (1, "idle cores")  # never fewer than one
