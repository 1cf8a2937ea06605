"""A corpus of hostile and broken checkpoints, built at test time by small generators.

:func:`build` writes every item into a folder and returns them; each :class:`Item` says what
``paramctl list`` must answer (its exit code and a fragment of its one-line error), and what
the value commands and ``check`` must answer where that differs. The classes (``kind``):

- ``code``: pickles that run code by every route (GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE,
  NEWOBJ(_EX), BUILD with __setstate__, EXT1/2/4, PERSID/BINPERSID, behind the memo), in
  every protocol that has the route, in data.pkl and in each of a legacy file's pickles;
- ``globals``: globals that look harmless (getattr, eval, torch.load, numpy.load, ...);
- ``amplification``: memo fan-out, zip bombs, huge constructor sizes, memo indices, lengths
  and shapes, deep nesting, cycles;
- ``zip``, ``legacy``, ``safetensors``: broken files of every kind;
- ``dcp``, ``sharded``, ``gguf``, ``numpy``, ``mxnet``, ``jit``: broken checkpoints of the
  other formats (DCP ``.metadata`` and sharded indexes are directories' files; the code,
  globals and amplification classes hold DCP ``.metadata`` pickles too);
- ``names``: names and paths with terminal escapes and bidirectional controls;
- ``valid``: files that must be read (and agree with torch), among them some close to the
  broken ones.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CANARY = "CANARY"


@dataclass
class Item:
    """One corpus file and what paramctl must answer about it."""

    name: str
    kind: str
    path: Path
    # paramctl list's exit code, and a fragment of its error line (0: none).
    code: int
    message: str = ""
    # What the value commands (show, list --stats, check's values) answer on a readable
    # file: 0, or 3 when its values cannot be read (compressed, big-endian, a huge view).
    values: int = 0
    # Whether check finds a problem in a readable file (a CRC mismatch, a newer version).
    check_fails: bool = False
    # init's exit code on a readable file.
    init: int = 0
    # The suffix of init's output (None: the input's; "" for a directory of several files).
    output_suffix: str | None = None

    def __repr__(self) -> str:
        return f"<{self.kind}: {self.name}>"


@functools.lru_cache(maxsize=1)
def build() -> tuple[Path, tuple[Item, ...]]:
    """The corpus, written once per process into a temporary folder removed at exit."""
    from corpus import dcp, gguf, jit, legacy, mxnet, names, numpy_files, safetensors, sharded, zips

    folder = Path(tempfile.mkdtemp(prefix="paramctl-corpus-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    canary = str(folder / CANARY)
    items: list[Item] = []
    for module in (zips, legacy, safetensors, names, dcp, sharded, gguf, numpy_files, mxnet, jit):
        items.extend(module.items(folder, canary))
    seen = [item.path for item in items]
    assert len(seen) == len(set(seen)), "two corpus items share a file"
    return folder, tuple(items)
