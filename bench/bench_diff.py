"""``paramctl diff`` beside the plain-torch way of comparing two checkpoints.

Run: ``python bench/bench_diff.py [--repeat N]``. Two 1 GiB ``.pt`` files (256 float32
tensors of 1024x1024) that differ in half the tensors (every ``*.proj`` has one element in
a thousand changed), both ways run as separate processes, alternating, in the same run:

- paramctl: ``paramctl diff A B --format tsv`` (exit 1: they differ);
- plain torch: ``torch.load`` of both, then per tensor ``torch.equal`` and, where they
  differ, ``(a - b).abs().max()``.

Prints a Markdown table: medians, their ratio (below 1.0: paramctl is faster) and each
side's peak resident memory. The targets: a wall ratio of 1.0 or less, and a peak under
the largest tensor x 2 + 128 MiB; the exit status says whether both were met.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import DATA, HEADER, PARAMCTL, PYTHON, Comparison, Measurement, big_files

_BASELINE = """
import sys, torch
a = torch.load(sys.argv[1], weights_only=True)
b = torch.load(sys.argv[2], weights_only=True)
differ = 0
for name in a.keys() | b.keys():
    if name in a and name in b and a[name].shape == b[name].shape:
        if not torch.equal(a[name], b[name]):
            (a[name] - b[name]).abs().max().item()
            differ += 1
assert differ == 128, differ
"""

# Half the tensors of big.pt, each with one element in a thousand changed.
_MAKE_CHANGED = """
import sys, torch
tensors = torch.load(sys.argv[1], weights_only=True, mmap=True)
changed = {}
for name, tensor in tensors.items():
    if name.endswith(".proj"):
        tensor = tensor.clone()
        tensor.view(-1)[::1000] += 1e-3
    changed[name] = tensor
torch.save(changed, sys.argv[2])
"""

LARGEST_TENSOR_MIB = 4  # 1024 x 1024 float32
PEAK_ALLOWANCE_MIB = 128
RATIO_TARGET = 1.0


def changed_file(original: Path) -> Path:
    """``big.pt`` with half its tensors changed; made once, then reused."""
    path = DATA / "big-half-changed.pt"
    if not path.exists():
        subprocess.run([PYTHON, "-c", _MAKE_CHANGED, str(original), str(path)], check=True)
    return path


def run_once(command: Sequence[str], expected: int) -> Measurement:
    """:func:`common.run_once` for a command whose exit status is ``expected`` (diff's 1)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != expected:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}")
    return Measurement(elapsed, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    original = big_files()["1 GiB .pt"]
    changed = changed_file(original)
    ours = [*PARAMCTL, "diff", str(original), str(changed), "--format", "tsv"]
    baseline = [PYTHON, "-c", _BASELINE, str(original), str(changed)]
    run_once(ours, 1), run_once(baseline, 0)  # warm the page cache and the imports
    result = Comparison("two 1 GiB .pt, half the tensors changed", [], [])
    for _ in range(args.repeat):
        result.ours.append(run_once(ours, 1))
        result.baseline.append(run_once(baseline, 0))
    print(HEADER)
    print(result.row())
    limit = 2 * LARGEST_TENSOR_MIB + PEAK_ALLOWANCE_MIB
    peak = max(m.peak_mib for m in result.ours)
    pace = "ok" if result.ratio <= RATIO_TARGET else "OVER"
    verdict = "ok" if peak <= limit else "OVER"
    print(
        f"ratio {result.ratio:.3f} (target <= {RATIO_TARGET}: {pace}), "
        f"peak {peak:.0f} MiB (target <= {limit} MiB: {verdict})"
    )
    sys.exit(0 if result.ratio <= RATIO_TARGET and peak <= limit else 1)


if __name__ == "__main__":
    main()
