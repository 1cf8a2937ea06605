"""paramctl: inspect and reinitialize neural-network checkpoints.

Importing paramctl never imports torch; only reading tensor values does.

>>> import paramctl
>>> paramctl.ExitCode.UNSAFE
<ExitCode.UNSAFE: 4>
"""

from os import PathLike as _PathLike
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from paramctl.checkpoint import Checkpoint, Extra, ModelView, Storage, TensorEntry, model_view
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
from paramctl.formats import FORMATS, read_checkpoint
from paramctl.select import Selection

if _TYPE_CHECKING:
    from paramctl.api import CheckpointFile, TensorSelection
    from paramctl.live.collection import ParameterCollection

__version__ = "0.1.0"


def open(
    source: str | _PathLike[str], *, key: str | None = None, all_tensors: bool = False
) -> "CheckpointFile":
    """Open a checkpoint file (``-`` is standard input): see :class:`paramctl.api.CheckpointFile`.

    The API loads on first use, so commands that never call it do not pay for importing it.
    """
    from paramctl.api import open as _open

    return _open(source, key=key, all_tensors=all_tensors)


def __getattr__(name: str) -> _Any:
    # The API's classes load with it, on first use.
    if name in ("CheckpointFile", "TensorSelection"):
        from paramctl import api

        return getattr(api, name)
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
    "model_view",
    "open",
    "read_checkpoint",
]


def __dir__() -> list[str]:
    # The API's classes load on first use (above); dir() lists them all the same.
    return sorted({*globals(), "CheckpointFile", "TensorSelection"})
