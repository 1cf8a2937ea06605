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


# Globals no checkpoint needs, and what calling them does: a pickle naming one is an
# attack (or a mistake) that --trust must not be suggested for. Keys are name prefixes
# ("os.exec" covers os.execv, "subprocess." the whole module).
_HARMFUL = {
    "os.system": "run a shell command",
    "posix.system": "run a shell command",
    "nt.system": "run a shell command",
    "os.popen": "run a shell command",
    "posix.popen": "run a shell command",
    "subprocess.": "start a program",
    "pty.spawn": "start a program",
    "os.exec": "replace itself with another program",
    "posix.exec": "replace itself with another program",
    "os.spawn": "start a program",
    "posix.spawn": "start a program",
    "builtins.eval": "execute Python code",
    "builtins.exec": "execute Python code",
    "builtins.compile": "compile Python code",
    "builtins.__import__": "import modules by name",
    "importlib.import_module": "import modules by name",
    "runpy.": "run a Python module",
    "code.": "run Python code",
    "builtins.open": "open files",
    "io.open": "open files",
    "os.remove": "delete files",
    "os.unlink": "delete files",
    "os.rmdir": "delete files",
    "shutil.": "copy, move or delete files",
    "socket.": "open network connections",
    "urllib.": "open network connections",
    "http.": "open network connections",
    "webbrowser.": "open a web page",
    "builtins.getattr": "look up any attribute by name (how os.system is reached)",
}


def harm(name: str) -> str | None:
    """What calling the global ``name`` does, if it is one no checkpoint needs.

    >>> harm("posix.system"), harm("subprocess.call"), harm("mynets.MLP")
    ('run a shell command', 'start a program', None)
    """
    return next((what for known, what in _HARMFUL.items() if name.startswith(known)), None)


def _looks_like_a_class(name: str) -> bool:
    # Classes are CapWords by convention (MLP, Linear, OrderedDict); functions are not.
    return name.rpartition(".")[2][:1].isupper()


def refusal(path: Path, label: str, cause: UnsafePickle | None = None) -> UnsafePickle:
    """The error for a full pickle met without ``--trust``. Globals no checkpoint needs
    (``os.system``, ``subprocess.*``, ``builtins.eval``, ...) are named with what they would
    do, and ``--trust`` is not offered; a pickle of classes (a saved ``nn.Module``) is
    offered ``--trust``; functions outside torch are named, without the offer. Scanning the
    opcodes executes nothing. When every global it names is on the allowlist, what was
    refused is in the data itself (``cause``, a numpy object array).
    """
    if cause is not None and not cause.trust_offered:
        return cause  # a file read two ways: no reading is offered --trust
    pairs = _global_pairs(path)
    names = [f"{module}.{name}" if module else name for module, name in pairs]
    harmful = {name: what for name in names if (what := harm(name)) is not None}
    if harmful:
        does = " and ".join(
            f"{what} ({', '.join(n for n in harmful if harmful[n] == what)})"
            for what in dict.fromkeys(harmful.values())
        )
        return UnsafePickle(
            next(iter(harmful)),
            f"loading {label} would {does}: no checkpoint needs that, so do not load it",
        )
    foreign = [f"{module}.{name}" if module else name for module, name in pairs if refuses(module, name)]
    if not foreign and cause is not None:
        return cause
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    functions = [name for name in foreign if not _looks_like_a_class(name) and not name.startswith("torch.")]
    if functions:
        return UnsafePickle(
            functions[0],
            f"{label} is a pickle that calls {', '.join(functions[:3])} while loading; "
            "paramctl reads only tensors and the classes of saved modules",
        )
    return UnsafePickle(
        foreign[0] if foreign else "a global outside the allowlist",
        f"{label} is a full pickled object; if you trust it, --trust loads it "
        f"(importing {shown or 'the globals it names'})",
    )


def refusal_for(source: str, cause: UnsafePickle | None = None) -> UnsafePickle:
    """:func:`refusal` for a command's source, where ``-`` is standard input."""
    if source == STDIN:
        return refusal(spool_stdin(), STDIN_LABEL, cause)
    return refusal(Path(source), source, cause)
