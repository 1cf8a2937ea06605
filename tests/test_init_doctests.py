"""The examples in the docstrings of the init modules run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "paramctl.schemes",
    "paramctl.defaults",
    "paramctl.reinit",
    "paramctl.output",
    "paramctl.formats.patch",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
