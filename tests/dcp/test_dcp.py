"""torch.distributed.checkpoint directories, written by torch from one process and two ranks."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from corpus.dcp import big_endian, item_archives, real_checkpoint, replace_item
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from paramctl import read_checkpoint
from paramctl.errors import CorruptCheckpoint, ExitCode, UnsafePickle, UsageError
from paramctl.formats.dcp.edit import crc_positions
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader


def torch_metadata(directory: Path):
    return dcp.FileSystemReader(directory).read_metadata()


def torch_load(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor as ``dcp.load`` gives it, into tensors of the saved shapes."""
    state = {
        name: torch.empty(tuple(item.size), dtype=item.properties.dtype)
        for name, item in torch_metadata(directory).state_dict_metadata.items()
        if isinstance(item, TensorStorageMetadata)
    }
    nested: dict[str, dict[str, torch.Tensor]] = {"model": {}}
    for name, tensor in state.items():
        nested["model"][name.removeprefix("model.")] = tensor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(nested, checkpoint_id=directory)
    return {f"model.{name}": tensor for name, tensor in nested["model"].items()}


def test_names_shapes_and_dtypes_are_what_torch_reports(dcp_dir):
    checkpoint = read_checkpoint(dcp_dir)
    assert checkpoint.format == "dcp"
    expected = {
        name: (tuple(item.size), str(item.properties.dtype).removeprefix("torch."))
        for name, item in torch_metadata(dcp_dir).state_dict_metadata.items()
        if isinstance(item, TensorStorageMetadata)
    }
    assert {e.name: (e.shape, e.dtype) for e in checkpoint.entries} == expected


def test_two_ranks_split_each_parameter_in_two_chunks(two_ranks):
    checkpoint = read_checkpoint(two_ranks)
    weight = checkpoint.entry("model.layer.weight")
    assert [(c.offsets, c.sizes) for c in weight.chunks] == [((0, 0), (4, 6)), ((4, 0), (4, 6))]
    files = {checkpoint.storages[c.storage_key].file.name for c in weight.chunks}
    assert files == {"__0_0.distcp", "__1_0.distcp"}
    assert checkpoint.entry("model.scale").chunks == ()


def test_values_are_what_dcp_load_gives(dcp_dir):
    checkpoint = read_checkpoint(dcp_dir)
    loaded = torch_load(dcp_dir)
    with ValueReader(checkpoint) as values:
        for entry in checkpoint.entries:
            assert torch.equal(values.tensor(entry), loaded[entry.name]), entry.name
            streamed = torch.cat([torch.from_numpy(c.copy()) for c in values.chunks(entry, 5)])
            assert torch.equal(streamed, loaded[entry.name].float().reshape(-1)), entry.name
            raw = b"".join(bytes(c) for c in values.raw_chunks(entry, 8))
            assert raw == loaded[entry.name].reshape(-1).view(torch.uint8).numpy().tobytes(), entry.name


def test_a_slice_reads_only_the_chunks_it_needs(two_ranks):
    checkpoint = read_checkpoint(two_ranks)
    weight = checkpoint.entry("model.layer.weight")
    second = checkpoint.storages[weight.chunks[1].storage_key]
    with open(second.file, "r+b") as file:  # spoil the chunk the slice does not need
        file.seek(second.offset)
        file.write(b"\xff" * second.nbytes)
    loaded = torch_load(Path(str(two_ranks)))
    with ValueReader(checkpoint) as values:
        assert (
            values.array(weight, (slice(1, 3), 2)).tolist() == loaded["model.layer.weight"][1:3, 2].tolist()
        )


def test_list_shows_chunks_and_extras(two_ranks, cli):
    result = cli("list", two_ranks, "--chunks", "--extras", "--format", "json")
    assert result.exit_code == 0, result.stderr
    listing = json.loads(result.stdout)
    chunks = [
        (row["file"], row["offsets"], row["sizes"])
        for row in listing["chunks"]
        if row["name"] == "model.layer.bias"
    ]
    assert chunks == [("__0_0.distcp", [0], [4]), ("__1_0.distcp", [4], [4])]
    assert {(x["name"], x["value"]) for x in listing["extras"]} == {("step", 7), ("note", "b'hello'")}


def test_a_rank_file_alone_names_its_directory(two_ranks, cli):
    with pytest.raises(
        UsageError, match=f"one rank's shard of the torch.distributed.checkpoint directory {two_ranks}"
    ):
        read_checkpoint(two_ranks / "__0_0.distcp")
    result = cli("list", two_ranks / "__0_0.distcp")
    assert result.exit_code == ExitCode.USAGE and str(two_ranks) in result.stderr


def test_check_and_shared_read_the_chunks(two_ranks, cli):
    assert check_checkpoint(two_ranks).passed()
    result = cli("shared", two_ranks, "--by-value")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("selection", ["model.layer.weight", "model.embed.weight", "model.scale"])
def test_init_writes_a_directory_dcp_load_reads_back(dcp_dir, tmp_path, cli, selection):
    if selection == "model.scale" and dcp_dir.name == "one":
        pytest.skip("the one-process save has no scale")
    before = torch_load(dcp_dir)
    out = tmp_path / "out"
    result = cli("init", dcp_dir, "-m", selection, "-s", "ones", "-o", out, "--format", "json")
    assert result.exit_code == 0, result.stderr
    after = torch_load(out)
    assert after.keys() == before.keys()
    for name, tensor in after.items():
        expected = torch.ones_like(tensor) if name == selection else before[name]
        assert torch.equal(tensor, expected), name
    assert (out / ".metadata").read_bytes() == (dcp_dir / ".metadata").read_bytes()
    assert check_checkpoint(out).passed()
    _assert_crcs_hold(out)


def test_unselected_chunks_are_byte_identical(two_ranks, cli):
    original = {p.name: p.read_bytes() for p in two_ranks.iterdir()}
    checkpoint = read_checkpoint(two_ranks)
    result = cli("init", two_ranks, "-m", "model.layer.bias", "-s", "zeros", "--in-place")
    assert result.exit_code == 0, result.stderr
    bias = {c.storage_key for c in checkpoint.entry("model.layer.bias").chunks}
    for key, storage in checkpoint.storages.items():
        if storage.chunked or key in bias:
            continue
        data = storage.file.read_bytes()[storage.offset : storage.offset + storage.nbytes]
        assert data == original[storage.file.name][storage.offset : storage.offset + storage.nbytes], key


def _assert_crcs_hold(directory: Path) -> None:
    import zlib

    checkpoint = read_checkpoint(directory)
    for key, storage in checkpoint.storages.items():
        if storage.chunked:
            continue
        with open(storage.file, "rb") as file:
            data = storage.file.read_bytes()[storage.offset : storage.offset + storage.nbytes]
            for position in crc_positions(file, key):
                file.seek(position)
                assert int.from_bytes(file.read(4), "little") == zlib.crc32(data), key


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {_Payload.marker}",))


def test_a_hostile_metadata_is_refused_and_never_runs(two_ranks, tmp_path, cli):
    marker = tmp_path / "ran"
    _Payload.marker = marker
    (two_ranks / ".metadata").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UnsafePickle, match="system"):
        read_checkpoint(two_ranks)
    for command in ("list", "check", "show"):
        result = cli(command, two_ranks, *(["model.layer.weight"] if command == "show" else []))
        assert result.exit_code == ExitCode.UNSAFE, (command, result.stderr)
    assert not marker.exists()


def test_an_item_is_refused_as_a_pt_file_of_its_bytes_is(tmp_path, cli):
    """Each item is a torch.save zip inside a rank file. One that zip readers could read two
    ways (two records of one name, a local header that disagrees with the directory, bytes
    before or after it), or that torch.load refuses (no version record), is refused as the
    same bytes are in a .pt file, and the error names the item."""
    template = tmp_path / "template"
    real_checkpoint(template)
    for number, (name, archive, code, message) in enumerate(item_archives(template, str(tmp_path / "ran"))):
        alone = tmp_path / f"{number}.pt"
        alone.write_bytes(archive)
        directory = tmp_path / f"dcp-{number}"
        shutil.copytree(template, directory)
        replace_item(directory, "b", archive)
        as_file, as_item = cli("list", alone), cli("list", directory)
        assert as_item.exit_code == as_file.exit_code == code, (name, as_item.stderr, as_file.stderr)
        assert message in as_item.stderr, (name, as_item.stderr)
        if code:
            assert "__0_0.distcp@" in as_item.stderr, (name, as_item.stderr)
    assert not (tmp_path / "ran").exists()


def test_items_saved_on_a_big_endian_machine_read_as_dcp_load_gives(tmp_path):
    """torch.load swaps each item's bytes from the byte order its archive records; paramctl
    reads the directory in that order, and refuses one whose items disagree."""
    template = tmp_path / "template"
    real_checkpoint(template)
    big = tmp_path / "big"
    shutil.copytree(template, big)
    for name in ("w", "b"):
        replace_item(big, name, big_endian(template, name))
    checkpoint = read_checkpoint(big)
    assert checkpoint.byteorder == "big"
    expected = {"w": torch.empty(2, 4), "b": torch.empty(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(expected, checkpoint_id=big)
    with ValueReader(checkpoint) as values:
        for name, tensor in expected.items():
            assert torch.equal(values.tensor(checkpoint.entry(name)), tensor), name
    mixed = tmp_path / "mixed"
    shutil.copytree(template, mixed)
    replace_item(mixed, "b", big_endian(template, "b"))
    with pytest.raises(CorruptCheckpoint, match="both byte orders"):
        read_checkpoint(mixed)
