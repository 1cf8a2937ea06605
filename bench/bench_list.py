"""``paramctl list`` beside the plain-torch way of listing a checkpoint.

Run: ``python bench/bench_list.py [--repeat N]``. Prints a markdown table: medians of
wall time, their ratio (paramctl over torch; below 1 is faster) and each side's peak RSS;
then the time of ``paramctl --help``.
"""

from __future__ import annotations

import argparse
import statistics

from common import HEADER, PARAMCTL, PYTHON, big_files, compare, run_once

TORCH_LIST = (
    "import sys, torch\n"
    "sd = torch.load(sys.argv[1], weights_only=True, mmap=True)\n"
    "for k, v in sd.items(): print(k, tuple(v.shape), v.dtype)\n"
)
SAFETENSORS_LIST = (
    "import sys\n"
    "from safetensors import safe_open\n"
    "with safe_open(sys.argv[1], 'pt') as f:\n"
    "    for k in f.keys(): print(k, f.get_slice(k).get_shape(), f.get_slice(k).get_dtype())\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(HEADER)
    for label, path in big_files().items():
        baseline = SAFETENSORS_LIST if path.suffix == ".safetensors" else TORCH_LIST
        result = compare(
            label,
            [*PARAMCTL, "list", str(path), "--format", "tsv"],
            [PYTHON, "-c", baseline, str(path)],
            repeat=args.repeat,
        )
        print(result.row(), flush=True)
    helps = [run_once([*PARAMCTL, "--help"]).seconds for _ in range(args.repeat * 2)]
    print(f"\n`paramctl --help`: median {statistics.median(helps):.3f} s over {len(helps)} runs")


if __name__ == "__main__":
    main()
