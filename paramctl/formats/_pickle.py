"""The allowlist of torch's checkpoint pickles (``data.pkl``, a legacy file's pickles).

torch's tensor rebuild functions become constructors of plain records whose arguments are
checked as torch checks them (sizes and strides of plain integers, a boolean
``requires_grad``, ...), dtypes and storage classes become names, plain containers come
from :data:`~paramctl.formats._allowlist.PLAIN_GLOBALS`, and every other global is refused
before anything runs. torch's other rebuild functions (sparse, quantized, subclass
tensors) raise :class:`~paramctl.formats._format.NeedsTorch`, and the reader falls back
to torch's own weights-only loader.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from paramctl.dtypes import BY_STORAGE_CLASS, DTYPES, UNTYPED
from paramctl.errors import CorruptCheckpoint, UnsafePickle
from paramctl.formats import _allowlist
from paramctl.formats._allowlist import PLAIN_GLOBALS, Constructor, RestrictedUnpickler, Sealed, wrong_call
from paramctl.formats._format import NeedsTorch
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle_scan import Buffer


@dataclass(frozen=True, slots=True)
class StorageRef:
    """What a persistent id names: one storage record of the checkpoint."""

    key: str
    dtype: str
    numel: int
    location: str
    # Legacy files could store a view of a storage: (view key, element offset, size).
    view: tuple[str, int, int] | None = None

    @property
    def nbytes(self) -> int:
        """The bytes its record holds: torch refuses a record of any other size."""
        return self.numel * DTYPES[self.dtype].itemsize

    def __setstate__(self, state: Any) -> None:
        raise CorruptCheckpoint("the pickle changes a storage after building it")


@dataclass(slots=True)
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

    def __setstate__(self, state: Any) -> None:
        raise CorruptCheckpoint("the pickle changes a tensor after building it")


class _DTypeName(str):
    """``torch.float32`` and friends: kept as their name."""

    __slots__ = ()
    __setstate__ = Sealed.__setstate__


@dataclass(frozen=True, slots=True)
class _StorageClass:
    dtype: str

    def __setstate__(self, state: Any) -> None:
        raise CorruptCheckpoint("the pickle changes a storage class")


class _Device(str):
    """``torch.device('cpu')``: kept as its text."""

    __slots__ = ()
    __setstate__ = Sealed.__setstate__

    def __new__(cls, kind: Any, index: Any = None) -> _Device:
        if not isinstance(kind, str) or not (index is None or type(index) is int):
            raise wrong_call("torch.device", (kind, index))
        return super().__new__(cls, kind if index is None else f"{kind}:{index}")


def _integers(value: Any) -> tuple[int, ...] | None:
    """``value`` as a tuple of plain, non-negative integers (not booleans), as torch takes
    sizes and strides (it refuses negative strides)."""
    if (type(value) is not tuple and type(value) is not list) or len(value) > 256:
        return None
    for item in value:
        if type(item) is not int or item < 0:
            return None
    return tuple(value)


def _record(
    name: str, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, dtype: str
) -> TensorRecord:
    """The checks torch's ``_rebuild_tensor`` makes (``set_`` with these sizes and strides,
    ``requires_grad`` only on a floating or complex tensor), before the record is made."""
    shape, strides = _integers(size), _integers(stride)
    if (
        not isinstance(storage, StorageRef)
        or type(offset) is not int
        or offset < 0
        or shape is None
        or strides is None
        or type(requires_grad) is not bool
    ):
        raise wrong_call(name, (storage, offset, size, stride, requires_grad))
    if len(shape) != len(strides):
        raise CorruptCheckpoint(f"a tensor has {len(shape)} sizes and {len(strides)} strides")
    info = DTYPES[dtype]
    if requires_grad and not (info.is_floating or info.is_complex):
        raise CorruptCheckpoint(f"a {dtype} tensor requires grad, which torch refuses (floating point only)")
    return TensorRecord(storage, offset, shape, strides, requires_grad, dtype)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> TensorRecord:
    dtype = storage.dtype if isinstance(storage, StorageRef) else UNTYPED.name
    return _record(
        "torch._utils._rebuild_tensor_v2", storage, storage_offset, size, stride, requires_grad, dtype
    )


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> TensorRecord:
    if not isinstance(dtype, _DTypeName):
        raise wrong_call("torch._utils._rebuild_tensor_v3", (storage, dtype))
    return _record(
        "torch._utils._rebuild_tensor_v3", storage, storage_offset, size, stride, requires_grad, dtype
    )


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None) -> TensorRecord:
    if not isinstance(data, TensorRecord):
        raise NeedsTorch("torch._utils._rebuild_parameter of a non-plain tensor")
    if type(requires_grad) is not bool:
        raise wrong_call("torch._utils._rebuild_parameter", (data, requires_grad))
    name = "torch._utils._rebuild_parameter"
    record = _record(
        name, data.storage, data.storage_offset, data.shape, data.stride, requires_grad, data.dtype
    )
    record.is_parameter = True
    return record


def _size(*args: Any) -> tuple[int, ...]:
    shape = _integers(args[0]) if len(args) == 1 else None
    if shape is not None:
        return shape
    raise wrong_call("torch.Size", args)


def _argument_count(*args: Any) -> int:
    # Rebuild functions take a handful of arguments, each checked by the function itself.
    return len(args)


def _torch_globals() -> dict[str, Any]:
    table: dict[str, Any] = {
        "torch.Size": Constructor("torch.Size", _size, _argument_count),
        "torch.device": Constructor("torch.device", _Device, _argument_count),
        "torch.storage.UntypedStorage": _StorageClass(UNTYPED.name),
        "torch.UntypedStorage": _StorageClass(UNTYPED.name),
    }
    for function in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
        name = f"torch._utils.{function.__name__}"
        table[name] = Constructor(name, function, _argument_count)
    table["torch._utils._rebuild_parameter_with_state"] = table["torch._utils._rebuild_parameter"]
    for name in DTYPES:
        table[f"torch.{name}"] = _DTypeName(name)
    for class_name, dt in BY_STORAGE_CLASS.items():
        table[f"torch.{class_name}"] = _StorageClass(dt.name)
        table[f"torch.cuda.{class_name}"] = _StorageClass(dt.name)
    return table


ALLOWED_GLOBALS: dict[str, Any] = {**PLAIN_GLOBALS, **_torch_globals()}

# The globals torch's own weights-only loader accepts beyond this table (its rebuild
# functions for sparse, quantized, nested and subclass tensors, tensor classes, quantization
# schemes, layouts): for those, paramctl falls back to torch.load(weights_only=True). Any
# other torch global (torch.load, torch.hub.load, ...) is refused like any global.
_TORCH_FEATURES = re.compile(
    r"torch\._utils\._rebuild_\w+|torch\._tensor\._rebuild_from_type_v2|torch\.serialization\._get_layout"
    r"|torch\.nn\.parameter\.Parameter|torch\.Tensor|torch\.\w*Tensor|torch\.per_\w+"
)


def _refuse(module: str, name: str) -> Exception:
    qualified = f"{module}.{name}"
    return NeedsTorch(qualified) if _TORCH_FEATURES.fullmatch(qualified) else UnsafePickle(qualified)


def refuses(module: str, name: str) -> bool:
    """Whether the allowlist refuses a global as unsafe (torch's own rebuild functions for
    sparse or quantized tensors are read through torch instead, and are not refused).

    >>> refuses("posix", "system"), refuses("collections", "OrderedDict")
    (True, False)
    >>> refuses("torch._utils", "_rebuild_qtensor")
    False
    """
    return f"{module}.{name}" not in ALLOWED_GLOBALS and isinstance(_refuse(module, name), UnsafePickle)


def storage_ref_from_pid(pid: Any) -> StorageRef:
    """Decode ``('storage', class, key, location, numel[, view])`` from either torch format.

    Keys and locations are strings and counts plain integers, as torch writes them: torch
    names records by the key's text and places storages by the location's.
    """
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise CorruptCheckpoint(f"unknown persistent id {pid!r:.80}")
    _, storage_class, key, location, numel, *rest = pid
    if not isinstance(storage_class, _StorageClass):
        raise CorruptCheckpoint(f"storage id names {storage_class!r:.40}, not a storage class")
    if type(key) is not str or type(location) is not str or type(numel) is not int or numel < 0:
        raise CorruptCheckpoint(f"malformed storage id {pid!r:.80}")
    view = rest[0] if rest else None
    if view is not None:
        if not (isinstance(view, tuple) and len(view) == 3 and type(view[0]) is str):
            raise CorruptCheckpoint(f"malformed storage view {view!r:.60}")
        if not all(type(n) is int and n >= 0 for n in view[1:]) or view[1] + view[2] > numel:
            raise CorruptCheckpoint(f"storage view {view!r:.60} does not fit its {numel}-element storage")
    return StorageRef(key, storage_class.dtype, numel, location, view)


def restricted_load(
    data: Buffer | IO[bytes],
    storage_ref: Callable[[Any], Any] | None = None,
    *,
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
    extra_globals: Mapping[str, Any] | None = None,
    limits: Limits = LIMITS,
    what: str = "the pickle",
) -> Any:
    """Unpickle one of torch's pickles (the whole of ``data``) with the allowlist.

    ``unpickler`` may be a subclass that allows more (a format's own stand-ins);
    ``extra_globals`` adds stand-ins a format's own pickles need (qualified name to the
    stand-in), for this load only: the shared table is never changed.

    >>> import os, pickle
    >>> restricted_load(pickle.dumps({"epoch": 3}, protocol=2))
    {'epoch': 3}
    >>> restricted_load(pickle.dumps(os.system))
    Traceback (most recent call last):
    paramctl.errors.UnsafePickle: refusing to load: the pickle references 'posix.system', ...
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        data = data.read(limits.pickle_bytes + 1)
    loaded, _ = restricted_load_at(
        data, 0, storage_ref, unpickler=unpickler, extra_globals=extra_globals, limits=limits, what=what
    )
    return loaded


def restricted_load_at(
    data: Buffer,
    start: int,
    storage_ref: Callable[[Any], Any] | None = None,
    *,
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
    extra_globals: Mapping[str, Any] | None = None,
    limits: Limits = LIMITS,
    whole: bool = True,
    what: str = "the pickle",
) -> tuple[Any, int]:
    """Unpickle the pickle at ``start`` of ``data``; return it and where it ends (with
    ``whole``, nothing may follow its STOP).

    >>> import pickle
    >>> restricted_load_at(pickle.dumps(1, protocol=2) + pickle.dumps(2, protocol=2), 5, whole=False)
    (2, 10)
    """
    allowed = ChainMap(dict(extra_globals), ALLOWED_GLOBALS) if extra_globals else ALLOWED_GLOBALS
    return _allowlist.restricted_load(
        data,
        allowed,
        persistent=storage_ref,
        refuse=_refuse,
        limits=limits,
        start=start,
        whole=whole,
        what=what,
        passing=(NeedsTorch,),
        unpickler=unpickler,
    )


# numpy arrays pickled inside torch's pickles (``torch.save({"mask": np.ones(3)})``) have
# stand-ins of their own, built on the records above: importing them puts them on
# ALLOWED_GLOBALS, so the table is whole whichever of the two modules is imported first.
from paramctl.formats import _numpy_pickle  # noqa: E402, F401
