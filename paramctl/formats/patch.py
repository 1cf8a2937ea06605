"""Write a checkpoint back in its own format with some storages' bytes replaced.

The output is a copy of the input in which only the bytes of changed storages differ:
the pickle (ties, views, optimizer state, every non-tensor value), record order, zip
alignment and safetensors metadata come through untouched because they are copied, not
re-serialized. Unchanged bytes are copied by the kernel (``copy_file_range``) without
passing through Python; changed storages are read and written one byte span at a time, so
memory stays near the largest tensor.

Public entry point: :func:`open_editor` (``StorageEditor.span`` to change bytes, then
``finish``)::

    with open("out.pt", "w+b") as out:
        editor = open_editor(checkpoint, out, fresh={"0"}, provenance={"scheme": "zeros"})
        with editor.span("0", 0, 48, read=False) as raw:   # a uint8 tensor of 48 bytes
            raw.zero_()
        editor.finish()

What each format adds: torch-zip records get new CRC-32s and a provenance record
``<root>/paramctl/<n>.json``; safetensors gets a new header whose ``__metadata__`` carries
the provenance under ``paramctl`` (every other key, aliases included, kept); the legacy
format has nowhere to put provenance.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import struct
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, join_path
from paramctl.errors import CheckpointIOError, CorruptCheckpoint, UsageError
from paramctl.formats import safetensors as safetensors_format
from paramctl.formats import torch_legacy, torch_zip

if TYPE_CHECKING:
    import torch

PROVENANCE_KEY = "paramctl"
_CHUNK = 8 << 20
_SMALL_SPAN = 1 << 20
_BATCH_BYTES = 4 << 20
_BATCH_COUNT = 512
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_CRC_IN_LOCAL_HEADER = 14
_DATA_DESCRIPTOR_FLAG = 0x08
_COPY_FALLBACK_ERRORS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}


def copy_range(source: int, target: int, source_offset: int, target_offset: int, length: int) -> None:
    """Copy ``length`` bytes between two file descriptors at the given offsets.

    ``copy_file_range`` lets the kernel move the bytes (or share them, on file systems that
    can); where it is missing or refuses (across file systems on some kernels), the bytes
    go through a buffer instead.
    """
    copy_file_range = getattr(os, "copy_file_range", None)
    while length > 0 and copy_file_range is not None:
        try:
            done = copy_file_range(source, target, min(length, 1 << 30), source_offset, target_offset)
        except OSError as exc:
            if exc.errno not in _COPY_FALLBACK_ERRORS:
                raise
            break
        if done <= 0:
            break
        source_offset, target_offset, length = source_offset + done, target_offset + done, length - done
    while length > 0:
        chunk = os.pread(source, min(length, _CHUNK), source_offset)
        if not chunk:
            raise CorruptCheckpoint("the checkpoint ended while it was being copied")
        write_at(target, chunk, target_offset)
        source_offset, target_offset, length = (
            source_offset + len(chunk),
            target_offset + len(chunk),
            length - len(chunk),
        )


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` (a single call may write less)."""
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def read_at(fd: int, into: memoryview, offset: int) -> None:
    """Fill ``into`` from ``offset``; a short file is a damaged checkpoint."""
    view = into.cast("B")
    while view:
        done = os.preadv(fd, [view], offset)
        if done <= 0:
            raise CorruptCheckpoint("the checkpoint is shorter than its storages say")
        view, offset = view[done:], offset + done


class SpanBuffer:
    """One reusable, page-aligned block of memory, grown to the largest span asked for."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None

    def view(self, size: int) -> memoryview:
        if self._map is None or len(self._map) < size:
            # Tensors from an earlier span may still hold the old map; it goes with them.
            self._map = mmap.mmap(-1, max(size, 1))
        return memoryview(self._map)[:size]

    def tensor(self, size: int) -> torch.Tensor:
        import torch

        if size == 0:
            return torch.empty(0, dtype=torch.uint8)
        return torch.frombuffer(self.view(size), dtype=torch.uint8, count=size)


class SpanReader:
    """Reads single tensors of a checkpoint into memory of their own, one at a time.

    Unlike a memory map of the whole file, nothing stays resident after a tensor is
    dropped, so reading every tensor of a large file keeps memory near the largest one.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self._file = open(checkpoint.path, "rb")  # noqa: SIM115 - closed by close()

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int:
        return self._file.fileno()

    def tensor(self, entry: TensorEntry) -> torch.Tensor:
        """A tensor with ``entry``'s dtype, shape and strides, owning a copy of its bytes."""
        import torch

        from paramctl.values import torch_dtype

        if self.checkpoint.fallback_tensors is not None:
            loaded: torch.Tensor = self.checkpoint.fallback_tensors[join_path(entry.path)]
            return loaded
        storage = self.checkpoint.storage_of(entry)
        if storage.offset is None and storage.nbytes:
            raise UsageError(f"{self.checkpoint.label}: storage {storage.key} is compressed; cannot read it")
        start, end = entry.byte_span
        if end == start:
            raw = torch.empty(0, dtype=torch.uint8)
        else:
            assert storage.offset is not None
            block = bytearray(end - start)
            read_at(self._file.fileno(), memoryview(block), storage.offset + start)
            raw = torch.frombuffer(block, dtype=torch.uint8)
        values = raw.view(torch_dtype(entry.dtype))
        return values.as_strided(entry.shape, entry.stride, entry.storage_offset - start // entry.itemsize)


class StorageEditor:
    """A copy of ``checkpoint`` being written to ``out``, storage bytes replaceable.

    ``fresh`` names storages the caller will overwrite entirely on their first
    :meth:`span`, so their old bytes need not be copied first (an optimization only: a
    fresh storage never written, or first written in part, is copied as usual).

    The copying, writing and checksumming run on one background thread, in the order they
    were asked for, while the caller computes the next span in a second buffer: disk and
    CPU overlap, and memory stays at two spans.
    """

    records_provenance = True

    def __init__(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        fresh: Collection[str] = (),
        provenance: Mapping[str, Any] | None = None,
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
        self._in_file = open(checkpoint.path, "rb")  # noqa: SIM115 - closed by finish/close
        self._in_fd = self._in_file.fileno()
        self._size = os.fstat(self._in_fd).st_size
        # Holes are left only for large storages: small ones are cheaper copied along with
        # their neighbours in one long range than skipped one by one.
        self._fresh = {
            key
            for key in fresh
            if key in checkpoint.storages and checkpoint.storages[key].nbytes > _SMALL_SPAN
        }
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
                    _copy_written_back,
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
        """Bytes ``[start, end)`` of storage ``key`` as a writable uint8 tensor.

        With ``read``, it holds the current bytes (the input's, or what an earlier span
        wrote); without, its contents are undefined and must all be overwritten. The bytes
        are written to the output when the block ends; the tensor must not be kept.
        """
        storage = self.checkpoint.storages[key]
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
        raw = buffer.tensor(size)
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

    def _copy_storage(self, storage: Storage) -> None:
        assert storage.offset is not None
        self._submit(
            _copy_written_back,
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
    crc = zlib.crc32(data) if checksum else None
    start_writeback(fd, offset, len(data))
    return crc


def _write_batch(fd: int, batch: list[tuple[bytes, int, bool]]) -> list[int | None]:
    crcs: list[int | None] = []
    low, high = None, 0
    for data, offset, checksum in batch:
        write_at(fd, data, offset)
        crcs.append(zlib.crc32(data) if checksum else None)
        low = offset if low is None else min(low, offset)
        high = max(high, offset + len(data))
    if low is not None:
        start_writeback(fd, low, high - low)
    return crcs


def _copy_written_back(source: int, target: int, source_offset: int, target_offset: int, length: int) -> None:
    copy_range(source, target, source_offset, target_offset, length)
    start_writeback(target, target_offset, length)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Let the disk start on bytes just written while the next ones are computed.

    On Linux, ``POSIX_FADV_DONTNEED`` starts writing dirty pages back without waiting for
    them, and drops them from the cache once clean: the final fsync has little left to do
    and a large output does not crowd the page cache.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


class ZipEditor(StorageEditor):
    """torch-zip: records keep their place and alignment; changed ones get new CRC-32s."""

    def __init__(self, checkpoint: Checkpoint, out: BinaryIO, **kwargs: Any) -> None:
        with open(checkpoint.path, "rb") as file, zipfile.ZipFile(file) as archive:
            self._infos = {info.filename: info for info in archive.infolist()}
        self._root = torch_zip.find_root(list(self._infos))
        super().__init__(checkpoint, out, **kwargs)

    def _record(self, key: str) -> zipfile.ZipInfo:
        return self._infos[f"{self._root}data/{key}"]

    def _finish_format(self) -> None:
        crcs: dict[str, int] = {}
        whole = self.whole_crcs()
        for key in sorted(self._written):
            info, storage = self._record(key), self.checkpoint.storages[key]
            crc = whole.get(key) if info.file_size == storage.nbytes else None
            crcs[info.filename] = crc if crc is not None else self._record_crc(storage, info)
            self._patch_local_crc(storage, info, crcs[info.filename])
        # zipfile rewrites the central directory with the new CRCs and adds the record.
        with zipfile.ZipFile(self.out, "a") as archive:
            for info in archive.infolist():
                if info.filename in crcs:
                    info.CRC = crcs[info.filename]
            if self.provenance:
                record = zipfile.ZipInfo(self._provenance_name(archive), date_time=(1980, 1, 1, 0, 0, 0))
                record.compress_type = zipfile.ZIP_STORED
                archive.writestr(record, json.dumps(self.provenance, indent=1, sort_keys=True) + "\n")

    def _provenance_name(self, archive: zipfile.ZipFile) -> str:
        prefix = f"{self._root}{PROVENANCE_KEY}/"
        taken = {name for name in archive.namelist() if name.startswith(prefix)}
        number = len(taken) + 1
        while f"{prefix}{number}.json" in taken:
            number += 1
        return f"{prefix}{number}.json"

    def _record_crc(self, storage: Storage, info: zipfile.ZipInfo) -> int:
        crc, position, remaining = 0, self._out_offset(storage), info.file_size
        while remaining:
            chunk = os.pread(self._out_fd, min(remaining, _CHUNK), position)
            if not chunk:
                raise CheckpointIOError("the output ended early while checksumming")
            crc = zlib.crc32(chunk, crc)
            position, remaining = position + len(chunk), remaining - len(chunk)
        return crc

    def _patch_local_crc(self, storage: Storage, info: zipfile.ZipInfo, crc: int) -> None:
        """The CRC also sits in the record's local header, or after its data (bit 3)."""
        packed = struct.pack("<L", crc)
        if info.flag_bits & _DATA_DESCRIPTOR_FLAG:
            end = self._out_offset(storage) + info.compress_size
            signed = os.pread(self._out_fd, 4, end) == _DESCRIPTOR_SIGNATURE
            write_at(self._out_fd, packed, end + (4 if signed else 0))
        else:
            write_at(self._out_fd, packed, info.header_offset + _CRC_IN_LOCAL_HEADER)


class LegacyEditor(StorageEditor):
    """The pre-1.6 torch format: storages replaced in place; no room for provenance."""

    records_provenance = False


class SafetensorsEditor(StorageEditor):
    """safetensors: a new header (provenance in ``__metadata__``), the data shifted with it."""

    def __init__(self, checkpoint: Checkpoint, out: BinaryIO, **kwargs: Any) -> None:
        header, self._data_start, _ = safetensors_format.read_header(checkpoint.path)
        self._header_bytes = header_with_provenance(header, kwargs.get("provenance"))
        super().__init__(checkpoint, out, **kwargs)

    def _shift(self) -> int:
        return len(self._header_bytes) - self._data_start

    def _prefix(self) -> tuple[int, bytes | None]:
        return self._data_start, self._header_bytes


def header_with_provenance(header: dict[str, Any], provenance: Mapping[str, Any] | None) -> bytes:
    """A safetensors header (length prefix included) with ``provenance`` appended to the
    history under ``__metadata__["paramctl"]``; every other key is kept as it was."""
    header = dict(header)
    metadata = dict(header.pop(safetensors_format.METADATA_KEY, None) or {})
    if provenance:
        metadata[PROVENANCE_KEY] = json.dumps(
            [*provenance_history(metadata), dict(provenance)], sort_keys=True
        )
    ordered = {safetensors_format.METADATA_KEY: metadata, **header} if metadata else header
    return encode_header(ordered)


def encode_header(header: Mapping[str, Any]) -> bytes:
    """JSON as safetensors writes it: compact, UTF-8, padded with spaces to 8 bytes."""
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def provenance_history(metadata: Mapping[str, str]) -> list[Any]:
    """The provenance steps already recorded in safetensors metadata, oldest first."""
    recorded = metadata.get(PROVENANCE_KEY)
    if recorded is None:
        return []
    try:
        history = json.loads(recorded)
    except json.JSONDecodeError:
        return [recorded]
    return history if isinstance(history, list) else [history]


_EDITORS: dict[str, type[StorageEditor]] = {
    torch_zip.FORMAT: ZipEditor,
    torch_legacy.FORMAT: LegacyEditor,
    safetensors_format.FORMAT: SafetensorsEditor,
}


def open_editor(
    checkpoint: Checkpoint,
    out: BinaryIO,
    *,
    fresh: Collection[str] = (),
    provenance: Mapping[str, Any] | None = None,
) -> StorageEditor:
    """Start writing ``checkpoint`` to ``out`` (a seekable read-write file) in its format."""
    editor_class = _EDITORS.get(checkpoint.format)
    if editor_class is None:
        raise UsageError(f"{checkpoint.label}: cannot write the {checkpoint.format} format")
    return editor_class(checkpoint, out, fresh=fresh, provenance=provenance)
