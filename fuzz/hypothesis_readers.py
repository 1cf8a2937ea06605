"""The suite's property tests (tests/test_parsers_property.py) with many examples, for nights:
no atheris needed.

    python fuzz/hypothesis_readers.py              # 200,000 examples per property
    python fuzz/hypothesis_readers.py 20000        # fewer
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "200000"
    environment = {**os.environ, "PARAMCTL_FUZZ_EXAMPLES": examples}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_parsers_property.py",
    ]
    return subprocess.call(command, cwd=ROOT, env=environment)


if __name__ == "__main__":
    sys.exit(main())
