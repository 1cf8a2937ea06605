"""Writes that lose nothing: through symlinks, never onto devices, FIFOs or directories, keeping
permissions and owner, one writer at a time, and whole or not at all however they end
(SIGKILL at any moment, a full disk, RLIMIT_FSIZE, a full standard output)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from paramctl.atomic import TEMP_SUFFIX
from paramctl.errors import ExitCode
from paramctl.targets import WriteLock

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def paramctl(*args: object, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paramctl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


def temporaries(*folders: Path) -> list[Path]:
    return [path for folder in folders for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX)]


def one_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paramctl: error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_in_place_through_a_symlink_replaces_the_file_it_points_to(cli, tmp_path, save_pt):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    target = save_pt({"w": torch.ones(3)}, name="real/m.pt")
    link = link_dir / "m.pt"
    link.symlink_to(os.path.relpath(target, link_dir))
    inode = target.stat().st_ino
    result = cli("init", link, "--in-place", "-s", "zeros", "-q")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link_dir)
    assert target.stat().st_ino != inode  # replaced by a rename, in its own directory
    assert torch.equal(torch.load(target)["w"], torch.zeros(3))
    assert not temporaries(real_dir, link_dir)


def test_output_onto_a_symlink_writes_through_it(cli, tmp_path, save_pt):
    source = save_pt({"w": torch.ones(2)})
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "out.pt"
    target.write_bytes(b"old")
    link = tmp_path / "out.pt"
    link.symlink_to(target)
    assert cli("init", source, "-s", "zeros", "-o", link, "-q").exit_code == 0
    assert link.is_symlink() and torch.equal(torch.load(target)["w"], torch.zeros(2))


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_output_onto_anything_but_a_regular_file_is_refused(cli, tmp_path, save_pt, kind):
    source = save_pt({"w": torch.ones(2)})
    if kind == "device":
        target = Path("/dev/null")
    elif kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    else:
        target = tmp_path / "folder"
        target.mkdir()
    before = os.stat(target)
    result = cli("init", source, "-s", "zeros", "-o", target)
    assert result.exit_code == ExitCode.IO
    assert "not a regular file" in one_error(result.stderr)
    after = os.stat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert not temporaries(tmp_path)


def test_a_symlink_to_a_device_is_refused_too(cli, tmp_path, save_pt):
    link = tmp_path / "full.pt"
    link.symlink_to("/dev/full")
    result = cli("init", save_pt({"w": torch.ones(2)}), "-s", "zeros", "-o", link)
    assert result.exit_code == ExitCode.IO and "character device" in result.stderr
    assert link.is_symlink()


def test_permissions_and_owner_are_kept(cli, tmp_path, save_pt):
    path = save_pt({"w": torch.ones(2)})
    path.chmod(0o640)
    owner = (12345, 23456) if IS_ROOT else (os.getuid(), os.getgid())
    if IS_ROOT:
        os.chown(path, *owner)
    assert cli("init", path, "--in-place", "-s", "zeros", "-q").exit_code == 0
    status = path.stat()
    assert stat.S_IMODE(status.st_mode) == 0o640
    assert (status.st_uid, status.st_gid) == owner


def test_a_read_only_file_is_a_clear_error(cli, save_pt):
    path = save_pt({"w": torch.ones(2)})
    original = path.read_bytes()
    path.chmod(0o444)
    result = cli("init", path, "--in-place", "-s", "zeros")
    assert result.exit_code == ExitCode.IO and "read-only" in one_error(result.stderr)
    assert path.read_bytes() == original


@contextlib.contextmanager
def mounted(options: str):
    """A small tmpfs mounted with ``options`` (root only; skips otherwise)."""
    folder = Path(tempfile.mkdtemp(prefix="paramctl-mount-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        )
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        folder.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


@pytest.mark.skipif(not IS_ROOT, reason="mounting needs root")
def test_a_read_only_directory_is_a_clear_error(cli, tmp_path, save_pt):
    source = save_pt({"w": torch.ones(2)})
    with mounted("size=1m,ro") as folder:
        result = cli("init", source, "-s", "zeros", "-o", folder / "out.pt")
        assert result.exit_code == ExitCode.IO
        assert "Read-only file system" in one_error(result.stderr)


def big_checkpoint(path: Path, megabytes: int) -> Path:
    torch.save({f"layer{i}.weight": torch.full((megabytes, 1 << 16), float(i)) for i in range(4)}, path)
    return path


@pytest.mark.skipif(not IS_ROOT, reason="mounting needs root")
def test_a_full_disk_leaves_the_original_and_no_temporary():
    with mounted("size=6m") as folder:
        path = big_checkpoint(folder / "m.pt", 4)  # 4 MiB: a second copy does not fit
        original = path.read_bytes()
        result = paramctl("init", path, "--in-place", "-s", "zeros", "-q")
        assert result.returncode == ExitCode.IO
        assert "No space left on device" in one_error(result.stderr)
        assert path.read_bytes() == original and not temporaries(folder)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, resource.RLIM_INFINITY))


def test_the_file_size_limit_leaves_the_original_and_no_temporary(tmp_path):
    path = big_checkpoint(tmp_path / "m.pt", 4)
    original = path.read_bytes()
    result = paramctl("init", path, "--in-place", "-s", "zeros", "-q", preexec_fn=_limit_file_size)
    assert result.returncode == ExitCode.IO
    assert "File too large" in one_error(result.stderr)
    assert path.read_bytes() == original and not temporaries(tmp_path)


def test_a_full_standard_output_is_an_io_error(tmp_path, save_pt):
    path = save_pt({"w": torch.ones(2)})
    with open("/dev/full", "w") as full:
        listed = subprocess.run(
            [sys.executable, "-m", "paramctl", "list", str(path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert listed.returncode == ExitCode.IO
    assert "No space left on device" in one_error(listed.stderr)
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob(f"*{TEMP_SUFFIX}"))
    with open("/dev/full", "wb") as full:
        written = subprocess.run(
            [sys.executable, "-m", "paramctl", "init", str(path), "-s", "zeros"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert written.returncode == ExitCode.IO, written.stderr
    assert set(scratch.glob(f"*{TEMP_SUFFIX}")) <= before


def test_a_lock_follows_the_file_to_its_replacement(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(0.5); "
            "open(sys.argv[1] + '.new', 'wb').write(b'new'); os.replace(sys.argv[1] + '.new', sys.argv[1])",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with WriteLock(path) as lock:
        waited = time.monotonic() - started
        assert lock.held and path.read_bytes() == b"new"  # it waited, then locked the new file
    holder.wait()
    assert waited > 0.3


@pytest.mark.slow
def test_two_in_place_writers_follow_each_other(tmp_path):
    path = big_checkpoint(tmp_path / "m.pt", 8)
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paramctl",
                "init",
                str(path),
                "--in-place",
                "-m",
                name,
                "--set",
                value,
                "-q",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, value in (("layer0.weight", "10"), ("layer3.weight", "30"))
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    loaded = torch.load(path)
    # Neither change is lost: the second writer read what the first wrote.
    assert loaded["layer0.weight"].eq(10).all() and loaded["layer3.weight"].eq(30).all()
    assert loaded["layer1.weight"].eq(1).all() and not temporaries(tmp_path)


_SERVER = """
import os, sys
from paramctl.cli import app
import torch  # imported once here, used only in the children
arguments = sys.argv[1:]
print("ready", flush=True)
for line in sys.stdin:
    child = os.fork()
    if child == 0:
        try:
            app(arguments, prog_name="paramctl")
        except SystemExit:
            pass
        os._exit(0)
    print(child, flush=True)
    _, status = os.waitpid(child, 0)
    print(status, flush=True)
"""


@pytest.mark.slow
def test_sigkill_at_many_points_of_an_in_place_write_loses_nothing(tmp_path):
    path = big_checkpoint(tmp_path / "m.pt", 16)  # 16 MiB
    original = path.read_bytes()
    done = tmp_path / "done.pt"
    shutil.copy(path, done)
    assert paramctl("init", done, "--in-place", "--set", "1", "-q").returncode == 0
    finished = done.read_bytes()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, "init", str(path), "--in-place", "--set", "1", "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout.readline().strip() == "ready"  # torch imported: each fork starts at once

    def attempt(delay: float | None) -> float:
        path.write_bytes(original)
        started = time.monotonic()
        server.stdin.write("go\n")
        server.stdin.flush()
        child = int(server.stdout.readline())
        if delay is not None:
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        server.stdout.readline()
        return time.monotonic() - started

    try:
        whole = attempt(None)
        assert path.read_bytes() == finished
        outcomes = []
        for point in range(24):  # spread over the write, the last few past its end
            attempt(whole * (point + 0.5) / 20)
            content = path.read_bytes()
            assert content in (original, finished), f"kill {point}: the file is neither old nor new"
            outcomes.append("new" if content == finished else "old")
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    # Kills before the commit leave the old file (those after it, the new one); whatever
    # temporaries they left are recognised and removed by the next write to the folder.
    assert "old" in outcomes, outcomes
    print(f"one write {whole:.2f} s; 24 kills left {outcomes.count('old')} old, {outcomes.count('new')} new")
    assert paramctl("init", path, "--in-place", "--set", "2", "-q").returncode == 0
    assert not temporaries(tmp_path)
