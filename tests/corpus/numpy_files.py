""".npy files and .npz archives broken every way numpy's reader allows (headers that are
no literal, shapes of booleans or negative sizes, sizes the file cannot hold), object
arrays whose elements are pickles, and bombs and duplicates among an .npz's members."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from corpus import Item
from corpus.zips import Writer
from corpus.ziptools import DEFLATED, Member, build_zip, deflate_bomb


def npy(header: str, data: bytes = b"", *, version: bytes = b"\x01\x00", length: int | None = None) -> bytes:
    """A .npy file: magic, version, the header padded to 64 bytes, the data."""
    raw = header.encode("latin1")
    raw += b" " * (-(len(raw) + 11) % 64) + b"\n"
    size = struct.pack("<H", len(raw) if length is None else length)
    return b"\x93NUMPY" + version + size + raw + data


def saved(array: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    np.save(out, array, **options)  # type: ignore[arg-type]
    return out.getvalue()


def header(descr: str = "'<f4'", shape: str = "(2,)", fortran: str = "False") -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "numpy", ".npy")
    good = saved(np.arange(6, dtype=np.float32).reshape(2, 3))
    for cut in (4, 9, 20, 60, len(good) - 1):
        yield write(f"an .npy cut to {cut} of {len(good)} bytes", good[:cut], 3)
    broken = [
        (
            "a header that calls a function",
            npy(header(descr=f"__import__('os').system('touch {canary}')")),
            "",
        ),
        ("a header that is no dict", npy("[1, 2]"), ""),
        ("True in a shape", npy(header(shape="(True, 2)"), bytes(8)), "shape"),
        ("a negative size", npy(header(shape="(-2,)"), bytes(8)), "shape"),
        ("a shape of 2**40 x 2**40", npy(header(shape="(1099511627776, 1099511627776)"), bytes(8)), "fewer"),
        ("a float in a shape", npy(header(shape="(2.0,)"), bytes(8)), ""),
        ("a header length past the file", npy(header(), bytes(8), length=60000), ""),
        ("a header of 60 kB", npy(header(descr="'<f4'" + " " * 60000), bytes(8)), ""),
        ("format version 9", npy(header(), bytes(8), version=b"\x09\x00"), "version"),
        ("a record dtype", npy(header(descr="[('a', '<f4')]"), bytes(8)), "dtype"),
        ("an unknown dtype", npy(header(descr="'<q9'"), bytes(8)), ""),
        ("a header nested 10,000 deep", npy(header(shape="(" * 10000 + ")" * 10000)), ""),
    ]
    for name, content, message in broken:
        yield write(name, content, 3, message)

    class Evil:
        def __reduce__(self) -> object:
            import os

            return (os.system, (f"touch {canary}",))

    yield write("an object array of pickles", saved(np.array([Evil()], dtype=object), allow_pickle=True), 4)
    valid = Writer(folder, "valid", ".npy", prefix="valid-numpy")
    yield valid("an .npy of float32", good, 0)
    yield valid(
        "a big-endian Fortran-ordered .npy", saved(np.asfortranarray(np.ones((2, 3), ">f8"))), 0, init=3
    )
    yield from _archives(folder, canary, good)


def _archives(folder: Path, canary: str, good: bytes) -> Iterator[Item]:
    write = Writer(folder, "numpy", ".npz")
    bias = saved(np.ones(3, np.float32))
    yield write(
        "an .npz member that is a 3.1 GB bomb",
        build_zip(
            [
                Member("w.npy", good),
                Member(
                    "b.npy",
                    b"",
                    DEFLATED,
                    packed=deflate_bomb(3_100_000_000),
                    declared_size=3_100_000_000,
                    crc=0,
                ),
            ]
        ),
        3,
        "zip bomb",
    )
    yield write(
        "two .npz members of one name",
        build_zip([Member("w.npy", good), Member("w.npy", bias)]),
        3,
        "two records",
    )
    yield write(
        "an .npz member that is not .npy", build_zip([Member("w.npy", good), Member("x.txt", b"x")]), 3
    )
    yield write("an .npz member with a broken header", build_zip([Member("w.npy", good[:20])]), 3)
    archive = build_zip([Member("w.npy", good), Member("b.npy", bias)])
    for cut in (30, len(archive) // 2, len(archive) - 10):
        yield write(f"an .npz cut to {cut} of {len(archive)} bytes", archive[:cut], 3)
    valid = Writer(folder, "valid", ".npz", prefix="valid-numpy")
    yield valid("an .npz of two arrays", archive, 0)
    out = io.BytesIO()
    np.savez_compressed(out, w=np.arange(6.0), b=np.ones(2, np.int64))
    yield valid("an np.savez_compressed archive", out.getvalue(), 0, init=2)
