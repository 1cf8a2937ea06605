"""Every example in paramctl's docstrings runs and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import paramctl

MODULES = sorted(["paramctl"] + [info.name for info in pkgutil.walk_packages(paramctl.__path__, "paramctl.")])


@pytest.mark.parametrize("name", [m for m in MODULES if m != "paramctl.__main__"])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_live_modules_have_examples():
    for name in ("live", "probe", "collection", "trust", "usercode"):
        module = importlib.import_module(f"paramctl.{name}")
        assert doctest.DocTestFinder().find(module), name
