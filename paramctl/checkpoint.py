"""The checkpoint model: named tensor entries, the storages they live in, and the rest.

A :class:`Checkpoint` is what every format reader produces and every command consumes. It
holds metadata only: names, shapes, dtypes, strides and where each tensor's bytes are in
the file. Values are read on demand, one tensor at a time, by :mod:`paramctl.values`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from paramctl._records import changed, derived
from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError

PathPart = str | int

# Keys under which training checkpoints keep the model's own state_dict, most telling first.
MODEL_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "ema",
    "model_ema",
    "state_dict_ema",
    "net",
    "network",
)


@dataclass(frozen=True)
class Storage:
    """A block of bytes in one file of the checkpoint that one or more tensors view.

    ``key`` is unique within the checkpoint, whichever file holds the storage. ``offset`` is
    the absolute position of the first byte in ``file``, or ``None`` when the bytes are not
    stored plainly (a compressed zip record, a fallback load).
    """

    key: str
    file: Path
    dtype: str
    nbytes: int
    offset: int | None
    device: str = "cpu"
    # The bytes themselves, for a storage that is not a byte range of any file (a numpy
    # array pickled inside a torch.save pickle, whose bytes the pickle spells as text).
    inline: bytes | None = None
    # A tensor assembled from chunks held in other storages (a DCP tensor): no bytes of its own.
    chunked: bool = False
    # Bytes inside a compressed zip member: the member's name and where they start in its
    # inflated bytes (an ``np.savez_compressed`` array); read by inflating, never in place.
    member: tuple[str, int] | None = None

    def renamed(self, key: str) -> Storage:
        """This storage under another key (a shard's storages in the whole checkpoint)."""
        return changed(self, key=key)


@dataclass(frozen=True)
class Chunk:
    """One piece of a tensor split across storages (a DCP shard): the storage holding it,
    contiguous, and where it lies in the whole tensor.

    >>> Chunk("__0_0.distcp/0", (4, 0), (4, 8)).selects(((0, 4), (0, 8)))
    False
    """

    storage_key: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.sizes)

    def selects(self, bounds: Sequence[tuple[int, int]]) -> bool:
        """Whether the chunk meets the box ``bounds`` (half-open ``(start, stop)`` per dim)."""
        return all(
            start < offset + size and offset < stop
            for (start, stop), offset, size in zip(bounds, self.offsets, self.sizes, strict=True)
        )


@dataclass(frozen=True)
class TensorEntry:
    """One named tensor: where it is in the checkpoint and what it looks like."""

    name: str
    path: tuple[PathPart, ...]
    shape: tuple[int, ...]
    dtype: str
    stride: tuple[int, ...]
    storage_key: str
    storage_offset: int = 0
    requires_grad: bool = False
    is_parameter: bool = False
    # A name the file records only as another tensor's alias (safetensors' save_model).
    recorded_alias: bool = False
    # The pieces of a tensor split across storages; empty for a tensor in one storage.
    chunks: tuple[Chunk, ...] = ()

    # Derived once per entry (a frozen entry never changes): listings of a hundred thousand
    # tensors ask for them many times over.
    @derived
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype].itemsize

    @derived
    def nbytes(self) -> int:
        return DTYPES[self.dtype].nbytes_for(self.numel)

    @derived
    def byte_span(self) -> tuple[int, int]:
        """The half-open byte interval of the storage this tensor can touch.

        >>> TensorEntry("w", ("w",), (2, 3), "float32", (3, 1), "0", 4).byte_span
        (16, 40)
        """
        element = DTYPES[self.dtype]
        start = element.nbytes_for(self.storage_offset)
        if len(self.stride) != len(self.shape):  # sparse and other non-strided layouts
            return (start, start)
        extent = 1
        for size, step in zip(self.shape, self.stride, strict=True):
            if size == 0:
                return (start, start)
            extent += (size - 1) * abs(step)
        # Block-quantized elements come in whole blocks: a span is their bytes.
        return (start, start + element.nbytes_for(extent))

    @property
    def is_contiguous(self) -> bool:
        if len(self.stride) != len(self.shape):  # sparse and other non-strided layouts
            return False
        expected = 1
        for size, step in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if size != 1 and step != expected:
                return False
            expected *= size
        return True

    def in_storage(self, key: str) -> TensorEntry:
        """This entry viewing the same bytes under another storage key."""
        return changed(self, storage_key=key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "numel": self.numel,
            "bytes": self.nbytes,
        }


@dataclass(frozen=True)
class Extra:
    """A non-tensor value in the checkpoint (an epoch, a learning rate, a config string)."""

    name: str
    path: tuple[PathPart, ...]
    value: Any

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if not isinstance(value, str | int | float | bool | type(None)):
            value = repr(value)
        kind = "list" if isinstance(self.value, LongArray) else type(self.value).__name__
        return {"name": self.name, "value": value, "type": kind}


@dataclass(frozen=True)
class LongArray:
    """An array value (a GGUF vocabulary of 151,936 strings) that listings summarize unless
    asked for in full; it pickles as the plain list it is.

    >>> LongArray(tuple(f"t{i}" for i in range(151936)), "strings"), LongArray((1, 2), "int32")
    ([151936 strings], [1, 2])
    """

    items: tuple[Any, ...]
    kind: str

    # Arrays up to this long are shown as they are.
    SHOWN: ClassVar[int] = 8

    def __repr__(self) -> str:
        if len(self.items) > self.SHOWN:
            return f"[{len(self.items)} {self.kind}]"
        return repr(list(self.items))

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self.items),))


def contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides for ``shape``.

    >>> contiguous_stride((2, 3, 4))
    (12, 4, 1)
    """
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))


def join_path(parts: Sequence[PathPart]) -> str:
    """The dotted name of a path inside a checkpoint.

    >>> join_path(("optimizer", "state", 0, "exp_avg"))
    'optimizer.state.0.exp_avg'
    """
    return ".".join(map(str, parts))


@dataclass
class Checkpoint:
    """Everything known about a checkpoint file without reading tensor values.

    ``payload`` is the unpickled object tree with each tensor replaced by its
    :class:`TensorEntry` (``None`` for formats that are a flat table, like safetensors).
    """

    path: Path
    format: str
    entries: list[TensorEntry]
    storages: dict[str, Storage]
    payload: Any = None
    metadata: dict[str, str] = field(default_factory=dict)
    byteorder: str = "little"
    notes: list[str] = field(default_factory=list)
    # Set by readers that could only load the file through torch itself.
    fallback_tensors: dict[str, Any] | None = None
    # How messages name the source: the path, or "<stdin>" for a piped checkpoint.
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or str(self.path)

    def __iter__(self) -> Iterator[TensorEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def entry(self, name: str) -> TensorEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def storage_of(self, entry: TensorEntry) -> Storage:
        return self.storages[entry.storage_key]

    def storage_keys(self, entry: TensorEntry) -> tuple[str, ...]:
        """The storages holding the entry's bytes: its chunks' for a split tensor."""
        return tuple(chunk.storage_key for chunk in entry.chunks) or (entry.storage_key,)

    @property
    def files(self) -> list[Path]:
        """The files holding this checkpoint's storages, in the order storages name them."""
        held = (storage.file for storage in self.storages.values() if not storage.chunked)
        return list(dict.fromkeys(held)) or [self.path]

    def extras(self) -> list[Extra]:
        """Every non-tensor leaf of the payload, named by its path."""
        found: list[Extra] = []
        for path, value in walk(self.payload):
            if not isinstance(value, TensorEntry):
                found.append(Extra(join_path(path), path, value))
        return found


def walk(node: Any, path: tuple[PathPart, ...] = ()) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    """Yield ``(path, leaf)`` for every leaf of a nested dict/list/tuple payload."""
    if isinstance(node, dict):
        if not node and path:
            yield path, node
        for key, value in node.items():
            part = key if isinstance(key, int) else str(key)
            yield from walk(value, (*path, part))
    elif isinstance(node, list | tuple):
        if not node and path:
            yield path, node
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))
    elif node is not None or path:
        yield path, node


def _contains_tensors(node: Any) -> bool:
    return any(isinstance(leaf, TensorEntry) for _, leaf in walk(node))


def find_model_key(payload: Any) -> tuple[PathPart, ...] | None:
    """The path of the dict that is clearly the model's state_dict, if there is one.

    >>> w = TensorEntry("state_dict.w", ("state_dict", "w"), (1,), "float32", (1,), "0")
    >>> find_model_key({"state_dict": {"w": w}, "epoch": 3})
    ('state_dict',)
    """
    path: tuple[PathPart, ...] = ()
    node = payload
    while isinstance(node, dict):
        key = next(
            (k for k in MODEL_KEYS if isinstance(node.get(k), dict) and _contains_tensors(node[k])),
            None,
        )
        if key is None:
            break
        path, node = (*path, key), node[key]
    return path or None


def resolve_key(payload: Any, dotted: str) -> tuple[PathPart, ...]:
    """Turn ``--key`` text into a path, matching keys that contain dots themselves."""
    path: list[PathPart] = []
    node = payload
    rest = dotted
    while rest:
        if isinstance(node, dict):
            candidates = sorted((str(k) for k in node), key=len, reverse=True)
            hit = next((c for c in candidates if rest == c or rest.startswith(c + ".")), None)
            if hit is None:
                raise UsageError(f"--key {dotted!r}: no key {rest.split('.')[0]!r} here")
            key = next(k for k in node if str(k) == hit)
            path.append(key if isinstance(key, int) else hit)
            node = node[key]
            rest = rest[len(hit) + 1 :]
        elif isinstance(node, list | tuple):
            head, _, rest = rest.partition(".")
            if not head.isdigit() or int(head) >= len(node):
                raise UsageError(f"--key {dotted!r}: {head!r} is not an index of a list here")
            path.append(int(head))
            node = node[int(head)]
        else:
            raise UsageError(f"--key {dotted!r}: {join_path(path)!r} holds no tensors below it")
    return tuple(path)


@dataclass(frozen=True)
class ModelView:
    """The tensors a command works on: all of them, or one sub-dict with its prefix cut."""

    entries: list[TensorEntry]
    prefix: tuple[PathPart, ...] = ()
    auto_detected: bool = False

    @property
    def prefix_name(self) -> str:
        return join_path(self.prefix)


def model_view(checkpoint: Checkpoint, key: str | None = None, all_tensors: bool = False) -> ModelView:
    """Choose the tensors to show: ``--all``, ``--key PATH``, or the detected model dict.

    Names inside the view are relative to its prefix (``state_dict.0.weight`` shows as
    ``0.weight``); each entry keeps its full ``path`` for writing back.
    """
    if all_tensors and key:
        raise UsageError("--all and --key exclude each other")
    if all_tensors or checkpoint.payload is None:
        return ModelView(checkpoint.entries)
    prefix: tuple[PathPart, ...] | None
    if key:
        prefix = resolve_key(checkpoint.payload, key)
        auto = False
    else:
        prefix = find_model_key(checkpoint.payload)
        auto = True
    if not prefix:
        return ModelView(checkpoint.entries)
    depth = len(prefix)
    inside = [e for e in checkpoint.entries if e.path[:depth] == prefix]
    if not inside:
        raise UsageError(f"--key {join_path(prefix)!r} holds no tensors")
    renamed = [replace(e, name=join_path(e.path[depth:])) for e in inside]
    return ModelView(renamed, prefix, auto)
