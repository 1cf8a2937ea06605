"""paramctl: inspect and reinitialize neural-network checkpoints.

Importing paramctl never imports torch; only reading tensor values does.

>>> import paramctl
>>> paramctl.ExitCode.UNSAFE
<ExitCode.UNSAFE: 4>
"""

from importlib import import_module as _import_module
from os import PathLike as _PathLike
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from paramctl.errors import (
    AlreadyInitialized,
    CheckpointIOError,
    CorruptCheckpoint,
    ExitCode,
    ModelCodeError,
    NothingSelected,
    ParamctlError,
    UnsafePickle,
    UsageError,
)

if _TYPE_CHECKING:
    from paramctl.api import CheckpointFile, TensorSelection
    from paramctl.checkpoint import Checkpoint, Extra, ModelView, Storage, TensorEntry, model_view
    from paramctl.formats import FORMATS, read_checkpoint
    from paramctl.live.collection import ParameterCollection
    from paramctl.loader import load, save
    from paramctl.select import Selection

__version__ = "0.1.0"


def open(
    source: str | _PathLike[str], *, key: str | None = None, all_tensors: bool = False
) -> "CheckpointFile":
    """Open a checkpoint file (``-`` is standard input): see :class:`paramctl.api.CheckpointFile`.

    The API loads on first use, so commands that never call it do not pay for importing it.
    """
    from paramctl.api import open as _open

    return _open(source, key=key, all_tensors=all_tensors)


# Names whose modules load on first use, so that importing paramctl (which every command
# does, ``--help`` too) pays only for the errors: the checkpoint model; the selection; the
# format registry, which imports every format's detection; the API's classes; the safe
# loader (load(path) in place of torch.load(path, weights_only=True)).
_ON_FIRST_USE = {
    "Checkpoint": "paramctl.checkpoint",
    "Extra": "paramctl.checkpoint",
    "ModelView": "paramctl.checkpoint",
    "Storage": "paramctl.checkpoint",
    "TensorEntry": "paramctl.checkpoint",
    "model_view": "paramctl.checkpoint",
    "Selection": "paramctl.select",
    "FORMATS": "paramctl.formats",
    "read_checkpoint": "paramctl.formats",
    "CheckpointFile": "paramctl.api",
    "TensorSelection": "paramctl.api",
    "load": "paramctl.loader",
    "save": "paramctl.loader",
}


def __getattr__(name: str) -> _Any:
    if name in _ON_FIRST_USE:
        return getattr(_import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'paramctl' has no attribute {name!r}")


def collect(module: _Any, regex: str | None = None, **options: _Any) -> "ParameterCollection":
    """Gluon's ``collect_params``: the named parameters of a live module a regex selects.

    See :func:`paramctl.live.collection.collect`; imported on use, so ``import paramctl`` stays
    free of torch.
    """
    from paramctl.live.collection import collect as _collect

    return _collect(module, regex, **options)


__all__ = [
    "FORMATS",
    "AlreadyInitialized",
    "Checkpoint",
    "CheckpointFile",
    "CheckpointIOError",
    "CorruptCheckpoint",
    "ExitCode",
    "Extra",
    "ModelCodeError",
    "ModelView",
    "NothingSelected",
    "ParamctlError",
    "Selection",
    "Storage",
    "TensorEntry",
    "TensorSelection",
    "UnsafePickle",
    "UsageError",
    "__version__",
    "collect",
    "load",
    "model_view",
    "open",
    "read_checkpoint",
    "save",
]


def __dir__() -> list[str]:
    # Names that load on first use (above) are listed all the same.
    return sorted({*globals(), *_ON_FIRST_USE})
