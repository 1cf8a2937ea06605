"""The examples in the docstrings of the inspection modules run and say what they show."""

from __future__ import annotations

import doctest

import pytest

import paramctl.check
import paramctl.render_inspect
import paramctl.sharing
import paramctl.show
import paramctl.stats
import paramctl.torch_io


@pytest.mark.parametrize(
    "module",
    [
        paramctl.check,
        paramctl.render_inspect,
        paramctl.sharing,
        paramctl.show,
        paramctl.stats,
        paramctl.torch_io,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
