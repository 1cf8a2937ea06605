"""Every library module shows a runnable example; ``pytest --doctest-modules`` runs them all
(see ``[tool.pytest.ini_options]``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import paramctl

# The command line documents itself through --help and is specified by the CLI tests; the
# writers' and live initialization's examples are the commands that use them.
WITHOUT_EXAMPLES = {
    "paramctl.__main__",
    "paramctl.live.init_model",
}
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(paramctl.__path__, "paramctl.")
    if info.name not in WITHOUT_EXAMPLES
)


@pytest.mark.parametrize("name", MODULES)
def test_module_has_a_docstring_example(name):
    module = importlib.import_module(name)
    own = [obj for obj in vars(module).values() if getattr(obj, "__module__", None) == name]
    if not own:
        pytest.skip(f"{name} only gathers names defined elsewhere")
    tests = doctest.DocTestFinder().find(module)
    assert any(test.examples for test in tests), f"{name} has no >>> example"
