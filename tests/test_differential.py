"""The audit never disagrees with torch: for every corpus item paramctl reads,
``torch.load(weights_only=True)`` (``safe_open`` for safetensors) loads the same names,
shapes and dtypes; where torch cannot load an item, ``paramctl check`` does not pass it.
Other formats are read by their own libraries (``torch.jit.load``, ``torch.export.load``,
DCP's ``FileSystemReader``, ``GGUFReader``, ``numpy.load``; names and shapes); MXNet, which
no longer installs, has none.

torch runs in a separate process, which the corpus canary watches: the weights-only loader
lacks some opcodes of protocols 3 to 5, and for a file it refuses only for that reason the
process falls back to ``weights_only=False`` (on files paramctl passed as plain data), so a
payload that slipped past paramctl would run there, and be caught.
"""

from __future__ import annotations

import json
import subprocess
import sys

import corpus
import pytest
from typer.testing import CliRunner

from paramctl.cli import app

_LOADER = r"""
import json, os, resource, sys, warnings, zipfile
warnings.simplefilter("ignore")
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, resource.RLIM_INFINITY))
import torch

def flatten(node, path, out):
    if isinstance(node, torch.Tensor):
        out[".".join(map(str, path))] = [list(node.shape), str(node.dtype).removeprefix("torch.")]
    elif isinstance(node, dict):
        for key, value in node.items():
            flatten(value, (*path, key), out)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            flatten(value, (*path, index), out)
    return out

# Opcodes and globals torch's weights-only loader does not implement, though they are data.
GAPS = ("Unsupported operand", "Unsupported global", "was not an allowed global")

def shapes(named):
    # Formats torch does not read: names and shapes, from their own libraries.
    return {name: [list(shape), None] for name, shape in named}

def other_format(path):
    import os
    if os.path.isdir(path):  # torch.distributed.checkpoint's own reader of .metadata
        from torch.distributed.checkpoint import FileSystemReader
        items = FileSystemReader(path).read_metadata().state_dict_metadata
        return shapes((k, v.size) for k, v in items.items() if hasattr(v, "size")), "dcp"
    if path.endswith(".index.json"):  # every shard, by safe_open
        from safetensors import safe_open
        found = {}
        for shard in sorted(set(json.load(open(path))["weight_map"].values())):
            with safe_open(os.path.join(os.path.dirname(path), shard), "pt") as file:
                found.update(shapes((k, file.get_slice(k).get_shape()) for k in file.keys()))
        return found, "safe_open"
    if path.endswith(".gguf"):
        from gguf import GGUFReader
        return shapes((t.name, reversed(t.shape.tolist())) for t in GGUFReader(path).tensors), "GGUFReader"
    if path.endswith(".npy"):
        import numpy as np
        return shapes([(os.path.basename(path)[:-4], np.load(path, mmap_mode="r").shape)]), "numpy.load"
    if path.endswith(".npz"):
        import numpy as np
        with np.load(path) as archive:
            return shapes((k, archive[k].shape) for k in archive.files), "numpy.load"
    if path.endswith(".pt2"):
        program = torch.export.load(path)
        return shapes((k, v.shape) for k, v in program.state_dict.items()), "torch.export.load"
    return None

def load(path):
    other = other_format(path)
    if other is not None:
        return other
    if path.endswith(".params"):
        return None, "no reader"  # MXNet is retired and does not install beside numpy 2
    names = zipfile.ZipFile(path).namelist() if zipfile.is_zipfile(path) else []
    if any(name.endswith("/constants.pkl") for name in names):
        module = torch.jit.load(path, map_location="cpu")
        return flatten(dict(module.state_dict()), (), {}), "torch.jit.load"
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(path, "pt") as file:
            found = {}
            for key in file.keys():
                dtype = str(file.get_tensor(key).dtype).removeprefix("torch.")
                found[key] = [list(file.get_slice(key).get_shape()), dtype]
            # save_model's record of the names it dropped as another's duplicates, which
            # load_model puts back: {dropped: kept}.
            for dropped, kept in (file.metadata() or {}).items():
                if dropped not in found and kept in found:
                    found[dropped] = found[kept]
            return found, "safe_open"
    try:
        return flatten(torch.load(path, weights_only=True, map_location="cpu"), (), {}), "weights_only=True"
    except Exception as exc:
        if not any(gap in str(exc) for gap in GAPS):
            raise
    return flatten(torch.load(path, weights_only=False, map_location="cpu"), (), {}), "weights_only=False"

for path in sys.argv[1:]:
    try:
        tensors, how = load(path)
        print(json.dumps({"path": path, "tensors": tensors, "how": how}))
    except Exception as exc:
        print(json.dumps({"path": path, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}))
"""


@pytest.fixture(scope="module")
def accepted():
    """(item, paramctl's names -> [shape, dtype]) for every item paramctl lists."""
    _, items = corpus.build()
    runner = CliRunner()
    found = []
    for item in items:
        result = runner.invoke(app, ["list", str(item.path), "--all", "-f", "json"])
        if result.exit_code == 0:
            rows = json.loads(result.stdout)["tensors"]
            found.append((item, {row["name"]: [row["shape"], row["dtype"]] for row in rows}))
    return found


@pytest.fixture(scope="module")
def torch_view(accepted):
    folder, _ = corpus.build()
    paths = [str(item.path) for item, _ in accepted]
    process = subprocess.run(
        [sys.executable, "-c", _LOADER, *paths], capture_output=True, text=True, timeout=600, cwd=folder
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert not (folder / corpus.CANARY).exists(), "a payload ran inside torch.load"
    return {line["path"]: line for line in map(json.loads, process.stdout.splitlines())}


def test_every_accepted_item_loads_the_same_in_torch(accepted, torch_view):
    assert len(accepted) >= 30
    disagreements = []
    for item, names in accepted:
        loaded = torch_view[str(item.path)]
        if "error" in loaded:
            continue  # the next test holds these to check
        if loaded["tensors"] is None:  # a format no library here reads
            continue
        if any(dtype is None for _, dtype in loaded["tensors"].values()):  # names and shapes only
            names = {name: [shape, None] for name, (shape, _) in names.items()}
        if loaded["tensors"] != names:
            disagreements.append(f"{item!r} ({loaded['how']}): paramctl {names}, torch {loaded['tensors']}")
    assert not disagreements, "\n".join(disagreements)


def test_items_torch_cannot_load_do_not_pass_check(accepted, torch_view):
    runner = CliRunner()
    passed = []
    for item, _ in accepted:
        if "error" in torch_view[str(item.path)]:
            result = runner.invoke(app, ["check", str(item.path), "--no-values"])
            if result.exit_code == 0:
                passed.append(f"{item!r}: torch says {torch_view[str(item.path)]['error']}")
    assert not passed, "\n".join(passed)


def test_most_accepted_items_load_with_the_weights_only_loader(accepted, torch_view):
    hows = [torch_view[str(item.path)].get("how") for item, _ in accepted]
    print("reference readers:", {how: hows.count(how) for how in sorted(set(map(str, hows)))})
    assert hows.count("weights_only=True") + hows.count("safe_open") >= len(hows) // 2, hows
