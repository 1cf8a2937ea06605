"""The limits (paramctl/formats/_limits.py): each one refuses what passes it, passes what
real checkpoints need, and is the number the README gives."""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import re
import struct
import time
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from corpus.zips import members, tensor_pickle
from corpus.ziptools import Member, build_zip

from paramctl import read_checkpoint
from paramctl.errors import CorruptCheckpoint, LimitExceeded, UnsafePickle
from paramctl.formats._allowlist import PLAIN_GLOBALS, PickledRecord, restricted_load
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle import ALLOWED_GLOBALS
from paramctl.formats._pickle import restricted_load as torch_load
from paramctl.formats._pickle_scan import memo_index_bits, scan_pickle
from paramctl.formats._pickle_tree import check_tree
from paramctl.formats.dcp._metadata import MAX_METADATA_BYTES
from paramctl.formats.safetensors.read import parse_header

README = Path(__file__).resolve().parent.parent / "README.md"


def hundred_thousand_tensors(path: Path) -> Path:
    """A zip laid out as torch.save lays out a state_dict of 100,000 small tensors."""

    class Storage:
        def __init__(self, key: str) -> None:
            self.key = key

    class Tensor:
        def __init__(self, key: str) -> None:
            self.key = key

        def __reduce__(self) -> object:
            hooks: collections.OrderedDict[str, object] = collections.OrderedDict()
            return (torch._utils._rebuild_tensor_v2, (Storage(self.key), 0, (2,), (1,), False, hooks))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("storage", torch.FloatStorage, obj.key, "cpu", 2) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    state = collections.OrderedDict((f"layers.{i}.weight", Tensor(str(i))) for i in range(100_000))
    Pickler(buffer, protocol=2).dump(state)
    records = members(buffer.getvalue(), {str(i): bytes(8) for i in range(100_000)})
    path.write_bytes(build_zip(records))
    return path


@pytest.mark.slow
def test_a_state_dict_of_100_000_tensors_passes_quickly(tmp_path):
    path = hundred_thousand_tensors(tmp_path / "100k.pt")
    started = time.process_time()
    checkpoint = read_checkpoint(path)
    seconds = time.process_time() - started
    assert len(checkpoint.entries) == 100_000 and checkpoint.entries[-1].name == "layers.99999.weight"
    assert seconds < 30, f"{seconds:.1f} s of CPU"  # a few on an ordinary machine


def dcp_metadata(tensors: int) -> bytes:
    """A torch.distributed.checkpoint ``.metadata`` of ``tensors`` one-chunk tensors, as
    torch pickles it (without writing their data)."""
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import (
        ChunkStorageMetadata,
        Metadata,
        MetadataIndex,
        TensorProperties,
        TensorStorageMetadata,
    )

    items, where = {}, {}
    for i in range(tensors):
        name, size = f"model.layers.{i}.weight", torch.Size([4, 2])
        chunk = ChunkStorageMetadata(torch.Size([0, 0]), size)
        items[name] = TensorStorageMetadata(TensorProperties(dtype=torch.float32), size, [chunk])
        where[MetadataIndex(name, torch.Size([0, 0]))] = _StorageInfo("__0_0.distcp", i * 1000, 1000)
    return pickle.dumps(Metadata(items, storage_data=where))


@pytest.mark.slow
def test_a_dcp_metadata_of_100_000_tensors_passes_quickly():
    from paramctl.formats.dcp._metadata import load_metadata

    data = dcp_metadata(100_000)
    started = time.process_time()
    metadata = load_metadata(data)
    seconds = time.process_time() - started
    assert len(metadata.get("state_dict_metadata")) == 100_000
    assert seconds < 30, f"{seconds:.1f} s of CPU for {len(data):,} bytes"


def test_memo_indices_stop_at_the_bound_by_either_path():
    bound = 1 << memo_index_bits(300)
    for index in (bound - 1, bound):
        binput = b"\x80\x02Nr" + struct.pack("<I", index) + b"."  # the fast path
        put = b"Np%d\n." % index  # the text protocol, the slow path
        for data in (binput, put):
            if index < bound:
                assert scan_pickle(data) == len(data)
            else:
                with pytest.raises(LimitExceeded, match="memo index"):
                    scan_pickle(data)
    assert memo_index_bits(10**9) == (LIMITS.memo_entries - 1).bit_length()


def test_a_pickle_past_the_size_limit_is_not_read_to_its_end():
    small = Limits(pickle_bytes=1000)
    data = b"\x80\x02(" + b"N" * 2000 + b"l."
    with pytest.raises(LimitExceeded, match="at most 1,000 bytes"):
        scan_pickle(data, limits=small)
    assert scan_pickle(data) == len(data)


def test_shared_entries_count_once_per_path():
    node: list[object] = ["leaf"]
    for _ in range(21):
        node = [node, node]
    check_tree(node)  # 6,291,455 paths: under ten million
    with pytest.raises(LimitExceeded, match="paths"):
        check_tree([node, node])
    deep: list[object] = []
    for _ in range(LIMITS.depth + 1):
        deep = [deep]
    with pytest.raises(LimitExceeded, match="nested"):
        check_tree(deep)
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(CorruptCheckpoint, match="cycle"):
        check_tree(cycle)


@pytest.mark.parametrize(
    ("call", "argument"),
    [(bytearray, 1 << 42), (set, 1 << 42), (complex, "1e5"), (collections.OrderedDict, "ab"), (slice, "a")],
)
def test_allowlisted_constructors_check_their_arguments_first(call, argument):
    class Call:
        def __reduce__(self) -> object:
            return (call, (argument,))

    with pytest.raises(CorruptCheckpoint, match=f"calls .*{call.__name__}"):
        torch_load(pickle.dumps(Call(), protocol=2))


def test_the_constructor_budget_is_per_file():
    items = list(range(1000))
    small = Limits(constructor_items=2500)
    data = pickle.dumps([set(items), set(items)], protocol=2)
    assert len(torch_load(data, limits=small)) == 2
    with pytest.raises(LimitExceeded, match="elements handed to"):
        torch_load(pickle.dumps([set(items), set(items), set(items)], protocol=2), limits=small)


@pytest.mark.parametrize(
    "target", ["torch._utils._rebuild_tensor_v2", "torch.float32", "collections.OrderedDict"]
)
def test_build_cannot_change_a_stand_in(target):
    module, _, name = target.rpartition(".")
    state = b"N}X\x05\x00\x00\x00dtypeX\x05\x00\x00\x00int64s\x86b"  # BUILD with (None, {...})
    data = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + state + b"."
    before = repr(ALLOWED_GLOBALS[target])
    with pytest.raises(CorruptCheckpoint):
        torch_load(data)
    assert repr(ALLOWED_GLOBALS[target]) == before


@dataclasses.dataclass
class Chunk:
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]


def test_another_reader_builds_its_records_with_the_same_machinery():
    # What DCP's .metadata needs: dataclasses built by NEWOBJ and BUILD, fields typed.
    class ChunkRecord(PickledRecord):
        fields: ClassVar[dict[str, type]] = {"offsets": tuple, "sizes": tuple}

    table = {**PLAIN_GLOBALS, f"{__name__}.Chunk": ChunkRecord}
    loaded, _ = restricted_load(pickle.dumps([Chunk((0,), (4,))], protocol=2), table)
    assert loaded[0].sizes == (4,)
    with pytest.raises(CorruptCheckpoint, match="field 'sizes' as str"):
        restricted_load(pickle.dumps(Chunk((0,), "4"), protocol=2), table)  # type: ignore[arg-type]
    with pytest.raises(UnsafePickle):
        restricted_load(pickle.dumps(Chunk((0,), (os.getpid,)), protocol=2), table)  # type: ignore[arg-type]


def test_safetensors_headers_are_counted_before_they_are_parsed():
    small = Limits(json_values=100, tensors=3)
    with pytest.raises(LimitExceeded, match="JSON values"):
        parse_header(b'{"a": [' + b"0," * 200 + b"0]}", small)
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    with pytest.raises(LimitExceeded, match="tensors"):
        parse_header(("{" + ",".join(f'"t{i}":{entry}' for i in range(4)) + "}").encode(), small)
    escaped = entry.replace("data_offsets", "data\\u005foffsets")  # the same key, spelled otherwise
    with pytest.raises(LimitExceeded, match="JSON objects"):
        parse_header(("{" + ",".join(f'"t{i}":{escaped}' for i in range(6)) + "}").encode(), small)


def test_value_commands_refuse_a_view_repeating_few_bytes_as_terabytes(cli, tmp_path):
    path = tmp_path / "view.pt"
    path.write_bytes(build_zip(members(tensor_pickle((1 << 40,), (0,), 1), {"0": bytes(4)})))
    assert cli("list", path).exit_code == 0
    for command in (
        ["show", path, "w"],
        ["list", path, "--stats"],
        ["init", path, "-s", "zeros", "-o", tmp_path / "o.pt"],
    ):
        result = cli(*command)
        assert result.exit_code == 3 and "too large or too complex" in result.stderr, result.stderr


def test_a_file_cut_short_after_reading_fails_instead_of_faulting(tmp_path):
    from paramctl.values import ValueReader

    path = tmp_path / "m.pt"
    torch.save({"w": torch.ones(1 << 16)}, path)
    checkpoint = read_checkpoint(path)
    storage = checkpoint.storages["0"]
    os.truncate(path, storage.offset + 100)  # another process cuts it
    with ValueReader(checkpoint) as values, pytest.raises(CorruptCheckpoint, match="cut short"):
        values.tensor(checkpoint.entries[0])


def test_a_zip_bomb_record_is_refused_before_inflating(tmp_path):
    from corpus.ziptools import DEFLATED, bomb_size, deflate_bomb

    size = (2 << 30) + 1000
    bomb = Member(
        "archive/data/0", b"", DEFLATED, packed=deflate_bomb(size), declared_size=bomb_size(size), crc=0
    )
    path = tmp_path / "bomb.pt"
    path.write_bytes(build_zip([*members(tensor_pickle((4,), (1,), bomb_size(size) // 4)), bomb]))
    with pytest.raises(CorruptCheckpoint, match="zip bomb"):
        read_checkpoint(path)


def test_the_readme_gives_the_limits_as_they_are():
    section = README.read_text().split("## Limits", 1)[1].split("\n## ", 1)[0]
    for figure in (
        f"{LIMITS.pickle_bytes >> 20} MiB",
        f"{LIMITS.paths:,} paths",
        f"{LIMITS.depth} levels",
        f"{LIMITS.constructor_items:,} per file",
        f"{LIMITS.tensors:,}",
        f"{LIMITS.header_bytes // 1_000_000} MB",
        f"{LIMITS.json_values:,} JSON values",
        f"{LIMITS.integer_bytes:,} bytes",
        f"{LIMITS.repeated_value_bytes >> 30} GiB more",
        f"{LIMITS.metadata_elements:,} array elements",
        f"{MAX_METADATA_BYTES >> 20} MiB",
        f"2{''.join('⁰¹²³⁴⁵⁶⁷⁸⁹'[int(d)] for d in str((LIMITS.memo_entries - 1).bit_length()))}",
    ):
        assert figure in section, figure
    assert re.search(r"\| 3 \|.*limits", README.read_text())
