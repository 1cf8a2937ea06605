"""Benchmark ``paramctl init`` against the plain-torch way of doing the same job.

On the 1 GiB ``.pt`` and ``.safetensors`` files (256 float32 tensors of 1024x1024, half of
them ``*.weight``), every ``*.weight`` is reinitialized with ``normal`` and a new file is
written. The plain way loads the checkpoint (``torch.load(mmap=True)`` or
``safetensors.torch.load_file``), calls ``nn.init.normal_`` on each weight, saves with
``torch.save`` / ``save_file`` and fsyncs the output, so both are equally durable
(paramctl fsyncs its file and directory before the rename).

Run: ``python bench/bench_init.py [--repeat 5]``; prints a markdown table. Targets: wall
time at most 1.1x the baseline; peak memory at most the largest tensor + 256 MiB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, HEADER, PARAMCTL, PYTHON, big_files, compare

LARGEST_TENSOR_MIB = 4
MEMORY_ALLOWANCE_MIB = 256

BASELINE_PT = """
import os, sys, torch
source, target, suffix = sys.argv[1], sys.argv[2], sys.argv[3]
state = torch.load(source, mmap=True, weights_only=True)
for name, tensor in state.items():
    if name.endswith(suffix):
        torch.nn.init.normal_(tensor)
torch.save(state, target)
with open(target, "rb+") as out:
    os.fsync(out.fileno())
"""

BASELINE_SAFETENSORS = """
import os, sys, torch
from safetensors.torch import load_file, save_file
source, target, suffix = sys.argv[1], sys.argv[2], sys.argv[3]
state = load_file(source)
for name, tensor in state.items():
    if name.endswith(suffix):
        torch.nn.init.normal_(tensor)
save_file(state, target)
with open(target, "rb+") as out:
    os.fsync(out.fileno())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = big_files()
    cases = [
        ("1 GiB .pt", files["1 GiB .pt"], ".pt", BASELINE_PT, ".weight"),
        ("1 GiB .safetensors", files["1 GiB .safetensors"], ".safetensors", BASELINE_SAFETENSORS, ".weight"),
        # Not a target: the cost per tensor, every one of 10,000 small tensors.
        ("10,000 tensors .pt", files["10,000 tensors .pt"], ".pt", BASELINE_PT, ""),
    ]
    print(HEADER)
    results = []
    for label, source, suffix, baseline, names in cases:
        ours_out, base_out = DATA / f"init-ours{suffix}", DATA / f"init-torch{suffix}"
        selection = ["-m", f"*{names}"]
        ours = [
            *PARAMCTL,
            "init",
            str(source),
            *selection,
            "-s",
            "normal",
            "--seed",
            "0",
            "-o",
            str(ours_out),
        ]
        for quiet, name in ((False, "report"), (True, "--quiet")):
            command = [*ours, "-q"] if quiet else ours
            result = compare(
                f"init normal, {label} ({name})",
                command,
                [PYTHON, "-c", baseline, str(source), str(base_out), names],
                args.repeat,
            )
            print(result.row(), flush=True)
            results.append(result)
        ours_out.unlink(missing_ok=True)
        base_out.unlink(missing_ok=True)
    limit = LARGEST_TENSOR_MIB + MEMORY_ALLOWANCE_MIB
    print()
    for result in results[:4]:
        peak = max(m.peak_mib for m in result.ours)
        verdict = "ok" if result.ratio <= 1.1 and peak <= limit else "MISSED"
        print(
            f"- {result.label}: time ratio {result.ratio:.3f} (target ≤ 1.1), "
            f"peak {peak:.0f} MiB (target ≤ {limit}): {verdict}"
        )


if __name__ == "__main__":
    main()
