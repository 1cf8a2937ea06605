"""An allowlist unpickler for the pickles inside PyTorch checkpoints.

``pickle`` is the only tool that parses pickles, and ``torch.load(weights_only=True)``
needs torch. This unpickler restricts ``find_class`` (the documented way to limit what a
pickle may reference) to a short table of stand-ins: torch's tensor rebuild functions
become constructors of plain records, dtypes and storage classes become names, and every
other global is refused before anything runs.
"""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from paramctl.dtypes import BY_STORAGE_CLASS, DTYPES, UNTYPED
from paramctl.errors import CorruptCheckpoint, UnsafePickle


class NeedsTorch(Exception):
    """The pickle uses a torch feature the fast reader does not model (sparse, quantized...)."""

    def __init__(self, global_name: str) -> None:
        super().__init__(f"the pickle uses {global_name}, which the metadata reader does not model")
        self.global_name = global_name


@dataclass(frozen=True)
class StorageRef:
    """What a persistent id names: one storage record of the checkpoint."""

    key: str
    dtype: str
    numel: int
    location: str
    # Legacy files could store a view of a storage: (view key, element offset, size).
    view: tuple[str, int, int] | None = None


@dataclass
class TensorRecord:
    """A tensor as its pickle describes it; the reader turns it into a ``TensorEntry``."""

    storage: StorageRef
    storage_offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool
    dtype: str
    is_parameter: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class _DTypeName(str):
    """``torch.float32`` and friends: kept as their name."""


@dataclass(frozen=True)
class _StorageClass:
    dtype: str


class _Device(str):
    """``torch.device('cpu')``: kept as its text."""

    def __new__(cls, kind: Any, index: Any = None) -> _Device:
        return super().__new__(cls, str(kind) if index is None else f"{kind}:{index}")


def _rebuild_tensor_v2(
    storage: StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> TensorRecord:
    return TensorRecord(
        storage, storage_offset, tuple(size), tuple(stride), bool(requires_grad), storage.dtype
    )


def _rebuild_tensor_v3(
    storage: StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool,
    backward_hooks: Any,
    dtype: str,
    metadata: Any = None,
) -> TensorRecord:
    record = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad)
    record.dtype = str(dtype)
    return record


def _rebuild_parameter(
    data: TensorRecord, requires_grad: bool, backward_hooks: Any, state: Any = None
) -> TensorRecord:
    if not isinstance(data, TensorRecord):
        raise NeedsTorch("torch._utils._rebuild_parameter of a non-plain tensor")
    data.is_parameter = True
    data.requires_grad = bool(requires_grad)
    return data


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'): only that is allowed.
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickle("_codecs.encode", f"with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "collections.Counter": collections.Counter,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.bytearray": bytearray,
        "builtins.slice": slice,
        "builtins.complex": complex,
        "builtins.tuple": tuple,
        "builtins.list": list,
        "builtins.dict": dict,
        "_codecs.encode": _codecs_encode,
        "torch.Size": tuple,
        "torch.device": _Device,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch.storage.UntypedStorage": _StorageClass(UNTYPED.name),
        "torch.UntypedStorage": _StorageClass(UNTYPED.name),
    }
    for name in DTYPES:
        table[f"torch.{name}"] = _DTypeName(name)
    for class_name, dt in BY_STORAGE_CLASS.items():
        table[f"torch.{class_name}"] = _StorageClass(dt.name)
        table[f"torch.cuda.{class_name}"] = _StorageClass(dt.name)
    return table


ALLOWED_GLOBALS = _allowed_globals()

# Modules whose globals torch's own weights-only loader may still accept (sparse, quantized
# and subclass tensors): for those, paramctl falls back to torch.load(weights_only=True).
_TORCH_MODULES = ("torch._utils", "torch._tensor", "torch.serialization", "torch", "torch.storage")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle with only :data:`ALLOWED_GLOBALS`; resolve storages with ``storage_ref``."""

    def __init__(
        self,
        file: IO[bytes],
        storage_ref: Callable[[tuple[Any, ...]], Any] | None,
        extra_globals: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(file)
        self._storage_ref = storage_ref
        self._extra_globals = extra_globals or {}

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in self._extra_globals:
            return self._extra_globals[qualified]
        if qualified in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[qualified]
        if module in _TORCH_MODULES:
            raise NeedsTorch(qualified)
        raise UnsafePickle(qualified)

    def persistent_load(self, pid: Any) -> Any:
        if self._storage_ref is None:
            raise CorruptCheckpoint("a persistent id outside a checkpoint's data pickle")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CorruptCheckpoint(f"unknown persistent id {pid!r:.60}")
        return self._storage_ref(pid)


def storage_ref_from_pid(pid: tuple[Any, ...]) -> StorageRef:
    """Decode ``('storage', class, key, location, numel[, view])`` from either torch format."""
    try:
        _, storage_class, key, location, numel, *rest = pid
    except ValueError as exc:
        raise CorruptCheckpoint(f"malformed storage id {pid!r:.60}") from exc
    if not isinstance(storage_class, _StorageClass):
        raise CorruptCheckpoint(f"storage id names {storage_class!r:.40}, not a storage class")
    view = None
    if rest and rest[0] is not None:
        view_key, view_offset, view_size = rest[0]
        view = (str(view_key), int(view_offset), int(view_size))
    return StorageRef(str(key), storage_class.dtype, int(numel), str(location), view)


def restricted_load(
    data: bytes | IO[bytes],
    storage_ref: Callable[[tuple[Any, ...]], Any] | None = None,
    *,
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
    extra_globals: Mapping[str, Any] | None = None,
) -> Any:
    """Unpickle ``data`` with the allowlist; map pickle's own failures to CorruptCheckpoint.

    ``unpickler`` may be a subclass that allows more (a format's own stand-ins);
    ``extra_globals`` adds stand-ins a format's own pickles need (qualified name to the
    stand-in), for this load only: the shared table is never changed.

    >>> import os, pickle
    >>> restricted_load(pickle.dumps({"epoch": 3}))
    {'epoch': 3}
    >>> restricted_load(pickle.dumps(os.system))
    Traceback (most recent call last):
    paramctl.errors.UnsafePickle: refusing to load: the pickle references 'posix.system', ...
    """
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return unpickler(file, storage_ref, extra_globals).load()
    except (UnsafePickle, NeedsTorch, CorruptCheckpoint):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise CorruptCheckpoint(f"the pickle is damaged: {exc}") from exc
