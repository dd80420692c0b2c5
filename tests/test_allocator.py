"""Freed memory is kept for the next step (training/allocator.py), so a step's tensors are not faulted in anew.

Each check runs in a fresh interpreter: the mallopt settings are per process and last its lifetime.
(The page faults themselves depend on the heap's history -- ~2,600 a step in `minitx train` on tiny
Shakespeare, none for some other corpora -- so the tests check glibc's observable policy instead.)
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the settings are glibc's; other allocators keep their own policies")

# glibc's documented behaviour, observed from outside: where a 30 MiB block comes from ([heap], or a
# mapping of its own that free() unmaps), and whether the heap shrinks again when it is freed.
BLOCK = textwrap.dedent("""
    import ctypes, sys
    from minitx.training import allocator
    applied = allocator.keep_freed_memory() if sys.argv[1] == "keep" else False
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    def mapping(address):
        for line in open("/proc/self/maps"):
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return fields[5] if len(fields) > 5 else "anonymous"
    block = libc.malloc(30 * 1024 * 1024)
    where, end = mapping(block), libc.sbrk(0)
    libc.free(block)
    print(applied, where, libc.sbrk(0) == end)
""")


def _block(mode: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run([sys.executable, "-c", BLOCK, mode], capture_output=True, text=True, env=env,
                          check=True).stdout.split()


@glibc
def test_freed_blocks_stay_in_the_heap_for_the_next_step() -> None:
    applied, where, kept = _block("keep")
    assert (applied, where, kept) == ("True", "[heap]", "True")  # from the heap, and not trimmed away on free
    _, where, _ = _block("default")
    assert where == "anonymous", "the premise: by default glibc maps a 30 MiB block of its own and unmaps it on free"


@glibc
def test_a_users_own_malloc_setting_stands() -> None:
    code = "from minitx.training import allocator; print(allocator.keep_freed_memory())"
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_the_trainer_asks_for_it(tmp_path) -> None:
    from minitx.config import ModelConfig, TrainConfig
    from minitx.dataset.batches import split_train_val
    from minitx.training import allocator
    from minitx.training.loop import Trainer

    split = split_train_val([i % 7 for i in range(2000)], n_bytes=2000, block_size=8, val_fraction=0.1)
    trainer = Trainer(tmp_path, ModelConfig(vocab_size=8, block_size=8, n_layers=1, n_heads=1, dim=16),
                      TrainConfig(steps=2, batch_size=2, threads=1, dtype="float32"), split)
    assert trainer.keeps_memory is allocator.keep_freed_memory()
    assert trainer.keeps_memory is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
                                    and not any(k.startswith("MALLOC_") for k in os.environ))
