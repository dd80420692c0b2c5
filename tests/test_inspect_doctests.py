"""Every `>>>` example in minitx.inspect runs and prints what its docstring says.

(Until `make test` runs the doctests of the whole package; then this file can go.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import minitx.inspect

MODULES = sorted(info.name for info in pkgutil.walk_packages(minitx.inspect.__path__, "minitx.inspect."))


def test_the_examples_cover_the_modules_that_have_them() -> None:
    assert {"minitx.inspect.capture", "minitx.inspect.induction", "minitx.inspect.ablation",
            "minitx.inspect.over_data", "minitx.inspect.views.html"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_example_in_the_module_runs_as_written(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run pytest " \
                               f"--doctest-modules src/minitx/inspect to see them)"
