"""Names and paths with terminal escapes, line breaks and bidirectional controls: read, and
shown escaped on stdout and stderr alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from corpus import Item

# A colour escape, a screen clear, a carriage return, a line break, a tab, C1's CSI, a NUL,
# and the right-to-left override, which makes "model<U+202E>tp.exe" read "modelexe.pt".
HOSTILE_NAMES = [
    "red\x1b[31m",
    "clear\x1b[2J",
    "cr\rover",
    "line\nbreak",
    "tab\tbed",
    "csi\x9b2J",
    "nul\x00byte",
    "rlo\u202egpj.exe",
]
# Characters that must never reach a terminal raw.
RAW = ["\x1b", "\r", "\x9b", "\x00", "\u202e", "\t"]


def items(folder: Path, canary: str) -> Iterator[Item]:
    tensors = {name: torch.ones(2) for name in HOSTILE_NAMES}
    path = folder / "names-001.pt"
    torch.save(tensors, path)
    yield Item("tensor names with escapes (torch zip)", "names", path, 0)
    path = folder / "names-002.safetensors"
    save_file({name: torch.ones(2) for name in HOSTILE_NAMES if "\x00" not in name}, path)
    yield Item("tensor names with escapes (safetensors)", "names", path, 0)
    path = folder / "names-003-\x1b[2J\u202egnp.pt"
    path.write_bytes(b"PK\x03\x04 not a zip")
    yield Item("a path with escapes, damaged", "names", path, 3)
    path = folder / "names-004-\x1b]0;title\x07.pt"
    torch.save({"w\x1b[5m": torch.ones(2)}, path)
    yield Item("a path with an OSC escape, and a name", "names", path, 0)
