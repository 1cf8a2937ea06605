"""Run ``paramctl ARGS...`` and SIGKILL it at its K-th write, fsync or rename.

``python kill_writer.py K ARGS...``: with K = 0 it runs to the end and prints how many such
calls it made, so a test can kill it at every one of them in turn.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from typing import Any

_lock = threading.Lock()
_calls = 0


def _counted(call: Any, kill_at: int) -> Any:
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _calls
        with _lock:
            _calls += 1
            if _calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return call(*args, **kwargs)

    return wrapper


def main() -> None:
    kill_at = int(sys.argv[1])
    for name in ("pwrite", "write", "fsync", "replace", "copy_file_range", "ftruncate"):
        if hasattr(os, name):
            setattr(os, name, _counted(getattr(os, name), kill_at))
    from paramctl.cli import app

    try:
        app(sys.argv[2:], prog_name="paramctl")
    finally:
        if kill_at == 0:
            sys.stderr.write(f"calls={_calls}\n")


if __name__ == "__main__":
    main()
