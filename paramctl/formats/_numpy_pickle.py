"""Stand-ins for the numpy globals a ``torch.save`` of numpy arrays pickles.

``torch.save({"mask": np.ones(3)})`` pickles each array as numpy pickles it:
``numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")`` (``numpy.core`` before
numpy 2), then a state ``(version, shape, numpy.dtype("f8", False, True), fortran, data)``
where ``data`` is the raw elements (spelled as latin-1 text under torch's protocol 2, so
they are no byte range of the file). Here those globals are records: the array becomes a
:class:`~paramctl.formats._pickle.TensorRecord` on an :class:`InlineStorageRef` holding
its bytes, and numpy scalars (``np.float64(0.5)``) become Python numbers. Nothing of
numpy's is called to rebuild anything; arrays of Python objects are refused as unsafe.

>>> import pickle, numpy as np
>>> from paramctl.formats._pickle import restricted_load
>>> loaded = restricted_load(pickle.dumps({"m": np.arange(3.0), "acc": np.float32(0.5)}, protocol=2))
>>> loaded["m"].shape, loaded["m"].dtype, loaded["m"].storage.data[8:16], loaded["acc"]
((3,), 'float64', b'\\x00\\x00\\x00\\x00\\x00\\x00\\xf0?', 0.5)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Storage, contiguous_stride, walk
from paramctl.dtypes import BY_NUMPY_CODE, DTYPES
from paramctl.errors import CorruptCheckpoint, UnsafePickle
from paramctl.formats._pickle import ALLOWED_GLOBALS, StorageRef, TensorRecord

KEY_PREFIX = "numpy-"


@dataclass(frozen=True)
class InlineStorageRef(StorageRef):
    """A storage whose bytes came inside the pickle itself."""

    data: bytes = b""
    byteorder: str = "little"


class NumpyDType:
    """``numpy.dtype(code, align, copy)`` and its state: a code and a byte order."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        self.code = str(code)
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise CorruptCheckpoint(f"a numpy dtype with the state {state!r:.60}")
        self.order = str(state[1])
        if len(state) > 3 and (state[2] is not None or state[3] is not None):
            raise CorruptCheckpoint(f"a structured numpy dtype ({self.code}) is no tensor paramctl reads")

    def torch_name(self) -> str:
        if self.code.startswith("O"):
            raise UnsafePickle("numpy object array", "its elements are pickles, which paramctl never runs")
        element = BY_NUMPY_CODE.get(self.code)
        if element is None:
            raise CorruptCheckpoint(f"numpy arrays of dtype {self.code!r} are not tensors paramctl reads")
        return element.name

    @property
    def byteorder(self) -> str:
        if self.order in ("=", "|"):
            return sys.byteorder
        return "big" if self.order == ">" else "little"


class NumpyArray(TensorRecord):
    """A pickled ``numpy.ndarray``, as a tensor record over the bytes its state holds."""

    def __init__(self) -> None:
        super().__init__(InlineStorageRef("", "uint8", 0, "cpu"), 0, (), (), False, "uint8")

    def __setstate__(self, state: Any) -> None:
        try:
            _, shape, dtype, fortran, data = state
        except (TypeError, ValueError) as exc:
            raise CorruptCheckpoint(f"a numpy array with the state {state!r:.60}") from exc
        if not isinstance(dtype, NumpyDType):
            raise CorruptCheckpoint(f"a numpy array of {dtype!r:.40}")
        name = dtype.torch_name()
        if not isinstance(data, bytes | bytearray):
            raise UnsafePickle("numpy object array", "its elements are pickles, which paramctl never runs")
        self.shape = tuple(int(size) for size in shape)
        stride = contiguous_stride(self.shape)
        self.stride = tuple(reversed(contiguous_stride(tuple(reversed(self.shape))))) if fortran else stride
        self.dtype = name
        numel = len(data) // max(1, BY_NUMPY_CODE[dtype.code].itemsize)
        self.storage = InlineStorageRef("", name, numel, "cpu", data=bytes(data), byteorder=dtype.byteorder)


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> NumpyArray:
    if cls is not _NDARRAY:
        raise UnsafePickle("numpy._core.multiarray._reconstruct", f"of {cls!r:.40}, not numpy.ndarray")
    return NumpyArray()


def _scalar(dtype: NumpyDType, data: bytes) -> Any:
    import numpy as np

    element = np.dtype(dtype.code).newbyteorder("<" if dtype.byteorder == "little" else ">")
    dtype.torch_name()  # refuses object scalars
    return np.frombuffer(data, element, count=1)[0].item()


_NDARRAY = object()

NUMPY_GLOBALS: dict[str, Any] = {
    "numpy.ndarray": _NDARRAY,
    "numpy.dtype": NumpyDType,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_GLOBALS[f"{_module}._reconstruct"] = _reconstruct
    NUMPY_GLOBALS[f"{_module}.scalar"] = _scalar
# The stand-ins join the allowlist when this module is imported, which importing the
# allowlist's own module does.
ALLOWED_GLOBALS.update(NUMPY_GLOBALS)


def inline_storages(payload: Any, path: Path, byteorder: str) -> dict[str, Storage]:
    """Give each pickled numpy array in ``payload`` a storage key and return their storages.

    One array reachable by two paths is one record, so it gets one storage: a tie. The
    tree is held to the limits before it is walked (a memo fan-out has 2**40 paths).
    """
    from paramctl.formats._pickle_tree import check_tree

    check_tree(payload, is_tensor=lambda node: isinstance(node, TensorRecord))
    storages: dict[str, Storage] = {}
    for _, leaf in walk(payload):
        if not isinstance(leaf, NumpyArray) or leaf.storage.key:
            continue
        ref = leaf.storage
        assert isinstance(ref, InlineStorageRef)
        if ref.byteorder != byteorder and DTYPES[leaf.dtype].itemsize > 1:
            raise CorruptCheckpoint(
                f"{path}: a {ref.byteorder}-endian numpy array in a {byteorder}-endian file"
            )
        key = f"{KEY_PREFIX}{len(storages)}"
        leaf.storage = replace(ref, key=key)
        storages[key] = Storage(key, path, ref.dtype, len(ref.data), None, inline=ref.data)
    return storages
