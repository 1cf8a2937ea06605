"""Write a checkpoint back in its own format with some storages' bytes replaced.

The output is a copy of the input in which only the bytes of changed storages differ:
the pickle (ties, views, optimizer state, every non-tensor value), record order, zip
alignment and safetensors metadata come through untouched because they are copied, not
re-serialized. Unchanged bytes are copied by the kernel (``copy_file_range``) without
passing through Python; changed storages are read and written one byte span at a time, so
memory stays near the largest tensor.

A format's ``editor`` subclasses :class:`StorageEditor` with what the format adds (new
CRC-32s and a provenance record for a zip, a new header for safetensors). An editor copies
one file of the checkpoint: the one holding the storages it is asked to change.

>>> import torch, tempfile, os
>>> from paramctl.formats import format_of, read_checkpoint
>>> folder = tempfile.mkdtemp()
>>> torch.save({"w": torch.zeros(2)}, os.path.join(folder, "in.pt"))
>>> checkpoint = read_checkpoint(os.path.join(folder, "in.pt"))
>>> with open(os.path.join(folder, "out.pt"), "w+b") as out:
...     editor = format_of(checkpoint).editor(checkpoint, out)
...     with editor.span("0", 0, 8, read=False) as raw:
...         _ = raw.view(torch.float32).fill_(1.0)
...     editor.finish()
>>> torch.load(os.path.join(folder, "out.pt"))["w"]
tensor([1., 1.])
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zlib
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.errors import UsageError
from paramctl.formats._io import copy_range, read_at, write_at

if TYPE_CHECKING:
    import torch

_SMALL_SPAN = 1 << 20
_BATCH_BYTES = 4 << 20
_BATCH_COUNT = 512
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_CRC_IN_LOCAL_HEADER = 14
_DATA_DESCRIPTOR_FLAG = 0x08


class SpanBuffer:
    """One reusable, page-aligned block of memory, grown to the largest span asked for."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None

    def view(self, size: int) -> memoryview:
        if self._map is None or len(self._map) < size:
            # Tensors from an earlier span may still hold the old map; it goes with them.
            self._map = mmap.mmap(-1, max(size, 1))
        return memoryview(self._map)[:size]


class StorageEditor:
    """A copy of ``checkpoint`` being written to ``out``, storage bytes replaceable.

    ``fresh`` names storages the caller will overwrite entirely on their first
    :meth:`span`, so their old bytes need not be copied first (an optimization only: a
    fresh storage never written, or first written in part, is copied as usual).

    The copying, writing and checksumming run on one background thread, in the order they
    were asked for, while the caller computes the next span in a second buffer: disk and
    CPU overlap, and memory stays at two spans.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        fresh: Collection[str] = (),
        provenance: Mapping[str, Any] | None = None,
        file: Path | None = None,
    ) -> None:
        if checkpoint.fallback_tensors is not None:
            raise UsageError(
                f"{checkpoint.label}: holds tensors only torch itself can read (sparse, quantized or a "
                "tensor subclass); paramctl cannot write it back without losing them"
            )
        self.checkpoint = checkpoint
        self.out = out
        self.provenance = dict(provenance or {})
        self._out_fd = out.fileno()
        self.source = file if file is not None else _only_file(checkpoint)
        self._in_file = open(self.source, "rb")  # noqa: SIM115 - closed by finish/close
        self._in_fd = self._in_file.fileno()
        self._size = os.fstat(self._in_fd).st_size
        # Holes are left only for large storages: small ones are cheaper copied along with
        # their neighbours in one long range than skipped one by one.
        self._fresh = {
            key
            for key in fresh
            if key in checkpoint.storages and checkpoint.storages[key].nbytes > _SMALL_SPAN
        }
        for key in self._fresh:
            self._check_in_source(key)
        self._written: set[str] = set()
        # (storage key, whole-storage write?, the job, index in its batch) in request order.
        self._writes: list[tuple[str, bool, Future[Any], int | None]] = []
        self._jobs: list[Future[Any]] = []
        # Small writes wait here and go to the writer together.
        self._batch: list[tuple[bytes, int, bool]] = []
        self._batch_owners: list[tuple[str, bool]] = []
        self._batch_bytes = 0
        self._buffers = (SpanBuffer(), SpanBuffer())
        self._in_use: list[Future[Any] | None] = [None, None]
        self._turn = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paramctl-writer")
        self._finished = False
        try:
            for key in self._fresh:
                self._check_plain(checkpoint.storages[key])
            self._start()
        except BaseException:
            self.close()
            raise

    # -- subclass hooks ------------------------------------------------------------------
    def _shift(self) -> int:
        """How far the data moves (a safetensors header may change length)."""
        return 0

    def _prefix(self) -> tuple[int, bytes | None]:
        """Input bytes ``[0, n)`` to replace by the returned bytes (``None``: copy them)."""
        return 0, None

    def _finish_format(self) -> None:
        """Format-specific closing work (checksums, provenance)."""

    # -- the copy ------------------------------------------------------------------------
    def _check_plain(self, storage: Storage) -> None:
        if storage.inline is not None:
            raise UsageError(
                f"{self.checkpoint.label}: {storage.key} is a numpy array inside the checkpoint's pickle; "
                "paramctl rewrites tensor records only, never the pickle: convert it to a tensor to edit it"
            )
        if storage.offset is None and storage.nbytes:
            raise UsageError(
                f"{self.checkpoint.label}: storage {storage.key} is compressed in the archive; "
                "paramctl rewrites only stored (uncompressed) records, as torch.save writes them"
            )

    def _submit(self, job: Any, *args: Any) -> Future[Any]:
        self._flush_batch()  # keep the writer's order the order things were asked for
        future = self._writer.submit(job, *args)
        self._jobs.append(future)
        return future

    def _flush_batch(self) -> None:
        if not self._batch:
            return
        batch, owners = self._batch, self._batch_owners
        self._batch, self._batch_owners, self._batch_bytes = [], [], 0
        future = self._writer.submit(_write_batch, self._out_fd, batch)
        self._jobs.append(future)
        self._writes.extend((key, whole, future, index) for index, (key, whole) in enumerate(owners))

    def _start(self) -> None:
        replaced, header = self._prefix()
        if header is not None:
            write_at(self._out_fd, header, 0)
        shift = self._shift()
        os.ftruncate(self._out_fd, self._size + shift)
        holes = sorted(
            (s.offset, s.offset + s.nbytes)
            for key in self._fresh
            if (s := self.checkpoint.storages[key]).offset is not None and s.nbytes
        )
        position = replaced
        for start, end in [*holes, (self._size, self._size)]:
            if start > position:
                self._submit(
                    copy_range,
                    self._in_fd,
                    self._out_fd,
                    position,
                    position + shift,
                    start - position,
                )
            position = max(position, end)

    def _out_offset(self, storage: Storage) -> int:
        assert storage.offset is not None
        return storage.offset + self._shift()

    def _drain(self) -> None:
        """Wait for every copy and write asked for so far (and raise what failed)."""
        self._flush_batch()
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    # -- editing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def span(self, key: str, start: int, end: int, *, read: bool = True) -> Iterator[torch.Tensor]:
        """Bytes ``[start, end)`` of storage ``key`` as a writable uint8 tensor: the
        :meth:`span_bytes` block, for torch's math."""
        import torch

        with self.span_bytes(key, start, end, read=read) as raw:
            yield torch.frombuffer(raw, dtype=torch.uint8) if len(raw) else torch.empty(0, dtype=torch.uint8)

    @contextlib.contextmanager
    def span_bytes(self, key: str, start: int, end: int, *, read: bool = True) -> Iterator[memoryview]:
        """Bytes ``[start, end)`` of storage ``key``, writable.

        With ``read``, they are the current bytes (the input's, or what an earlier span
        wrote); without, they are undefined and must all be overwritten. The bytes are
        written to the output when the block ends; the view must not be kept.
        """
        storage = self.checkpoint.storages[key]
        self._check_in_source(key)
        if not 0 <= start <= end <= storage.nbytes:
            raise ValueError(f"bytes {start}..{end} are outside storage {key} ({storage.nbytes} bytes)")
        self._check_plain(storage)
        size = end - start
        whole = start == 0 and end == storage.nbytes
        if key in self._fresh and key not in self._written and not whole:
            # A fresh storage first touched in part: its old bytes are needed after all.
            self._copy_storage(storage)
        turn, self._turn = self._turn, 1 - self._turn
        pending = self._in_use[turn]
        if pending is not None:
            pending.result()  # the buffer's previous bytes are on their way out
        buffer = self._buffers[turn]
        raw = buffer.view(size)
        if read and size:
            # Until written here, the input holds the current bytes (the copy is of them).
            from_output = key in self._written
            if from_output:
                self._drain()
                fd, base = self._out_fd, self._out_offset(storage)
            else:
                fd, base = self._in_fd, storage.offset or 0
            read_at(fd, buffer.view(size), base + start)
        yield raw
        offset = self._out_offset(storage) + start
        if size <= _SMALL_SPAN:
            # Small spans are copied out and written in batches; their buffer is free at once.
            self._batch.append((bytes(buffer.view(size)), offset, whole))
            self._batch_owners.append((key, whole))
            self._batch_bytes += size
            if self._batch_bytes >= _BATCH_BYTES or len(self._batch) >= _BATCH_COUNT:
                self._flush_batch()
        else:
            # A large span is written from the buffer itself, which the next-but-one span
            # waits for.
            job = self._submit(_write_span, self._out_fd, buffer.view(size), offset, whole)
            self._in_use[turn] = job
            self._writes.append((key, whole, job, None))
        self._written.add(key)

    def _check_in_source(self, key: str) -> None:
        if self.checkpoint.storages[key].file != self.source:
            raise ValueError(f"storage {key} is in {self.checkpoint.storages[key].file}, not {self.source}")

    def _copy_storage(self, storage: Storage) -> None:
        assert storage.offset is not None
        self._submit(
            copy_range,
            self._in_fd,
            self._out_fd,
            storage.offset,
            self._out_offset(storage),
            storage.nbytes,
        )
        self._written.add(storage.key)

    def whole_crcs(self) -> dict[str, int | None]:
        """For each written storage, the CRC-32 of its bytes if its last write covered them all."""
        self._flush_batch()
        crcs: dict[str, int | None] = {}
        for key, whole, job, index in self._writes:
            result = job.result()
            crcs[key] = (result if index is None else result[index]) if whole else None
        return crcs

    @property
    def changed(self) -> set[str]:
        """Keys of the storages written so far."""
        return set(self._written)

    def finish(self) -> None:
        """Fill in any fresh storage never written, then the format's checksums and metadata."""
        if self._finished:
            return
        for key in sorted(self._fresh - self._written):
            self._copy_storage(self.checkpoint.storages[key])
        self._drain()
        self._finish_format()
        self.out.flush()
        self._finished = True
        self.close()

    def close(self) -> None:
        """Stop the writer (finishing the job in hand, dropping the rest) and close the input."""
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._in_file.close()


def _write_span(fd: int, data: bytes | memoryview, offset: int, checksum: bool) -> int | None:
    if not data:
        return zlib.crc32(b"") if checksum else None
    write_at(fd, data, offset)
    return zlib.crc32(data) if checksum else None


def _write_batch(fd: int, batch: list[tuple[bytes, int, bool]]) -> list[int | None]:
    crcs: list[int | None] = []
    for data, offset, checksum in batch:
        write_at(fd, data, offset)
        crcs.append(zlib.crc32(data) if checksum else None)
    return crcs


def _only_file(checkpoint: Checkpoint) -> Path:
    files = checkpoint.files
    if len(files) != 1:
        raise ValueError(f"{checkpoint.label} spans {len(files)} files: say which one to edit")
    return files[0]
