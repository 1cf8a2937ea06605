"""``paramctl list --stats`` beside the plain-torch way of taking the same statistics.

Run: ``python bench/bench_stats.py [--repeat N]``. For the 1 GiB ``.pt`` and
``.safetensors`` (256 float32 tensors of 1024x1024), both run as separate processes,
alternating, in the same run:

- paramctl: ``paramctl list --stats FILE --format tsv``;
- plain torch: ``torch.load(FILE, mmap=True)`` (``safe_open`` for safetensors), then per
  tensor ``mean``, ``std``, ``min``, ``max``, ``norm`` and ``isfinite().all()``.

Prints a Markdown table: medians, their ratio (below 1.0: paramctl is faster), throughput
of paramctl in GiB/s, and each side's peak resident memory. The targets: a wall ratio of
0.4 or less, and a peak under the largest tensor + 128 MiB; the exit status says whether
both were met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from common import HEADER, PARAMCTL, PYTHON, big_files, compare

_BASELINE = """
import sys, torch
path = sys.argv[1]
if path.endswith(".safetensors"):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        tensors = ((k, f.get_tensor(k)) for k in f.keys())
        for _, t in tensors:
            t.mean(); t.std(); t.min(); t.max(); t.norm(); torch.isfinite(t).all()
else:
    for _, t in torch.load(path, mmap=True, weights_only=True).items():
        t.mean(); t.std(); t.min(); t.max(); t.norm(); torch.isfinite(t).all()
"""

# The same two jobs timed inside the process, from the first tensor to the last: the scan
# alone, without interpreter start, imports and reading the metadata.
_SCAN_OURS = """
import sys, time
from paramctl import read_checkpoint
from paramctl.stats import checkpoint_stats
checkpoint = read_checkpoint(sys.argv[1])
start = time.perf_counter()
checkpoint_stats(checkpoint, checkpoint.entries)
print(time.perf_counter() - start)
"""
_SCAN_BASELINE = (
    _BASELINE.replace("import sys, torch", "import sys, time, torch\nstart = None").replace(
        "t.mean();", "start = start or time.perf_counter(); t.mean();"
    )
    + "print(time.perf_counter() - start)\n"
)

LARGEST_TENSOR_MIB = 4  # 1024 x 1024 float32
PEAK_ALLOWANCE_MIB = 128
RATIO_TARGET = 0.4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = big_files()
    gib = {label: path.stat().st_size / 2**30 for label, path in files.items()}
    titles, rule = HEADER.split("\n")
    print(f"{titles} paramctl GiB/s |\n{rule}---|")
    results = []
    for label in ("1 GiB .pt", "1 GiB .safetensors"):
        path = str(files[label])
        ours = [*PARAMCTL, "list", "--stats", path, "--format", "tsv"]
        baseline = [PYTHON, "-c", _BASELINE, path]
        result = compare(label, ours, baseline, repeat=args.repeat)
        results.append(result)
        print(f"{result.row()} {gib[label] / result.ours_median:.2f} |", flush=True)
    print()
    print("| case | paramctl scan (median) | plain torch scan (median) | ratio | paramctl scan GiB/s |")
    print("|---|---|---|---|---|")
    for label in ("1 GiB .pt", "1 GiB .safetensors"):
        path = str(files[label])
        ours_s, base_s = [], []
        for _ in range(args.repeat):
            ours_s.append(_seconds([PYTHON, "-c", _SCAN_OURS, path]))
            base_s.append(_seconds([PYTHON, "-c", _SCAN_BASELINE, path]))
        ours_m, base_m = statistics.median(ours_s), statistics.median(base_s)
        ratio, speed = ours_m / base_m, gib[label] / ours_m
        print(f"| {label} | {ours_m:.3f} s | {base_m:.3f} s | {ratio:.3f} | {speed:.2f} |", flush=True)
    limit = LARGEST_TENSOR_MIB + PEAK_ALLOWANCE_MIB
    failed = False
    for result in results:
        peak = max(m.peak_mib for m in result.ours)
        verdict = "ok" if peak <= limit else "OVER"
        target = f"target <= {limit} MiB: {verdict}"
        pace = "ok" if result.ratio <= RATIO_TARGET else "OVER"
        print(
            f"{result.label}: ratio {result.ratio:.3f} (target <= {RATIO_TARGET}: {pace}), "
            f"peak {peak:.0f} MiB ({target})"
        )
        failed |= peak > limit or result.ratio > RATIO_TARGET
    sys.exit(1 if failed else 0)


def _seconds(command: list[str]) -> float:
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
