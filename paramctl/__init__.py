"""paramctl: inspect and reinitialize neural-network checkpoints.

Importing paramctl never imports torch; only reading tensor values does.

>>> import paramctl
>>> paramctl.ExitCode.UNSAFE
<ExitCode.UNSAFE: 4>
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import CheckpointFile, TensorSelection, open
from .checkpoint import Checkpoint, Extra, ModelView, Storage, TensorEntry, model_view
from .errors import (
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
from .formats import FORMATS, read_checkpoint
from .select import Selection

if TYPE_CHECKING:
    from .collection import ParameterCollection

__version__ = "0.1.0"


def collect(module: Any, regex: str | None = None, **options: Any) -> ParameterCollection:
    """Gluon's ``collect_params``: the named parameters of a live module a regex selects.

    See :func:`paramctl.collection.collect`; imported on use, so ``import paramctl`` stays
    free of torch.
    """
    from .collection import collect as _collect

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
