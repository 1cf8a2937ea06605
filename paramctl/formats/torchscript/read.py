"""TorchScript archives (``torch.jit.save``): the module's tensors, read from its pickles.

The archive is a torch zip with more records: ``<root>/data.pkl`` pickles the module tree
(each submodule an instance of a ``__torch__`` class, its attributes the state),
``<root>/constants.pkl`` a tuple of the tensors the code uses as constants (records
``constants/<key>``), and ``<root>/code/`` the compiled code. The pickles are read with the
allowlist unpickler plus one stand-in, :class:`ScriptObject`, for every ``__torch__`` class:
it keeps the attributes and the class's name and never looks at the code.

>>> ScriptObject.named("__torch__.torch.nn.modules.linear.Linear").qualified_name
'__torch__.torch.nn.modules.linear.Linear'
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._allowlist import RestrictedUnpickler
from paramctl.formats._pickle import StorageRef, restricted_load, storage_ref_from_pid
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors
from paramctl.formats.torch_zip.read import find_root, read_record, read_zip, record_data_offset
from paramctl.formats.torchscript.layout import NAME

CONSTANTS = "constants"


class ScriptObject(dict[str, Any]):
    """An instance of a ``__torch__`` class: its attributes by name (the pickle's state)."""

    qualified_name: ClassVar[str] = ""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)
        else:  # a class with __getstate__: its state is whatever that returned
            self["state"] = state

    @staticmethod
    @cache
    def named(qualified_name: str) -> type[ScriptObject]:
        """The stand-in class for one ``__torch__`` class (one per name, so memo ties hold)."""
        leaf = qualified_name.rpartition(".")[2]
        return type(leaf, (ScriptObject,), {"qualified_name": qualified_name})


def _identity(value: Any, *_: Any) -> Any:
    return value


# torch.jit._pickle's helpers rebuild typed lists and restore type tags: the values as they are.
_JIT_HELPERS = {
    f"torch.jit._pickle.{name}": _identity
    for name in (
        "build_intlist",
        "build_doublelist",
        "build_boollist",
        "build_tensorlist",
        "restore_type_tag",
    )
}


class _ScriptUnpickler(RestrictedUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return ScriptObject.named(f"{module}.{name}")
        if f"{module}.{name}" in _JIT_HELPERS:
            return _JIT_HELPERS[f"{module}.{name}"]
        return super().find_class(module, name)


def record_name(root: str, key: str) -> str:
    """The zip record of storage ``key``: constants keep their folder, the rest are data/.

    >>> record_name("m/", "3"), record_name("m/", "constants/0")
    ('m/data/3', 'm/constants/0')
    """
    return f"{root}{key}" if key.startswith(f"{CONSTANTS}/") else f"{root}data/{key}"


def read(path: Path) -> Checkpoint:
    return read_zip(path, _read)


def _read(path: Path, file: BinaryIO, archive: zipfile.ZipFile) -> Checkpoint:
    infos = {info.filename: info for info in archive.infolist()}
    root = find_root(list(infos))
    refs: dict[str, StorageRef] = {}

    def ref_in(folder: str) -> Callable[[tuple[Any, ...]], StorageRef]:
        def storage_ref(pid: tuple[Any, ...]) -> StorageRef:
            ref = storage_ref_from_pid(pid)
            ref = replace(ref, key=f"{folder}{ref.key}")
            return refs.setdefault(ref.key, ref)

        return storage_ref

    module = restricted_load(read_record(archive, f"{root}data.pkl"), ref_in(""), unpickler=_ScriptUnpickler)
    constants = restricted_load(
        read_record(archive, f"{root}{CONSTANTS}.pkl"), ref_in(f"{CONSTANTS}/"), unpickler=_ScriptUnpickler
    )
    metadata = {"module": getattr(module, "qualified_name", type(module).__name__)}
    payload = _plain(module)
    if not isinstance(payload, dict):
        payload = {"module": payload}
    if constants:
        payload[CONSTANTS] = list(constants)
    storages = {key: _storage(path, file, infos, root, ref) for key, ref in refs.items()}
    payload, entries = name_tensors(payload)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    byteorder = "little"
    if f"{root}byteorder" in infos:
        byteorder = read_record(archive, f"{root}byteorder").decode("ascii", "replace").strip() or "little"
    return Checkpoint(path, NAME, entries, storages, payload, metadata, byteorder)


def _plain(node: Any) -> Any:
    """The module tree with every stand-in a plain dict of its attributes (the classes'
    names are the code's business; the root's is kept in the metadata)."""
    if isinstance(node, dict):
        plain = {key: _plain(value) for key, value in node.items()}
        return plain if isinstance(node, ScriptObject) or type(node) is dict else type(node)(plain)
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, tuple):
        return tuple(_plain(value) for value in node)
    return node


def _storage(
    path: Path, file: BinaryIO, infos: dict[str, zipfile.ZipInfo], root: str, ref: StorageRef
) -> Storage:
    info = infos.get(record_name(root, ref.key))
    if info is None:
        raise CorruptCheckpoint(f"{path}: storage record {record_name('', ref.key)} is missing")
    expected = ref.nbytes
    if info.file_size < expected:
        raise CorruptCheckpoint(f"{path}: storage {ref.key} holds {info.file_size} bytes, needs {expected}")
    offset = record_data_offset(file, info) if info.compress_type == zipfile.ZIP_STORED else None
    return Storage(ref.key, path, ref.dtype, expected, offset, ref.location)
