"""Every command on every corpus item (tests/corpus/): a documented exit code and one line
of error, nothing executed, the input unchanged, no temporary left, quick and small.

The items run in this process through the CLI (one import of torch for all); a sample of
the heaviest also runs as real processes, whose time and peak memory are measured.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import corpus
import pytest
from corpus.names import RAW
from typer.testing import CliRunner

from paramctl.atomic import TEMP_SUFFIX
from paramctl.cli import app

DOCUMENTED = {0, 1, 2, 3, 4, 5}
SECONDS = 5.0
MEMORY = 512 << 20
COMMANDS = ["list", "stats", "shared", "show", "check", "init"]


def arguments(command: str, item: corpus.Item, out: Path) -> list[str]:
    path = str(item.path)
    return {
        "list": ["list", path, "--all", "-f", "json"],
        "stats": ["list", path, "--stats", "-f", "tsv"],
        "shared": ["shared", path, "-f", "tsv"],
        "show": ["show", path, first_name(item) or "w", "--all"],
        "check": ["check", path, "-f", "json"],
        "init": ["init", path, "--all", "-s", "zeros", "-o", str(out)],
    }[command]


def output_suffix(item: corpus.Item) -> str:
    return item.path.suffix if item.output_suffix is None else item.output_suffix


_NAMES: dict[Path, str] = {}


def first_name(item: corpus.Item) -> str | None:
    if item.code != 0:
        return None
    if item.path not in _NAMES:
        from paramctl import read_checkpoint

        _NAMES[item.path] = read_checkpoint(item.path).entries[0].path.__str__()
        _NAMES[item.path] = ".".join(map(str, read_checkpoint(item.path).entries[0].path))
    return _NAMES[item.path]


def expected(command: str, item: corpus.Item) -> set[int]:
    """The exit codes a command may give on an item."""
    if item.code != 0:
        if command == "check":  # damage is reported as findings; a file it cannot place is not
            if item.code == 4:  # code in a pickle stops check too; a path leaving the folder is a finding
                return {4} if item.kind in ("code", "globals") else {1, 4}
            return {1, 3}
        return {item.code}
    if command in ("stats", "show"):
        return {item.values}
    if command == "check":
        return {1} if item.check_fails else {0}
    if command == "init":
        return {item.init}
    return {0}


def digest(path: Path) -> object:
    """Size, change time, inode and the first and last MiB's hash: any write changes it
    (of each file, for a directory)."""
    if path.is_dir():
        return sorted((child.name, digest(child)) for child in path.iterdir())
    status = path.stat()
    with open(path, "rb") as file:
        head = file.read(1 << 20)
        file.seek(max(0, status.st_size - (1 << 20)))
        tail = file.read()
    return status.st_size, status.st_mtime_ns, status.st_ino, hashlib.sha256(head + tail).hexdigest()


def leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def problems_of(command: str, item: corpus.Item, result, seconds: float, folder: Path) -> list[str]:
    found = []
    allowed = expected(command, item)
    if result.exit_code not in allowed or result.exit_code not in DOCUMENTED:
        found.append(f"exit {result.exit_code}, expected {sorted(allowed)}: {result.stderr.strip()[:300]}")
    lines = result.stderr.strip().splitlines()
    if result.exit_code not in (0, 1) and (len(lines) != 1 or not lines[0].startswith("paramctl: error: ")):
        found.append(f"stderr is not one error line: {result.stderr[:300]!r}")
    if "Traceback" in result.stderr + result.stdout:
        found.append("a traceback")
    if command == "list" and item.code and item.message and item.message not in result.stderr:
        found.append(f"the error does not say {item.message!r}: {result.stderr.strip()[:300]}")
    if (folder / corpus.CANARY).exists():
        found.append("THE CANARY EXISTS: a payload ran")
    if seconds > SECONDS:
        found.append(f"took {seconds:.1f} s")
    return found


@pytest.fixture(scope="module")
def built():
    return corpus.build()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_on_every_item(built, command, tmp_path):
    folder, items = built
    runner = CliRunner()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    failures = []
    for index, item in enumerate(items):
        before = digest(item.path)
        out = tmp_path / f"out-{index}{output_suffix(item)}"
        started = time.perf_counter()
        result = runner.invoke(app, arguments(command, item, out))
        seconds = time.perf_counter() - started
        found = problems_of(command, item, result, seconds, folder)
        if digest(item.path) != before:
            found.append("the input changed")
        if leftovers(folder, tmp_path):
            found.append(f"temporaries left: {leftovers(folder, tmp_path)}")
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - baseline
        if grown > MEMORY:
            found.append(f"peak memory grew by {grown >> 20} MiB")
        failures += [f"{item!r} {command}: {problem}" for problem in found]
        (folder / corpus.CANARY).unlink(missing_ok=True)
    assert not failures, "\n".join(failures)


def test_the_corpus_covers_every_class(built):
    _, items = built
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    assert set(counts) == {
        "code",
        "globals",
        "amplification",
        "zip",
        "legacy",
        "safetensors",
        "names",
        "valid",
        "dcp",
        "sharded",
        "gguf",
        "numpy",
        "mxnet",
        "jit",
    }
    assert min(counts.values()) >= 4, counts
    print("corpus items per class:", dict(sorted(counts.items())), "total", len(items))
    for where in ("data.pkl", ".metadata"):
        assert routes_in(items, where) >= ROUTE_NAMES, where


ROUTE_NAMES = {
    "GLOBAL",
    "STACK_GLOBAL",
    "INST",
    "OBJ",
    "NEWOBJ",
    "NEWOBJ_EX",
    "BUILD",
    "EXT1",
    "EXT2",
    "EXT4",
    "BINPERSID",
    "PERSID",
    "MEMO",
}


def routes_in(items: tuple[corpus.Item, ...], where: str) -> set[str]:
    """The routes to code the corpus has in ``where`` (data.pkl, a DCP .metadata)."""
    return {item.name.split(", ")[1] for item in items if item.kind == "code" and item.name.startswith(where)}


# The heaviest items, run as real processes: time and peak memory of the whole command.
HEAVY = ("fan-out", "bomb", "LONG_BINPUT", "200 times", "million", "2**40", "nested", "declaring")
# Runs the command line and then reports the process's own peak resident memory: a child's
# ru_maxrss would include the parent's, inherited at fork, while VmHWM belongs to the
# process image after exec.
_MEASURED = """
import sys
from paramctl.cli import app
try:
    app(sys.argv[1:], prog_name="paramctl")
finally:
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print("peak", int(peak.split()[1]) << 10, file=sys.stderr)
"""


def run_measured(arguments: list[str]) -> tuple[int, float, int]:
    """Exit code, seconds and peak resident bytes of one paramctl process."""
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", _MEASURED, *arguments], capture_output=True, text=True, timeout=60
    )
    seconds = time.perf_counter() - started
    peak = int(process.stderr.rsplit("peak ", 1)[1])
    return process.returncode, seconds, peak


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")
def test_the_heaviest_items_stay_quick_and_small_in_real_processes(built):
    folder, items = built
    heavy = [item for item in items if any(word in item.name for word in HEAVY)]
    assert len(heavy) >= 10
    failures = []
    for item in heavy:
        for command in (["list", str(item.path)], ["check", str(item.path), "--no-values"]):
            code, seconds, peak = run_measured(command)
            if code not in DOCUMENTED or seconds > SECONDS or peak > MEMORY:
                failures.append(f"{item!r} {command[0]}: exit {code}, {seconds:.1f} s, {peak >> 20} MiB")
    assert not (folder / corpus.CANARY).exists()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("output", ["table", "tsv", "csv", "names", "jsonl"])
def test_names_and_paths_with_escapes_reach_no_terminal_raw(built, output):
    _, items = built
    runner = CliRunner()
    for item in (item for item in items if item.kind == "names"):
        result = runner.invoke(app, ["list", str(item.path), "-f", output])
        assert result.exit_code == item.code, result.stderr
        text = result.stdout + result.stderr
        raw = [repr(char) for char in RAW if char in text and not (char == "\t" and output == "tsv")]
        assert not raw, f"{item!r} -f {output}: raw {raw} in {text[:300]!r}"
        if output == "tsv" and item.code == 0:
            rows = result.stdout.splitlines()
            assert len({row.count("\t") for row in rows}) == 1, rows


_RUNNER = r"""
import io, json, os, pickle, sys, time, zipfile
sys.path.insert(0, sys.argv[1])
from corpus.pickles import register_extensions
register_extensions()
canary = sys.argv[2]

class Loader(pickle.Unpickler):
    # As torch's legacy loader: a ('module', class, ...) id stands for its class.
    def persistent_load(self, pid):
        return pid[1] if isinstance(pid, tuple) and pid and pid[0] == "module" else pid

ran = {}
for path in sys.argv[3:]:
    if os.path.exists(canary):
        os.unlink(canary)
    if os.path.isdir(path):  # a DCP directory: its .metadata
        streams = [open(os.path.join(path, ".metadata"), "rb")]
    elif zipfile.is_zipfile(path):
        streams = [io.BytesIO(zipfile.ZipFile(path).read("archive/data.pkl"))]
    else:
        file = open(path, "rb")
        streams = [file] * 5
    try:
        for stream in streams:
            Loader(stream).load()
    except Exception:
        pass
    for _ in range(100):  # subprocess.Popen touches it a moment later
        if os.path.exists(canary):
            break
        time.sleep(0.02)
    ran[path] = os.path.exists(canary)
print(json.dumps(ran))
"""


@pytest.mark.slow
def test_the_payloads_really_run_in_a_plain_unpickler(built):
    # The corpus is only worth its refusals if its payloads run: here each is unpickled by
    # pickle itself, in another process, with the extension codes registered.
    folder, items = built
    inert = ("builtins.__import__", "nt.system", "magic number")  # a name only; Windows; not a checkpoint
    hostile = [
        item
        for item in items
        if item.kind in ("code", "globals") and not any(word in item.name for word in inert)
    ]
    canary = folder / corpus.CANARY  # what every payload creates
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            str(Path(__file__).parent),
            str(canary),
            *(str(item.path) for item in hostile),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )
    canary.unlink(missing_ok=True)
    ran = json.loads(process.stdout.splitlines()[-1])
    idle = [repr(item) for item in hostile if not ran[str(item.path)]]
    assert len(hostile) >= 40 and not idle, idle
