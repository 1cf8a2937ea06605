"""Sharded checkpoints at 2 GiB: ``paramctl list`` beside the plain way, and ``init`` of one
tensor beside copying the one shard it rewrites.

Run: ``python bench/bench_sharded.py [--repeat N]``. The checkpoints (512 float32 tensors of
1024x1024) are made once in ``bench/data``: 8 safetensors shards by ``huggingface_hub``'s
``save_torch_state_dict``, and a DCP directory saved by two ranks (``torchrun``, gloo).
The plain way: read the index and ``safe_open`` each shard; ``FileSystemReader(dir)
.read_metadata()`` and print each item.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from common import DATA, HEADER, PARAMCTL, PYTHON, compare, run_once

HF_DIR, DCP_DIR = DATA / "sharded-2g", DATA / "dcp-2g"
TENSORS = 512

_MAKE_HF = """
import sys, torch
from huggingface_hub import save_torch_state_dict
state = {f"layers.{i}.weight": torch.full((1024, 1024), float(i)) for i in range(TENSORS)}
save_torch_state_dict(state, sys.argv[1], max_shard_size=256 << 20)
""".replace("TENSORS", str(TENSORS))

_MAKE_DCP = """
import sys, torch, torch.distributed as dist, torch.distributed.checkpoint as dcp
from torch.distributed.tensor import DTensor, Shard, init_device_mesh
dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (2,))
rank = dist.get_rank()
state = {f"layers.{i}.weight": DTensor.from_local(torch.full((512, 1024), float(i + rank)), mesh, [Shard(0)])
         for i in range(TENSORS)}
dcp.save(state, checkpoint_id=sys.argv[1])
dist.destroy_process_group()
""".replace("TENSORS", str(TENSORS))

HF_LIST = (
    "import json, sys, pathlib\n"
    "from safetensors import safe_open\n"
    "root = pathlib.Path(sys.argv[1])\n"
    "index = json.loads((root / 'model.safetensors.index.json').read_text())['weight_map']\n"
    "for shard in sorted(set(index.values())):\n"
    "    with safe_open(root / shard, 'pt') as f:\n"
    "        for k in f.keys(): print(k, f.get_slice(k).get_shape(), f.get_slice(k).get_dtype(), shard)\n"
)
DCP_LIST = (
    "import sys\n"
    "from torch.distributed.checkpoint import FileSystemReader\n"
    "metadata = FileSystemReader(sys.argv[1]).read_metadata()\n"
    "for name, item in metadata.state_dict_metadata.items(): print(name, item)\n"
)
COPY_SHARD = (
    "import os, shutil, sys\n"
    "shutil.copyfile(sys.argv[1], sys.argv[2])\n"
    "fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd); os.close(fd)\n"
)


def make() -> None:
    DATA.mkdir(exist_ok=True)
    if not (HF_DIR / "model.safetensors.index.json").exists():
        HF_DIR.mkdir(exist_ok=True)
        subprocess.run([PYTHON, "-c", _MAKE_HF, str(HF_DIR)], check=True)
    if not (DCP_DIR / ".metadata").exists():
        with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
            script.write(_MAKE_DCP)
            script.flush()
            torchrun = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
            subprocess.run([*torchrun, script.name, str(DCP_DIR)], check=True, capture_output=True)


def bench_init(repeat: int) -> None:
    """``init`` of one tensor in place beside copying its shard with fsync."""
    work = DATA / "sharded-2g-work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(HF_DIR, work)
    shard = json.loads((work / "model.safetensors.index.json").read_text())["weight_map"]["layers.7.weight"]
    init = [
        *PARAMCTL,
        "init",
        str(work),
        "-m",
        "layers.7.weight",
        "-s",
        "zeros",
        "--in-place",
        "--format",
        "json",
    ]
    copy = [PYTHON, "-c", COPY_SHARD, str(work / shard), str(DATA / "shard-copy")]
    ours, theirs = [], []
    for _ in range(repeat + 1):
        ours.append(run_once(init).seconds)
        theirs.append(run_once(copy).seconds)
    report = json.loads(subprocess.run(init, capture_output=True, text=True, check=True).stdout)
    # init's scheme math runs in torch: its import is part of init's time, not of the copy's.
    imports = statistics.median(run_once([PYTHON, "-c", "import torch"]).seconds for _ in range(repeat))
    ours_median, theirs_median = statistics.median(ours[1:]), statistics.median(theirs[1:])
    print(
        "\n| init of one tensor (2 GiB, 8 shards) | paramctl init (median) | copy one shard + fsync | ratio |"
    )
    print("|---|---|---|---|")
    print(f"| {shard} | {ours_median:.3f} s | {theirs_median:.3f} s | {ours_median / theirs_median:.2f} |")
    beside = theirs_median + imports
    print(
        f"| the copy plus `import torch` ({imports:.3f} s) | | {beside:.3f} s | {ours_median / beside:.2f} |"
    )
    written = report["bytes_written"]
    print(
        f"\nfiles rewritten: {report['files_written']}; bytes written: {written:,} "
        f"(the shard is {(work / shard).stat().st_size:,} bytes; the checkpoint "
        f"{sum(p.stat().st_size for p in work.iterdir()):,})"
    )
    shutil.rmtree(work)
    os.unlink(DATA / "shard-copy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["list", "init"], default=None)
    args = parser.parse_args()
    make()
    if args.only == "init":
        bench_init(args.repeat)
        return
    print(HEADER.replace("plain torch", "plain way"))
    cases = [("2 GiB, 8 safetensors shards", HF_DIR, HF_LIST), ("2 GiB DCP, 2 ranks", DCP_DIR, DCP_LIST)]
    for label, path, baseline in cases:
        result = compare(
            label,
            [*PARAMCTL, "list", str(path), "--format", "tsv"],
            [PYTHON, "-c", baseline, str(path)],
            repeat=args.repeat,
        )
        print(result.row(), flush=True)
    if args.only is None:
        bench_init(args.repeat)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(made and measured in {time.perf_counter() - start:.0f} s)")
