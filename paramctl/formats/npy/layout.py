"""What marks NumPy's files: the ``.npy`` magic string, and an ``.npz`` zip whose first member
is a ``.npy``; the dtypes numpy stores. Kept apart from the reader so that detecting one
costs no imports.

>>> sniff_npy(b"\\x93NUMPY\\x01\\x00"), sniff_npz(b"PK\\x03\\x04" + bytes(60))
(True, False)
"""

from __future__ import annotations

import struct

NPY = "npy"
NPZ = "npz"
MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_NAME_LENGTH = struct.Struct("<H")
_LOCAL_NAME_AT = 30
# numpy's kind and size, to paramctl's dtype names.
NUMPY_DTYPES = {
    "f8": "float64", "f4": "float32", "f2": "float16",
    "c16": "complex128", "c8": "complex64",
    "i8": "int64", "i4": "int32", "i2": "int16", "i1": "int8",
    "u8": "uint64", "u4": "uint32", "u2": "uint16", "u1": "uint8",
    "b1": "bool",
}  # fmt: skip


def sniff_npy(head: bytes) -> bool:
    return head.startswith(MAGIC)


def sniff_npz(head: bytes) -> bool:
    """A zip whose first member is a ``.npy`` (a torch zip starts with ``<root>/data.pkl``).

    >>> sniff_npz(b"PK\\x03\\x04" + bytes(22) + b"\\x05\\x00\\x00\\x00w.npy")
    True
    """
    if not head.startswith(_ZIP_MAGIC) or len(head) < _LOCAL_NAME_AT:
        return False
    (length,) = _NAME_LENGTH.unpack_from(head, 26)
    name = head[_LOCAL_NAME_AT : _LOCAL_NAME_AT + length]
    return len(name) == length and name.endswith(b".npy")
