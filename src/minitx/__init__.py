"""minitx: train, sample and look inside small transformer language models.

Importing this package is cheap on purpose: torch and the other heavy libraries are imported
by the modules that need them, so `minitx --help` answers instantly. The Python API
(`minitx.load`, `minitx.train`, `minitx.random_run`; see `minitx.api` and docs/python.md) is
imported on first use of one of those names.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: Version of the on-disk checkpoint layout (config.json's "format"). Bump it when the layout changes.
#: 1: weights, optimizer and trainer state side by side in RUN_DIR (a crash while saving could mix two steps).
#: 2: each checkpoint a directory RUN_DIR/checkpoints/step-NNNNNN/, written whole and renamed into place.
CHECKPOINT_FORMAT = 2
#: Formats this version loads: format 1 runs still sample, evaluate and resume (their next save uses format 2).
READABLE_FORMATS = (1, 2)

#: The names `import minitx` offers from `minitx.api`, imported (with torch) only when first asked for.
_API_NAMES = ("LoadedRun", "load", "random_run", "train")

__all__ = ["CHECKPOINT_FORMAT", "READABLE_FORMATS", "__version__", *_API_NAMES]


def __getattr__(name: str) -> Any:
    """`minitx.load` and the other API names: import `minitx.api` the first time one is used (PEP 562)."""
    if name in _API_NAMES:
        import importlib

        # By name, at first use: the API sits near the top of the layers, and the modules below it that read
        # `minitx.__version__` must not reach it through this package (no import cycle, no layer crossed).
        return getattr(importlib.import_module("minitx.api"), name)
    raise AttributeError(f"module 'minitx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API_NAMES})
