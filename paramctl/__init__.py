"""paramctl: inspect and reinitialize neural-network checkpoints.

Importing paramctl never imports torch; only reading tensor values does.

>>> import paramctl
>>> paramctl.ExitCode.UNSAFE
<ExitCode.UNSAFE: 4>
"""

from .checkpoint import Checkpoint, Extra, ModelView, Storage, TensorEntry, model_view
from .errors import (
    CheckpointIOError,
    CorruptCheckpoint,
    ExitCode,
    NothingSelected,
    ParamctlError,
    UnsafePickle,
    UsageError,
)
from .formats import FORMATS, read_checkpoint
from .select import Selection

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "Checkpoint",
    "CheckpointIOError",
    "CorruptCheckpoint",
    "ExitCode",
    "Extra",
    "ModelView",
    "NothingSelected",
    "ParamctlError",
    "Selection",
    "Storage",
    "TensorEntry",
    "UnsafePickle",
    "UsageError",
    "__version__",
    "model_view",
    "read_checkpoint",
]
