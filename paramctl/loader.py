"""``paramctl.load`` and ``paramctl.save``: a state_dict from any checkpoint paramctl reads,
and to any format it writes, with the pickle never run.

:func:`load` is the drop-in for ``torch.load(path, weights_only=True)`` on a state_dict: the
tensors come back memory-mapped from the file where it stores them plainly (pages are read
as they are touched; writes stay private), tied names as one tensor and views of one
storage sharing it, as ``torch.load`` gives them. It also reads what ``torch.load`` cannot:
pickles of protocol 4 and 5, safetensors, sharded and DCP directories, GGUF, MXNet.

>>> import os, tempfile, torch
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> tied = torch.arange(4.0)
>>> torch.save({"embed": tied, "head": tied, "half": tied[2:]}, path, pickle_protocol=4)
>>> state = load(path)
>>> state["head"] is state["embed"]
True
>>> state["half"].untyped_storage().data_ptr() == state["embed"].untyped_storage().data_ptr()
True
>>> save(state, path.replace(".pt", ".safetensors"), dtype=torch.bfloat16)
>>> load(path.replace(".pt", ".safetensors"))["half"]
tensor([2., 3.], dtype=torch.bfloat16)
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, join_path, model_view
from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError
from paramctl.select import Selection, check_listed, select

if TYPE_CHECKING:
    import torch

    from paramctl.rename import NameMap
    from paramctl.values import ValueReader

Select = Selection | str | Iterable[str] | None


def _selection(chosen: Select) -> Selection:
    """A selection from ``select=``: a :class:`Selection`, a glob, or names."""
    if chosen is None:
        return Selection()
    if isinstance(chosen, Selection):
        return chosen
    if isinstance(chosen, str):
        return Selection(match=(chosen,))
    return Selection(names=frozenset(chosen))


def load(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    select: Select = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint at ``path`` by name: the model dict of a training
    checkpoint (or ``key``'s), ``select`` of them (a glob, names, or a :class:`Selection`),
    floating ones cast to ``dtype``, on ``device``. The pickle is never run."""
    from paramctl.formats import read_checkpoint
    from paramctl.values import ValueReader

    checkpoint = read_checkpoint(path)
    view = model_view(checkpoint, key=key)
    selection = _selection(select)
    check_listed(selection, [entry.name for entry in view.entries], checkpoint.label)
    entries = _select(view.entries, selection)
    built: dict[Any, torch.Tensor] = {}
    with ValueReader(checkpoint) as reader:
        maps = _Maps(checkpoint, reader)
        tensors = {entry.name: _tensor(entry, maps, built, dtype, device) for entry in entries}
    return tensors


def _select(entries: list[TensorEntry], selection: Selection) -> list[TensorEntry]:
    return select(entries, selection) if selection != Selection() else entries


class _Maps:
    """One copy-on-write map per file, and one byte tensor per storage, shared by its views."""

    def __init__(self, checkpoint: Checkpoint, reader: ValueReader) -> None:
        self.checkpoint, self.reader = checkpoint, reader
        self.maps: dict[Path, mmap.mmap] = {}
        self.storages: dict[str, torch.Tensor] = {}

    def mappable(self, entry: TensorEntry) -> bool:
        storage = self.checkpoint.storage_of(entry)
        element = DTYPES[entry.dtype]
        return (
            storage.offset is not None
            and storage.nbytes > 0
            and storage.inline is None
            and storage.member is None
            and not storage.chunked
            and not entry.chunks
            and not element.is_block_quantized
            and self.checkpoint.fallback_tensors is None
            and self.checkpoint.byteorder == "little"
        )

    def storage(self, storage: Storage) -> torch.Tensor:
        import torch

        if storage.key not in self.storages:
            if storage.file not in self.maps:
                descriptor = self.reader.fileno(storage.file)
                self.maps[storage.file] = mmap.mmap(descriptor, 0, access=mmap.ACCESS_COPY)
            mapped = self.maps[storage.file]
            self.storages[storage.key] = torch.frombuffer(
                mapped, dtype=torch.uint8, count=storage.nbytes, offset=storage.offset or 0
            )
        return self.storages[storage.key]


def _tensor(
    entry: TensorEntry,
    maps: _Maps,
    built: dict[Any, torch.Tensor],
    dtype: torch.dtype | None,
    device: str | torch.device,
) -> torch.Tensor:
    """The entry as torch gives it, built once per identity so that tied names are one tensor."""
    import torch

    from paramctl.storage import identity

    tie = identity(entry)
    if tie in built:
        return built[tie]
    if maps.mappable(entry):
        raw = maps.storage(maps.checkpoint.storage_of(entry))
        tensor = raw.view(getattr(torch, entry.dtype)).as_strided(
            entry.shape, entry.stride, entry.storage_offset
        )
    else:
        tensor = maps.reader.tensor(entry)
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    tensor = tensor.to(device)
    if entry.is_parameter:
        tensor = torch.nn.Parameter(tensor, requires_grad=entry.requires_grad)
    elif entry.requires_grad and tensor.is_floating_point():
        tensor.requires_grad_(True)
    built[tie] = tensor
    return tensor


def save(
    state_dict: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    to: str | None = None,
    select: Select = None,
    names: NameMap | None = None,
    dtype: torch.dtype | None = None,
    drop_extras: bool = False,
    max_shard_size: int | None = None,
) -> None:
    """Write ``state_dict`` to ``path`` in the format ``to`` or the one its suffix names,
    by ``paramctl convert``'s rules: ``select`` keeps (with ``dtype``: casts) tensors,
    ``names`` renames them, ties are kept where the format records them, and what it cannot
    hold is refused. Every distinct storage is written once, one at a time."""
    from paramctl.atomic import scratch_file
    from paramctl.convert import ConvertOptions, convert_checkpoint, target_format

    target = Path(path)
    if to is None and not target.suffix:
        raise UsageError(f"{target}: give a path with a suffix (.pt, .safetensors, ...) or to=FORMAT")
    options = ConvertOptions(
        all_tensors=True,
        selection=_selection(select),
        names=names or _no_renames(),
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else None,
        drop_extras=drop_extras,
        max_shard_size=max_shard_size,
    )
    scratch_dir = target.parent if target.suffix else target
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with scratch_file(scratch_dir) as (scratch, scratch_path):
        checkpoint = _spill(state_dict, scratch, scratch_path)
        convert_checkpoint(checkpoint, target, target_format(target, to, ""), options)


def _no_renames() -> NameMap:
    from paramctl.rename import NameMap

    return NameMap()


def _spill(state_dict: Mapping[str, Any], out: Any, path: Path) -> Checkpoint:
    """A checkpoint of ``state_dict`` whose storages are written to ``out`` (at ``path``),
    each distinct storage once."""
    import torch

    storages: dict[Any, Storage] = {}
    entries: list[TensorEntry] = []

    def entry_of(tensor: torch.Tensor, where: tuple[Any, ...]) -> TensorEntry:
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in DTYPES or tensor.layout != torch.strided:
            raise UsageError(
                f"{join_path(where)}: a {tensor.layout} {name} tensor, which paramctl does not write"
            )
        storage = tensor.untyped_storage()
        identity = (storage.device, storage.data_ptr(), storage.nbytes())
        if identity not in storages:
            start = out.tell()
            if storage.nbytes():
                data = torch.empty(0, dtype=torch.uint8).set_(storage.cpu())  # type: ignore[no-untyped-call]
                out.write(data.numpy().tobytes())
            key = str(len(storages))
            storages[identity] = Storage(key, path, name, storage.nbytes(), start)
        entry = TensorEntry(
            join_path(where),
            where,
            tuple(tensor.shape),
            name,
            tuple(tensor.stride()),
            storages[identity].key,
            int(tensor.storage_offset()),
            requires_grad=tensor.requires_grad,
            is_parameter=isinstance(tensor, torch.nn.Parameter),
        )
        entries.append(entry)
        return entry

    def rebuilt(node: Any, where: tuple[Any, ...]) -> Any:
        if isinstance(node, torch.Tensor):
            return entry_of(node.detach(), where)
        if isinstance(node, Mapping):
            return {key: rebuilt(value, (*where, key)) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return type(node)(rebuilt(value, (*where, index)) for index, value in enumerate(node))
        return node

    payload = rebuilt(state_dict, ())
    out.flush()
    by_key = {storage.key: storage for storage in storages.values()}
    return Checkpoint(path, "", entries, by_key, payload=payload)
