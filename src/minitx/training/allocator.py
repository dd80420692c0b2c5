"""Memory freed at the end of a step, kept for the next one: glibc's malloc told not to give it back.

Every training step allocates the same activations and gradients and frees them when it ends. By
default glibc's malloc returns freed memory to the kernel (blocks it mmap'ed are unmapped, the top of
the heap is trimmed), so the next step asks for it again and the kernel maps and zeroes every page
anew: a page fault per 4 KiB, thousands a step at nanoGPT's small CPU shape on tiny Shakespeare, about
a quarter of its time (docs/decisions.md). Two settings keep it:

    M_MMAP_THRESHOLD = 32 MiB    blocks up to 32 MiB come from the heap, which is reused, not from mmap
    M_TRIM_THRESHOLD = 1 GiB     the heap keeps up to 1 GiB of freed memory at its top

The process holds on to what its busiest step needed, which the next step needs again. They are the
documented `mallopt` knobs (`man mallopt`); a user who set MALLOC_MMAP_THRESHOLD_ or
MALLOC_TRIM_THRESHOLD_ keeps their own. Elsewhere (macOS, musl, Windows) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit machines
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process, once; True where they are in effect."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False  # the user chose; theirs stands
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
