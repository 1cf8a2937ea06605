"""``paramctl list`` of a 1 GiB ``.pt`` on an HTTP server beside downloading it and running
``torch.load(mmap=True)`` (the plain way to see what a remote checkpoint holds).

Run: ``python bench/bench_remote.py [--repeat N]`` (nginx must be installed; it is started
on loopback with its own configuration, serving ``bench/data``). The file is the common
1 GiB ``.pt`` (256 float32 tensors of 1024x1024). paramctl runs with ``--no-cache``, so
every run fetches what it needs; the plain way streams the file to a temporary file, then
loads it. Prints medians, their ratio, peak RSS, and what the server's access log says
each paramctl run fetched. Loopback is the fastest network there is: over a real one the
download's share (1 GiB against a few hundred KiB) only grows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import HEADER, PARAMCTL, PYTHON, big_files, compare, run_once

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.remote.servers import find_nginx, start_nginx

_DOWNLOAD_AND_LOAD = """
import shutil, sys, tempfile, urllib.request
import torch
with tempfile.NamedTemporaryFile(suffix=".pt") as local:
    with urllib.request.urlopen(sys.argv[1]) as response:
        shutil.copyfileobj(response, local, 8 << 20)
    local.flush()
    state = torch.load(local.name, weights_only=True, mmap=True)
    for name, tensor in state.items():
        print(name, list(tensor.shape), tensor.dtype)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    binary = find_nginx()
    if binary is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    path = big_files()["1 GiB .pt"]
    with tempfile.TemporaryDirectory() as root:
        process, server = start_nginx(binary, Path(root), www=path.parent.resolve())
        try:
            url = server.url(path.name)
            ours = [*PARAMCTL, "list", "--no-cache", "-f", "tsv", url]
            server.mark()
            run_once(ours)
            served = server.requests()
            print(f"{path.name}: {path.stat().st_size / (1 << 30):.2f} GiB at {url}")
            fetched = sum(request.body_bytes for request in served)
            print(f"one paramctl list, from nginx's access log: {len(served)} requests, {fetched:,} bytes\n")
            print(HEADER)
            baseline = [PYTHON, "-c", _DOWNLOAD_AND_LOAD, url]
            print(
                compare("list of a remote 1 GiB `.pt`", ours, baseline, repeat=args.repeat).row(), flush=True
            )
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
