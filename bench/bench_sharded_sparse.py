"""An "internet-scale" sharded checkpoint without the disk: 1,000 safetensors shards of
100 tensors each, about 1 TB, whose data regions are holes (sparse files, real headers).

Run: ``python bench/bench_sharded_sparse.py``. ``list``, ``shared`` and ``check --no-values``
read only the index and the headers; each command's wall time, peak RSS and the bytes it
read (``rchar`` of ``/proc/self/io``: every byte asked of the kernel) are printed.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time

from common import DATA, PYTHON

ROOT = DATA / "sparse-1tb"
SHARDS, PER_SHARD = 1_000, 100
SHAPE = (2560, 1024)  # float32: 10 MiB a tensor, 1 GiB a shard
TENSOR_BYTES = SHAPE[0] * SHAPE[1] * 4

_MEASURED = (
    "import sys\n"
    "from paramctl.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:], prog_name='paramctl')\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "io = dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())\n"
    "sys.stderr.write(f\"rchar={io['rchar']}\\n\")\n"
)


def make() -> None:
    if (ROOT / "model.safetensors.index.json").exists():
        return
    ROOT.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for shard in range(SHARDS):
        name = f"model-{shard + 1:05d}-of-{SHARDS:05d}.safetensors"
        header = {}
        for position in range(PER_SHARD):
            tensor = f"layers.{shard}.block.{position}.weight"
            start = position * TENSOR_BYTES
            header[tensor] = {
                "dtype": "F32",
                "shape": list(SHAPE),
                "data_offsets": [start, start + TENSOR_BYTES],
            }
            weight_map[tensor] = name
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(ROOT / name, "wb") as file:
            file.write(struct.pack("<Q", len(text)) + text)
            file.truncate(8 + len(text) + PER_SHARD * TENSOR_BYTES)  # the data: a hole
    total = SHARDS * PER_SHARD * TENSOR_BYTES
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (ROOT / "model.safetensors.index.json").write_text(json.dumps(index))


def measure(*args: str) -> tuple[float, float, int]:
    """Wall time, peak RSS (MiB) and bytes read of ``paramctl ARGS``."""
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, open(DATA / "sparse-io.txt", "w+") as err:
        process = subprocess.Popen([PYTHON, "-c", _MEASURED, *args], stdout=sink, stderr=err)
        _, _, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        err.seek(0)
        read = int(err.read().rsplit("rchar=", 1)[1].split()[0])
    return elapsed, usage.ru_maxrss / 1024, read


def main() -> None:
    make()
    apparent = sum(p.stat().st_size for p in ROOT.iterdir())
    on_disk = sum(p.stat().st_blocks * 512 for p in ROOT.iterdir())
    print(
        f"{SHARDS:,} shards, {SHARDS * PER_SHARD:,} tensors: {apparent / 1e12:.2f} TB apparent, "
        f"{on_disk / 1e6:.1f} MB on disk\n"
    )
    print("| command | wall time | peak RSS | bytes read | of the checkpoint |\n|---|---|---|---|---|")
    for command in (["list"], ["shared"], ["check", "--no-values"]):
        seconds, peak, read = measure(*command, str(ROOT), "--format", "tsv")
        share = read / apparent
        name = " ".join(command)
        print(f"| paramctl {name} | {seconds:.2f} s | {peak:.0f} MiB | {read / 1e6:.1f} MB | {share:.1e} |")


if __name__ == "__main__":
    main()
