"""``paramctl check`` on a sharded checkpoint: every problem of the index against its shards.

>>> import tempfile, json, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> index = {"weight_map": {"w": "gone.safetensors"}}
>>> _ = (folder / "model.safetensors.index.json").write_text(json.dumps(index))
>>> [finding.line() for finding in verify_index(folder).findings]  # doctest: +ELLIPSIS
['error: index: ...: shard gone.safetensors does not exist']
"""

from __future__ import annotations

from pathlib import Path

from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Verification
from paramctl.formats.hf_sharded.layout import candidates
from paramctl.formats.hf_sharded.read import inspect


def verify_index(path: Path) -> Verification:
    """The index checks as findings: every problem, not only the first."""
    result = Verification(checked=["index"], record_kind="indexed tensor", covers_metadata=True)
    (index_path,) = candidates(path) if path.is_dir() else [path]
    try:
        index, _ = inspect(index_path)
    except CorruptCheckpoint as exc:
        result.add("error", "index", "", str(exc))
        return result
    result.records = len(index.weight_map)
    for problem in index.problems:
        result.add("error", "index", "", str(problem))
    return result
