"""Full pickled objects (``torch.save(model)``): what loading them would import, and ``--trust``.

A pickle names the globals it needs and calls them while loading; a pickled module names
its classes, hooks and anything else its author's objects held. paramctl never loads such
a file unless told to with ``--trust`` (``trust=True`` in the library), and before it does,
it lists those globals by unpickling with placeholders that execute nothing. A file that
could be read two ways is refused even with ``--trust``: which reading would be trusted?
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from paramctl.errors import CheckpointIOError, ModelCodeError, UnsafePickle
from paramctl.formats import STDIN, STDIN_LABEL, detect_format, spool_stdin
from paramctl.formats._limits import LIMITS
from paramctl.formats._pickle import refuses
from paramctl.formats._pickle_names import global_pairs, list_globals


def pickle_globals(data: bytes | IO[bytes]) -> list[str]:
    """Every global one pickle would import, in first-use order, without running it.

    The C unpickler reads the opcodes with each global standing for a placeholder that
    does nothing (:func:`~paramctl.formats._allowlist.list_globals`), after the scan that
    holds the pickle to paramctl's limits; ``STACK_GLOBAL`` names taken from the stack or
    the memo come out exactly as a load would import them, and Python 2 spellings as
    Python 3 imports them (``__builtin__`` is ``builtins``).

    >>> import pickle, collections
    >>> pickle_globals(pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    ['collections.OrderedDict']
    >>> pickle_globals(pickle.dumps([collections.Counter(), slice(1), collections.Counter()], protocol=4))
    ['collections.Counter', 'builtins.slice']
    """
    raw = data if isinstance(data, bytes) else data.read(LIMITS.pickle_bytes + 1)
    return list_globals(raw)


def checkpoint_globals(path: Path) -> list[str]:
    """The globals ``torch.load(path, weights_only=False)`` would import, in first-use order."""
    return [f"{module}.{name}" if module else name for module, name in _global_pairs(path)]


def _global_pairs(path: Path) -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}
    try:
        for pickle in detect_format(path).pickles(path):
            raw = pickle.read(LIMITS.pickle_bytes + 1)
            found.update(dict.fromkeys(global_pairs(raw)))
    except OSError as exc:
        raise CheckpointIOError(f"{path}: {exc.strerror or exc}") from exc
    return list(found)


def load_trusted(path: Path, *, on_globals: Callable[[list[str]], None] | None = None) -> Any:
    """Load a full pickle with ``torch.load(weights_only=False)``: this runs its code.

    Only ``--trust`` (``trust=True``) leads here. ``on_globals`` hears the globals first,
    before anything is imported, so the caller can show them.
    """
    names = checkpoint_globals(path)
    if on_globals is not None:
        on_globals(names)
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError, ImportError) as exc:
        raise ModelCodeError(
            f"{path}: the pickle needs code that cannot be imported here ({exc}); make the module "
            "that defines it importable (PYTHONPATH), or load a state_dict with --model"
        ) from exc
    except Exception as exc:
        raise ModelCodeError(
            f"{path}: loading the trusted pickle failed: {type(exc).__name__}: {exc}"
        ) from exc


def refusal(path: Path, label: str) -> UnsafePickle:
    """The error for a full pickle met without ``--trust``: what it would import that the
    allowlist refuses, and the way to load it anyway. Listing them executes nothing.
    """
    foreign = [
        f"{module}.{name}" if module else name
        for module, name in _global_pairs(path)
        if refuses(module, name)
    ]
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return UnsafePickle(
        foreign[0] if foreign else "a global outside the allowlist",
        f"{label} is a full pickled object; if you trust it, --trust loads it "
        f"(importing {shown or 'the globals it names'})",
    )


def refusal_for(source: str) -> UnsafePickle:
    """:func:`refusal` for a command's source, where ``-`` is standard input."""
    if source == STDIN:
        return refusal(spool_stdin(), STDIN_LABEL)
    return refusal(Path(source), source)
