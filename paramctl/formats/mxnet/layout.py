"""MXNet's NDArray serialization (``mx.nd.save``, Gluon's ``save_parameters``), byte by byte.

MXNet is retired and does not install beside current numpy, so paramctl reads and writes the
layout itself (``NDArray::Save`` and ``MXNDArraySave`` in MXNet 1.x); every integer is little
endian::

    file    := u64 0x112 (list magic)  u64 0 (reserved)
               u64 count  array * count
               u64 name_count  (u64 length  utf-8 bytes) * name_count
    array   := u32 magic  i32 storage_type  shape  context  i32 type_flag  data
    shape   := V2 (magic 0xF993FAC9): u32 ndim, i64 * ndim; ndim 0 means "no shape", and
               then nothing follows the shape (the array holds no data)
               V3 (magic 0xF993FACA, numpy shape semantics): i32 ndim, i64 * ndim; ndim -1
               means "no shape", ndim 0 a scalar
    context := i32 device_type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared)  i32 device_id
    data    := numel * itemsize bytes, C order

``name_count`` is 0 for ``mx.nd.save`` of a list, else equal to ``count`` (a dict, Gluon's
``save_parameters`` with names like ``0.weight`` or the older ``dense0_weight``,
``save_checkpoint``'s ``arg:``/``aux:`` prefixed names). ``storage_type`` is 0 for dense
arrays; 1 (row_sparse) and 2 (csr) add a storage shape and auxiliary arrays, which paramctl
refuses. ``type_flag`` is mshadow's type code (:data:`TYPE_FLAGS`).

>>> TYPE_FLAGS[0], TYPE_FLAGS[6], FLAG_OF["float16"]
('float32', 'int64', 2)
"""

from __future__ import annotations

import struct

NAME = "mxnet"
LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
HEADER = struct.Struct("<QQ")
U64 = struct.Struct("<Q")
ARRAY_START = struct.Struct("<Ii")  # magic, storage type
V2_NDIM = struct.Struct("<I")
V3_NDIM = struct.Struct("<i")
DIM = struct.Struct("<q")
CONTEXT_AND_TYPE = struct.Struct("<iii")  # device type, device id, type flag
CPU = 1
DENSE = 0
STORAGE_TYPES = {-1: "undefined", 0: "default", 1: "row_sparse", 2: "csr"}
# mshadow's type flags (mshadow/base.h: kFloat32 = 0 ... kBfloat16 = 12).
TYPE_FLAGS = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    8: "int16",
    9: "uint16",
    10: "uint32",
    11: "uint64",
    12: "bfloat16",
}
FLAG_OF = {name: flag for flag, name in TYPE_FLAGS.items()}
# What paramctl writes: MXNet 1.9 defines bfloat16 but cannot load or convert it on the CPU
# (numpy has no bfloat16), so it is read, never written.
WRITTEN = frozenset(FLAG_OF) - {"bfloat16"}
# More dimensions than any array has: a larger count is a damaged file, not a big array.
MAX_NDIM = 32


def sniff(head: bytes) -> bool:
    """An NDArray list starts with magic 0x112, a zero, and its first array's magic.

    >>> sniff(bytes.fromhex("1201000000000000") + bytes(8)), sniff(b"GGUF" + bytes(12))
    (True, False)
    """
    if len(head) < HEADER.size:
        return False
    magic, reserved = HEADER.unpack_from(head)
    return bool(magic == LIST_MAGIC and reserved == 0)
