"""GGUF files written field by field: truncated at many points, counts and lengths no
file holds, types GGUF does not define, and a few the gguf package reads."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from corpus import Item
from corpus.zips import Writer

STRING, ARRAY, UINT32, FLOAT32 = 8, 9, 4, 6
F32 = 0


def text(value: str | bytes, length: int | None = None) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def key_value(key: str, kind: int, value: bytes) -> bytes:
    return text(key) + struct.pack("<I", kind) + value


def tensor_info(name: str, dims: tuple[int, ...], ggml: int = F32, offset: int = 0) -> bytes:
    return text(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml, offset)


def gguf(
    values: list[bytes],
    infos: list[bytes],
    data: bytes,
    *,
    tensors: int | None = None,
    kvs: int | None = None,
    version: int = 3,
    alignment: int = 32,
) -> bytes:
    """A GGUF v3 file: header, key-values, tensor infos, padding to ``alignment``, data."""
    head = b"GGUF" + struct.pack(
        "<IQQ", version, len(infos) if tensors is None else tensors, len(values) if kvs is None else kvs
    )
    body = head + b"".join(values) + b"".join(infos)
    padding = -len(body) % alignment if alignment else 0
    return body + bytes(padding) + data


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "gguf", ".gguf")
    arch = key_value("general.architecture", STRING, text("llama"))
    vocab = key_value(
        "tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 3) + text("a") + text("b") + text("c")
    )
    good = gguf([arch, vocab], [tensor_info("w", (4, 2)), tensor_info("b", (4,), offset=32)], bytes(48))
    valid = Writer(folder, "valid", ".gguf", prefix="valid-gguf")
    yield valid("a GGUF file with a vocabulary", good, 0)
    for cut in sorted({4, 8, 20, 24, 40, 60, 90, len(good) - 80, len(good) - 40, len(good) - 1}):
        yield write(f"cut to {cut} of {len(good)} bytes", good[:cut], 3)
    broken: list[tuple[str, bytes, str]] = [
        ("2**40 tensors counted", gguf([arch], [], b"", tensors=1 << 40), "too large"),
        ("2**60 key-values counted", gguf([arch], [], b"", kvs=1 << 60), "more than"),
        (
            "an array of 2**62 numbers",
            gguf([key_value("a", ARRAY, struct.pack("<IQ", UINT32, 1 << 62))], [], b""),
            "too large",
        ),
        (
            "an array of 2**62 strings",
            gguf([key_value("a", ARRAY, struct.pack("<IQ", STRING, 1 << 62) + text("x"))], [], b""),
            "too large",
        ),
        (
            "an array counting past its bytes",
            gguf([key_value("a", ARRAY, struct.pack("<IQ", UINT32, 1000) + bytes(8))], [], b""),
            "past the end",
        ),
        (
            "an array of arrays of 2**40 each",
            gguf(
                [key_value("a", ARRAY, struct.pack("<IQ", ARRAY, 2) + struct.pack("<IQ", UINT32, 1 << 40))],
                [],
                b"",
            ),
            "too large",
        ),
        ("a key of 2**63 bytes", gguf([text("k", 1 << 63)], [], b""), "past the end"),
        (
            "a string value of 2**40 bytes",
            gguf([key_value("k", STRING, text("v", 1 << 40))], [], b""),
            "past",
        ),
        ("a value type GGUF does not define", gguf([key_value("k", 99, bytes(8))], [], b""), "GGUF"),
        (
            "a key that is not UTF-8",
            gguf([text(b"\xff\xfe") + struct.pack("<I", UINT32) + bytes(4)], [], b""),
            "",
        ),
        (
            "an alignment of 0",
            gguf(
                [key_value("general.alignment", UINT32, bytes(4)), arch], [tensor_info("w", (2,))], bytes(8)
            ),
            "",
        ),
        ("an unknown GGML type", gguf([arch], [tensor_info("w", (2,), ggml=77)], bytes(32)), "GGML type"),
        (
            "dimensions of 2**40 x 2**40",
            gguf([arch], [tensor_info("w", (1 << 40, 1 << 40))], bytes(32)),
            "past",
        ),
        ("data past the end", gguf([arch], [tensor_info("w", (64,))], bytes(32)), "past"),
        ("an offset of 2**63", gguf([arch], [tensor_info("w", (2,), offset=1 << 63)], bytes(32)), "past"),
        (
            "2**32-1 dimensions",
            gguf([arch], [text("w") + struct.pack("<I", 0xFFFFFFFF)], b""),
            "past the end",
        ),
        (
            "one name for two tensors",
            gguf([arch], [tensor_info("w", (2,)), tensor_info("w", (2,), offset=32)], bytes(64)),
            "twice",
        ),
        ("version 99", gguf([arch], [], b"", version=99), "GGUF"),
    ]
    for name, content, message in broken:
        yield write(name, content, 3, message)
