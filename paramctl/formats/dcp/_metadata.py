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

from typing import Any

from paramctl.errors import CorruptCheckpoint
from paramctl.formats._pickle import restricted_load

# A .metadata beyond this is no metadata torch writes (a million tensors take about 200 MB).
MAX_METADATA_BYTES = 1 << 30


class _Record:
    """A pickled dataclass, as its fields: ``BUILD`` gives a dict (or ``(None, slots)``)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise CorruptCheckpoint(f"{type(self).__name__}: unexpected state {state!r:.60}")
        self.__dict__.update(state)

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)


class Metadata(_Record):
    pass


class TensorStorageMetadata(_Record):
    pass


class ChunkStorageMetadata(_Record):
    pass


class BytesStorageMetadata(_Record):
    pass


class MetadataIndex(_Record):
    pass


class StorageMeta(_Record):
    pass


class StorageInfo(_Record):
    pass


class TensorProperties(_Record):
    """``TensorProperties`` pickles its fields as a tuple: dtype, layout, requires_grad,
    memory_format, pin_memory."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            names = ("dtype", "layout", "requires_grad", "memory_format", "pin_memory")
            self.__dict__.update(zip(names, state, strict=True))
            return
        super().__setstate__(state)


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
    """The ``.metadata`` pickle's record, read with the allowlist and :data:`DCP_GLOBALS`."""
    if len(data) > MAX_METADATA_BYTES:
        raise CorruptCheckpoint(f".metadata is over {MAX_METADATA_BYTES >> 20} MiB")
    metadata = restricted_load(data, extra_globals=DCP_GLOBALS)
    if not isinstance(metadata, Metadata):
        raise CorruptCheckpoint(
            f".metadata is a {type(metadata).__name__}, not a torch.distributed.checkpoint Metadata"
        )
    return metadata
