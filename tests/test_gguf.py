"""GGUF files, made by the gguf package's own GGUFWriter and held to its GGUFReader."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from paramctl.dtypes import BY_GGML_CODE, DTYPES
from paramctl.formats import read_checkpoint
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader

Q8_0 = gguf.GGMLQuantizationType.Q8_0
VOCAB = 300


def write_gguf(
    path: Path, tensors: dict[str, np.ndarray], quantized: dict[str, np.ndarray] | None = None
) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(2048)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(VOCAB)])
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    for name, array in (quantized or {}).items():
        writer.add_tensor(name, quantize(array, Q8_0), raw_dtype=Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def llama(tmp_path: Path) -> Path:
    """A tiny model with llama.cpp's names: F16 embeddings, F32 and Q8_0 projections."""
    rng = np.random.default_rng(0)
    return write_gguf(
        tmp_path / "tiny.gguf",
        {
            "token_embd.weight": rng.standard_normal((VOCAB, 64)).astype(np.float16),
            "blk.0.attn_q.weight": rng.standard_normal((64, 64)).astype(np.float32),
            "blk.0.attn_norm.weight": np.ones(64, np.float32),
            "output.weight": rng.standard_normal((VOCAB, 64)).astype(np.float32),
        },
        {"blk.0.attn_k.weight": rng.standard_normal((32, 64)).astype(np.float32)},
    )


def test_the_ggml_block_table_is_the_packages_own():
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        element = BY_GGML_CODE[int(qtype)]
        assert (element.block_size, element.itemsize) == (block, size), qtype.name
        if block > 1:
            assert element.name == qtype.name


def test_list_gives_what_gguf_reader_reads_with_shapes_in_pytorch_order(llama):
    checkpoint = read_checkpoint(llama)
    listed = {e.name: e for e in checkpoint.entries}
    reader = gguf.GGUFReader(llama)
    assert list(listed) == [t.name for t in reader.tensors]
    for tensor in reader.tensors:
        entry = listed[tensor.name]
        assert entry.shape == tuple(reversed(tensor.shape.tolist()))
        assert entry.nbytes == tensor.n_bytes and entry.numel == tensor.n_elements
        assert checkpoint.storage_of(entry).offset == tensor.data_offset
    assert listed["token_embd.weight"].shape == (VOCAB, 64)
    assert listed["blk.0.attn_k.weight"].dtype == "Q8_0"
    assert listed["blk.0.attn_k.weight"].nbytes == 32 * 64 // 32 * 34  # not numel * itemsize


def test_list_totals_quantized_types_with_bits_per_weight(llama, cli):
    result = cli("list", llama, "-f", "table")
    assert result.exit_code == 0, result.stderr
    assert "Q8_0 1 (2.12 KiB, 8.5 bits/weight)" in result.stdout
    assert "shapes: PyTorch order (GGUF's dimensions reversed)" in result.stdout
    document = json.loads(cli("list", llama, "-f", "json").stdout)
    assert document["totals"]["by_dtype"]["Q8_0"] == {
        "tensors": 1,
        "numel": 2048,
        "bytes": 2176,
        "bits_per_weight": 8.5,
    }
    assert document["shape_order"] == "PyTorch order (GGUF's dimensions reversed)"


def test_extras_summarize_the_vocabulary_unless_full(llama, cli):
    summary = cli("list", llama, "--extras", "-f", "tsv").stdout
    assert "general.architecture\tllama\tstr" in summary
    assert "llama.context_length\t2048\tint" in summary
    assert f"tokenizer.ggml.tokens\t[{VOCAB} strings]\tlist" in summary
    full = cli("list", llama, "--extras", "--full", "-f", "tsv").stdout
    assert f"'tok{VOCAB - 1}'" in full and "strings]" not in full


def test_values_of_float_and_quantized_tensors_equal_the_packages(llama):
    checkpoint = read_checkpoint(llama)
    reader = {t.name: t for t in gguf.GGUFReader(llama).tensors}
    with ValueReader(checkpoint) as values:
        for entry in checkpoint.entries:
            tensor = reader[entry.name]
            if DTYPES[entry.dtype].is_block_quantized:
                reference = dequantize(tensor.data, tensor.tensor_type)
                assert (
                    values.note(entry) == "dequantized Q8_0 values (8.5 bits per weight, through gguf.quants)"
                )
            else:
                reference = tensor.data
            np.testing.assert_array_equal(values.array(entry), reference.reshape(entry.shape))
            streamed = np.concatenate([np.array(c) for c in values.chunks(entry, 64)])
            np.testing.assert_array_equal(streamed, reference.reshape(-1))


def test_stats_and_show_of_a_quantized_tensor(llama, cli):
    stats = json.loads(cli("list", llama, "--stats", "-f", "json").stdout)
    row = next(t for t in stats["tensors"] if t["name"] == "blk.0.attn_k.weight")
    reference = dequantize(gguf.GGUFReader(llama).tensors[4].data, Q8_0)
    assert row["mean"] == pytest.approx(float(reference.mean()), rel=1e-5)
    shown = cli("show", llama, "blk.0.attn_k.weight", "-f", "text")
    assert shown.exit_code == 0, shown.stderr
    assert "dequantized Q8_0 values (8.5 bits per weight, through gguf.quants)" in shown.stdout


def test_a_type_gguf_cannot_dequantize_is_said_so(tmp_path, cli):
    writer = gguf.GGUFWriter(tmp_path / "q8k.gguf", "llama")
    raw = np.zeros((1, 292), np.uint8)  # one Q8_K block of 256 values: no dequantizer in gguf.quants
    writer.add_tensor("blk.0.ffn_up.weight", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert cli("list", tmp_path / "q8k.gguf").exit_code == 0
    shown = cli("show", tmp_path / "q8k.gguf", "blk.0.ffn_up.weight")
    assert shown.exit_code == 3
    assert "the gguf package offers no dequantization of Q8_K" in shown.stderr


def test_init_rewrites_a_float_tensor_and_keeps_every_other_byte(llama, tmp_path, cli):
    out = tmp_path / "out.gguf"
    result = cli(
        "init", llama, "-m", "blk.0.attn_q.weight", "-s", "normal(std=0.02)", "--seed", "1", "-o", out
    )
    assert result.exit_code == 0, result.stderr
    before, after = gguf.GGUFReader(llama), gguf.GGUFReader(out)
    assert list(before.fields) == list(after.fields)
    for name, field in before.fields.items():
        assert [p.tobytes() for p in field.parts] == [p.tobytes() for p in after.fields[name].parts], name
    for old, new in zip(before.tensors, after.tensors, strict=True):
        assert (old.name, old.tensor_type, old.data_offset) == (new.name, new.tensor_type, new.data_offset)
        if old.name != "blk.0.attn_q.weight":
            assert old.data.tobytes() == new.data.tobytes(), old.name
    changed = after.tensors[1].data
    assert abs(float(changed.std()) - 0.02) < 0.005
    target = before.tensors[1]
    old_bytes, new_bytes = llama.read_bytes(), out.read_bytes()
    span = slice(target.data_offset, target.data_offset + target.n_bytes)
    assert (
        old_bytes[: span.start] == new_bytes[: span.start]
        and old_bytes[span.stop :] == new_bytes[span.stop :]
    )


def test_a_scheme_on_a_quantized_tensor_is_refused(llama, tmp_path, cli):
    result = cli("init", llama, "-m", "blk.0.attn_k.weight", "-s", "zeros", "-o", tmp_path / "out.gguf")
    assert result.exit_code == 3
    assert "Q8_0 is block-quantized (8.5 bits per weight)" in result.stderr
    assert "does not quantize them back" in result.stderr
    assert not (tmp_path / "out.gguf").exists()


def _tensor_offset_position(path: Path, index: int) -> int:
    """Where tensor ``index``'s data offset (a uint64) sits in the header."""
    field = gguf.GGUFReader(path).tensors[index].field
    return field.offset + sum(part.nbytes for part in field.parts[:-1])


def _set_offset(path: Path, index: int, offset: int) -> None:
    data = bytearray(path.read_bytes())
    position = _tensor_offset_position(path, index)
    data[position : position + 8] = struct.pack("<Q", offset)
    path.write_bytes(bytes(data))


def _offset(path: Path, index: int) -> int:
    reader = gguf.GGUFReader(path)
    return reader.tensors[index].data_offset - reader.data_offset


def test_check_passes_a_clean_file_and_finds_nan(llama, tmp_path):
    assert check_checkpoint(llama).passed()
    nan = write_gguf(tmp_path / "nan.gguf", {"output.weight": np.array([[1.0, np.nan]], np.float32)})
    lines = [f.line() for f in check_checkpoint(nan).findings]
    assert lines == ["error: nan: output.weight: 1 NaN among 2 values"]


def test_check_finds_misaligned_overlapping_and_outside_tensors(llama):
    _set_offset(llama, 1, _offset(llama, 0) + 4)  # inside token_embd's data, not aligned
    lines = [f.line() for f in check_checkpoint(llama).findings]
    assert "error: alignment: blk.0.attn_q.weight: data offset 4 is not a multiple of 32" in lines
    assert any(
        line.startswith("error: overlap: blk.0.attn_q.weight: overlaps token_embd.weight") for line in lines
    )
    _set_offset(llama, 1, 1 << 30)
    lines = [f.line() for f in check_checkpoint(llama).findings]
    assert any(line.startswith("error: bounds: blk.0.attn_q.weight: bytes") for line in lines), lines


def test_a_tensor_past_the_end_is_a_damaged_file(llama, cli):
    _set_offset(llama, 1, 1 << 30)
    result = cli("list", llama)
    assert result.exit_code == 3
    assert "blk.0.attn_q.weight" in result.stderr and "run past the end" in result.stderr


def test_gguf_is_imported_only_for_a_gguf_file(samples, llama):
    code = (
        "import sys\n"
        "from paramctl.cli import app\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        app(['list', path])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print('gguf' in sys.modules, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(samples / "mlp.pt"), str(llama)], capture_output=True, text=True
    )
    assert result.stderr.strip().splitlines()[-2:] == ["False False", "True False"], result.stderr


def test_shared_by_value_finds_equal_copies(tmp_path, cli):
    weight = np.arange(64, dtype=np.float32).reshape(2, 32)
    path = write_gguf(tmp_path / "tied.gguf", {"token_embd.weight": weight, "output.weight": weight.copy()})
    result = cli("shared", path, "--by-value", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "token_embd.weight" in result.stdout and "output.weight" in result.stdout
    assert "no shared storages" in cli("shared", path).stdout + cli("shared", path).stderr


def test_converting_quantized_tensors_to_another_format_is_refused(llama, tmp_path):
    from paramctl.errors import UsageError
    from paramctl.formats import format_named

    checkpoint = read_checkpoint(llama)
    with open(tmp_path / "out.pt", "w+b") as out, pytest.raises(UsageError, match=r"block-quantized \(Q8_0"):
        format_named("torch-zip").write(checkpoint, out)
