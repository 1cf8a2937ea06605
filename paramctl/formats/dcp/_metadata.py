"""Stand-ins for the classes of a torch.distributed.checkpoint ``.metadata`` pickle.

``torch.distributed.checkpoint`` reads ``.metadata`` with a plain ``pickle.load``, so a
hostile file runs code there. paramctl reads it with the allowlist unpickler
(:func:`paramctl.formats._pickle.restricted_load`) and :data:`DCP_GLOBALS`: each class the
metadata names becomes a plain record here, every other global is refused before anything
runs.

>>> import pickle
>>> chunk = ChunkStorageMetadata()
>>> chunk.__setstate__({"offsets": (0, 0), "sizes": (4, 6)})
>>> chunk.get("sizes")
(4, 6)
>>> load_metadata(pickle.dumps({"step": 1}))
Traceback (most recent call last):
paramctl.errors.CorruptCheckpoint: .metadata is a dict, not a torch.distributed.checkpoint Metadata
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from paramctl.errors import CorruptCheckpoint
from paramctl.formats._allowlist import PickledRecord
from paramctl.formats._limits import LIMITS
from paramctl.formats._pickle import restricted_load

# A .metadata beyond this is no metadata torch writes (a million tensors take about 200 MB).
MAX_METADATA_BYTES = 256 << 20
_NONE = type(None)


class _Record(PickledRecord):
    """A pickled dataclass, as its fields: ``BUILD`` gives a dict (or ``(None, slots)``),
    once, each field of its type (what the field holds inside is checked by the reader)."""

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default) if name in self.fields else default


class ChunkStorageMetadata(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {"offsets": tuple, "sizes": tuple}


class BytesStorageMetadata(_Record):
    pass


class TensorProperties(_Record):
    """``TensorProperties`` pickles its fields as a tuple: dtype, layout, requires_grad,
    memory_format, pin_memory."""

    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "dtype": str,
        "layout": str,
        "requires_grad": bool,
        "memory_format": str,
        "pin_memory": bool,
    }

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == len(self.fields):
            state = dict(zip(self.fields, state, strict=True))
        super().__setstate__(state)


class TensorStorageMetadata(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "properties": TensorProperties,
        "size": tuple,
        "chunks": list,
    }


class MetadataIndex(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "fqn": str,
        "offset": (tuple, _NONE),
        "index": (int, _NONE),
    }


class StorageMeta(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "checkpoint_id": (str, _NONE),
        "save_id": (str, _NONE),
        "load_id": (str, _NONE),
        "modules": list,
    }


class StorageInfo(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "relative_path": str,
        "offset": int,
        "length": int,
        "transform_descriptors": (list, tuple, _NONE),
    }


class Metadata(_Record):
    fields: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "state_dict_metadata": dict,
        "planner_data": object,
        "storage_data": dict,
        "storage_meta": (StorageMeta, _NONE),
        "version": (str, _NONE),
    }


def _named(value: Any) -> str:
    """An enum member or layout, by its value: nothing of it matters for reading."""
    return str(value)


def _path(*parts: Any) -> str:
    return "/".join(map(str, parts))


_MODULE = "torch.distributed.checkpoint.metadata"
DCP_GLOBALS: dict[str, Any] = {
    f"{_MODULE}.Metadata": Metadata,
    f"{_MODULE}.TensorStorageMetadata": TensorStorageMetadata,
    f"{_MODULE}.ChunkStorageMetadata": ChunkStorageMetadata,
    f"{_MODULE}.BytesStorageMetadata": BytesStorageMetadata,
    f"{_MODULE}.TensorProperties": TensorProperties,
    f"{_MODULE}.MetadataIndex": MetadataIndex,
    f"{_MODULE}.StorageMeta": StorageMeta,
    f"{_MODULE}._MEM_FORMAT_ENCODING": _named,
    "torch.distributed.checkpoint.filesystem._StorageInfo": StorageInfo,
    "torch.serialization._get_layout": _named,
    "pathlib.PosixPath": _path,
    "pathlib.WindowsPath": _path,
    "pathlib.PurePosixPath": _path,
}


def load_metadata(data: bytes) -> Metadata:
    """The ``.metadata`` pickle's record, read with the allowlist and :data:`DCP_GLOBALS`,
    within paramctl's limits (its size: :data:`MAX_METADATA_BYTES`)."""
    limits = replace(LIMITS, pickle_bytes=MAX_METADATA_BYTES)
    metadata = restricted_load(data, extra_globals=DCP_GLOBALS, limits=limits, what=".metadata")
    if not isinstance(metadata, Metadata):
        raise CorruptCheckpoint(
            f".metadata is a {type(metadata).__name__}, not a torch.distributed.checkpoint Metadata"
        )
    return metadata
