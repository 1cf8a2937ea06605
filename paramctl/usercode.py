"""Code the user names on the command line: ``package.module:attr`` or ``path/to/file.py:attr``.

``--model`` names a factory, ``--loss`` a reduction function, ``--scheme`` an init function.
All are spelled the same way and loaded here, by :func:`load_module`. Running them is the
user's choice (they name their own code), unlike a pickle, which chooses for itself what
to run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from paramctl.errors import ModelCodeError, ParamctlError, UsageError


def split_spec(spec: str, *, option: str = "--model") -> tuple[str, str]:
    """Split ``where:attr`` into its two halves; the attribute may be dotted.

    >>> split_spec("torchvision.models:resnet18")
    ('torchvision.models', 'resnet18')
    >>> split_spec("models/net.py:Net.small")
    ('models/net.py', 'Net.small')
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise UsageError(f"{option} {spec!r}: expected 'package.module:name' or 'path/to/file.py:name'")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise UsageError(f"{option} {spec!r}: {attr!r} is not a Python name")
    return where, attr


def is_file_spec(where: str) -> bool:
    """A path to a ``.py`` file rather than a dotted module name."""
    return where.endswith(".py") or "/" in where or os.sep in where


def load_object(spec: str, *, option: str = "--model") -> Any:
    """The object ``spec`` names, importing its module or executing its file.

    A name the code does not define is a usage error (exit 2), said in the user's own
    words (the file or module as given), with the closest name it does define.

    >>> load_object("collections:OrderedDict")
    <class 'collections.OrderedDict'>
    >>> load_object("collections:OrderDict")
    Traceback (most recent call last):
    ...
    paramctl.errors.UsageError: --model 'collections:OrderDict': collections has no attribute 'OrderDict'; ...
    """
    where, attr = split_spec(spec, option=option)
    target: Any = load_module(where, spec=spec, option=option)
    found = where
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"{option} {spec!r}: {found} has no attribute {part!r}{_defined(target, part)}"
            ) from None
        found = f"{where}:{part}" if found == where else f"{found}.{part}"
    return target


def _defined(target: Any, missing: str) -> str:
    """The closest public name ``target`` defines, else a few of them."""
    from paramctl.select import did_you_mean

    names = [name for name in dir(target) if not name.startswith("_")]
    hint = did_you_mean(missing, names)
    if hint or not isinstance(target, ModuleType):
        return hint
    own = [name for name in names if getattr(getattr(target, name), "__module__", None) == target.__name__]
    return f"; it defines {', '.join(own[:6])}" if own else ""


def load_module(
    where: str, *, spec: str, option: str, error: type[ParamctlError] = ModelCodeError
) -> ModuleType:
    """The module ``where`` names: a ``.py`` file (by path) or a module on ``sys.path``.

    A file's folder goes on ``sys.path`` first, as ``python file.py`` would do, so it can
    import its neighbours; a module is looked up on ``sys.path`` and in the working folder.
    Code that cannot be imported or run raises ``error``; messages start with
    ``{option} {spec!r}``.

    >>> load_module("json", spec="json:loads", option="--loss").__name__
    'json'
    """
    if is_file_spec(where):
        return _load_file(where, spec, option, error)
    return _import(where, spec, option, error)


def _import(name: str, spec: str, option: str, error: type[ParamctlError]) -> ModuleType:
    # The console script does not put the working folder on sys.path; `python -m` does.
    # Appending (not prepending) keeps installed packages from being shadowed by local files.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    cannot = f"{option} {spec!r}: cannot import module {name!r}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise error(f"{cannot}: no module named {exc.name!r}") from exc
        raise error(f"{cannot}: {_one_line(exc)}") from exc
    except Exception as exc:
        raise error(f"{cannot}: {_one_line(exc)}") from exc


def _load_file(where: str, spec: str, option: str, error: type[ParamctlError]) -> ModuleType:
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        why = "it is a folder" if path.is_dir() else "no such file or directory"
        raise UsageError(f"{option} {spec!r}: no file {where!r} ({why})")
    # One module per file, named after its path, so loading twice reuses it and classes
    # defined there keep one identity (isinstance and pickling rely on it).
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_paramctl_user_{path.stem if path.stem.isidentifier() else 'file'}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{option} {spec!r}: cannot load {where!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise error(f"{option} {spec!r}: running {where} failed: {_one_line(exc)}") from exc
    return module


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def parse_assignments(pairs: Iterable[str], *, option: str = "--model-arg") -> dict[str, Any]:
    """``key=value`` texts as keyword arguments; values are Python literals, else strings.

    >>> parse_assignments(["hidden=256", "act=relu", "sizes=(4, 3)", "bias=False"])
    {'hidden': 256, 'act': 'relu', 'sizes': (4, 3), 'bias': False}
    """
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"{option} {pair!r}: expected key=value with a Python name as key")
        if key in found:
            raise UsageError(f"{option}: {key!r} given twice")
        try:
            found[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            found[key] = text
    return found


def call_user(function: Any, spec: str, *args: Any, option: str = "--model", **kwargs: Any) -> Any:
    """Call user code, turning its failure into a one-line :class:`ModelCodeError`."""
    if not callable(function):
        raise UsageError(f"{option} {spec!r} names {type(function).__name__}, which is not callable")
    try:
        return function(*args, **kwargs)
    except TypeError as exc:
        raise ModelCodeError(f"{option} {spec!r}: calling it failed: {_one_line(exc)}") from exc
    except Exception as exc:
        raise ModelCodeError(f"{option} {spec!r} raised {_one_line(exc)}") from exc
