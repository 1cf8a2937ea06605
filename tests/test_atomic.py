"""Atomic writes of a set of files: all old or all new, whatever interrupts them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from paramctl.atomic import JOURNAL, TEMP_SUFFIX, FileSetWrite, WriteBack, atomic_files, recover

NAMES = ("shard-1.bin", "shard-2.bin", "index.json")


def write_set(folder, generation):
    with atomic_files(folder, last="index.json") as files:
        for name in NAMES:
            files.open(name).write(f"{name} {generation}".encode())


def generations(folder):
    return {(folder / name).read_text().split()[-1] for name in NAMES}


def test_a_set_replaces_every_file_with_the_index_last(tmp_path, monkeypatch):
    write_set(tmp_path, 0)
    renamed = []
    real_replace = os.replace

    def recording(source, target):
        renamed.append(os.path.basename(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording)
    write_set(tmp_path, 1)
    assert generations(tmp_path) == {"1"}
    targets = [name for name in renamed if name in NAMES]
    assert targets[-1] == "index.json" and sorted(targets) == sorted(NAMES)
    assert JOURNAL in renamed  # more than one file: the journal is the commit point
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX) or p.name == JOURNAL]


def test_a_failure_inside_the_block_leaves_the_old_set_and_no_temporary(tmp_path):
    write_set(tmp_path, 0)
    with pytest.raises(RuntimeError), atomic_files(tmp_path, last="index.json") as files:
        files.open("shard-1.bin").write(b"half")
        raise RuntimeError("interrupted")
    assert generations(tmp_path) == {"0"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
@pytest.mark.parametrize("fails", [False, True], ids=["committed", "discarded"])
def test_files_go_to_disk_while_written_and_the_write_back_stops_before_they_close(
    tmp_path, monkeypatch, fails
):
    advised = []
    real_advise = os.posix_fadvise

    def recording(fd, offset, length, advice):
        advised.append((fd, advice))
        real_advise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    with contextlib.suppress(RuntimeError), atomic_files(tmp_path) as files:
        out = files.open("shard-1.bin")
        out.write(bytes(1 << 20))
        out.flush()
        deadline = time.monotonic() + 5
        while (out.fileno(), os.POSIX_FADV_DONTNEED) not in advised and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (out.fileno(), os.POSIX_FADV_DONTNEED) in advised  # before any fsync
        if fails:
            raise RuntimeError("interrupted")
    given = len(advised)
    assert not [thread for thread in threading.enumerate() if thread.name == "paramctl-writeback"]
    time.sleep(3 * WriteBack.EVERY)
    assert len(advised) == given  # nothing advised once the files are closed
    assert (tmp_path / "shard-1.bin").exists() != fails


def test_an_interrupted_commit_is_completed_by_recover(tmp_path, monkeypatch):
    write_set(tmp_path, 0)
    files = FileSetWrite(tmp_path, last="index.json")
    for name in NAMES:
        files.open(name).write(f"{name} 1".encode())
    real_replace, calls = os.replace, []

    def dies_after_the_journal(source, target):
        calls.append(target)
        if len(calls) == 3:  # the journal, then one shard: the process dies here
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", dies_after_the_journal)
    with pytest.raises(KeyboardInterrupt):
        files.commit()
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(generations(tmp_path)) == 2  # a mixed set, until recovered
    assert recover(tmp_path)
    assert generations(tmp_path) == {"1"} and not (tmp_path / JOURNAL).exists()
    assert not recover(tmp_path)


_WRITER = """
import sys
from pathlib import Path
from paramctl.atomic import atomic_files
folder = Path(sys.argv[1])
generation = 0
while True:
    generation += 1
    with atomic_files(folder, last="index.json") as files:
        for name in ("shard-1.bin", "shard-2.bin", "index.json"):
            files.open(name).write((f"{name} " + str(generation)).encode() * 20000)
"""


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_whole_set(tmp_path):
    write_set(tmp_path, 0)
    for attempt in range(20):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)])
        time.sleep(0.15 + 0.013 * attempt)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        recover(tmp_path)
        contents = {(tmp_path / name).read_text()[-12:].split()[-1] for name in NAMES}
        assert len(contents) == 1, f"attempt {attempt}: a mixed set {contents}"
    write_set(tmp_path, "last")  # the next write cleans what the kills left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
