"""The interface every checkpoint format implements, and what the rest of paramctl may ask.

A format is a folder under ``paramctl/formats/`` whose ``__init__.py`` defines one
:class:`Format` subclass and an instance of it, ``FORMAT``; the registry in
``paramctl/formats/__init__.py`` lists those instances. The registry imports every
``__init__.py``, so each imports only what detection needs (its ``layout.py``), and a method
that reads, edits, writes or verifies imports its module when it is called. Nothing
outside ``formats/`` names a format: commands ask the registry (detection, the output format
for a suffix, the choices of ``--to``) and the format object (reading, editing, writing,
verifying, its pickles, what it can hold).

>>> from paramctl.formats import FORMATS_BY_NAME
>>> zip_format = FORMATS_BY_NAME["torch-zip"]
>>> zip_format.holds.extras, FORMATS_BY_NAME["safetensors"].holds.extras
(True, False)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal, Protocol

from paramctl.errors import UsageError

if TYPE_CHECKING:
    from paramctl.atomic import FileSetWrite
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor

Severity = Literal["error", "warning"]
Progress = Callable[[int], None]


class Writer(Protocol):
    """Writes a checkpoint of any format as a new file of one format."""

    def __call__(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        provenance: Mapping[str, Any] | None = None,
        source_metadata: Mapping[str, str] | None = None,
    ) -> None: ...


class SetWriter(Protocol):
    """Writes a checkpoint of any format as a new set of files (a directory) of one format,
    each file opened from ``files`` (committed together, its index last); returns the names
    of the files written."""

    def __call__(
        self, checkpoint: Checkpoint, files: FileSetWrite, *, max_shard_size: int | None = None
    ) -> list[str]: ...


@dataclass(frozen=True)
class Holds:
    """What a format can represent, so conversions refuse what would be lost.

    ``extras``: non-tensor values (an epoch, optimizer hyper-parameters); ``nesting``: tensors
    in nested dicts and lists; ``ties``: two names on one tensor; ``views``: tensors viewing
    overlapping parts of one storage; ``provenance``: a place to record what paramctl
    changed; ``dtypes``: the dtypes it stores (``None``: every dtype paramctl knows);
    ``single_tensor``: a file holds one tensor, named by the file (``.npy``).
    """

    extras: bool
    nesting: bool
    ties: bool
    views: bool
    provenance: bool
    dtypes: frozenset[str] | None = None
    single_tensor: bool = False


@dataclass(frozen=True)
class FileSet:
    """The files of a checkpoint that spans several, for writing them as one set.

    ``root`` is the directory; ``members`` every file of the checkpoint relative to it (an
    output directory receives them all); ``index`` the member that names the others, written
    last so that it commits the set (``None``: no such file).

    >>> FileSet(Path("ckpt"), ("a.safetensors", "index.json"), "index.json").data_files
    ('a.safetensors',)
    """

    root: Path
    members: tuple[str, ...]
    index: str | None = None

    @property
    def data_files(self) -> tuple[str, ...]:
        return tuple(name for name in self.members if name != self.index)


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, which check found it, the tensor or record, and what it is.

    >>> Finding("error", "nan", "0.weight", "2 NaN among 12 values").line()
    'error: nan: 0.weight: 2 NaN among 12 values'
    """

    severity: Severity
    check: str
    name: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "name": self.name, "message": self.message}

    def line(self) -> str:
        """The finding as one line of text."""
        where = f"{self.name}: " if self.name else ""
        return f"{self.severity}: {self.check}: {where}{self.message}"


@dataclass
class Verification:
    """What a format's own checks found in a file's container (checksums, layout)."""

    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    # What ``records`` counts, a singular noun: zip members read, tensors an index names.
    record_kind: str = "zip record"
    # Whether these checks cover every reason the reader refuses a file, so that a read
    # failure needs no finding of its own once they found an error.
    covers_metadata: bool = False

    def add(self, severity: Severity, check: str, name: str, message: str) -> None:
        self.findings.append(Finding(severity, check, name, message))

    @property
    def errors(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "error")


class NeedsTorch(Exception):
    """The pickle uses a torch feature the fast reader does not model (sparse, quantized...):
    :meth:`Format.read` raises it, and the registry reads the file with torch instead."""

    def __init__(self, global_name: str) -> None:
        super().__init__(f"the pickle uses {global_name}, which the metadata reader does not model")
        self.global_name = global_name


class Format(ABC):
    """One checkpoint format: how to recognise, read, edit, write and verify it."""

    name: ClassVar[str]
    # What the format is, for messages and the README's table.
    title: ClassVar[str]
    # Output suffixes this format claims (``-o out.pt``), lower case with the dot.
    suffixes: ClassVar[tuple[str, ...]] = ()
    holds: ClassVar[Holds]
    # Whether torch's fallback reader may memory-map the file.
    torch_mmap: ClassVar[bool] = False
    # How listed shapes relate to the file's, when the file stores dimensions otherwise.
    shape_order: ClassVar[str] = ""
    # What paramctl says when asked to convert to a format with no :meth:`writer`.
    no_writer: ClassVar[str] = "does not write new files of this format; choose another with --to"

    def claims(self, path: Path) -> list[Path]:
        """The checkpoints this format finds at ``path`` by its name or directory layout,
        consulted before any file's bytes are sniffed: ``[path]`` for a file or directory
        that is one of its checkpoints (an index file, a DCP directory), the candidates
        inside a directory, ``[]`` otherwise. May raise :class:`UsageError` for a path that
        is part of a checkpoint, naming the whole one."""
        return []

    def file_set(self, checkpoint: Checkpoint) -> FileSet | None:
        """The files of a checkpoint that spans several (written as one atomic set), or
        ``None`` for a checkpoint of one file."""
        return None

    def new_index(self, checkpoint: Checkpoint, changed: Collection[Path]) -> bytes | None:
        """The index's new content once the files in ``changed`` are rewritten, or
        ``None`` when the index stays byte for byte as it is."""
        return None

    @abstractmethod
    def sniff(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (its first 64 bytes) is in this format."""

    def sniff_zip(self, members: Sequence[str]) -> bool:
        """For a format whose :meth:`sniff` matched a zip archive: whether the archive's
        member names (empty when the directory cannot be read) mark it as this format.

        Zip formats are told apart by their members (``constants.pkl`` and ``code/`` for
        TorchScript, ``archive_format`` for torch.export); the registry asks the most
        specific first, and the one that claims every zip comes last.
        """
        return True

    @abstractmethod
    def read(self, path: Path) -> Checkpoint:
        """The checkpoint's metadata (names, shapes, dtypes, where each storage's bytes are).

        Raises :class:`NeedsTorch` for features only torch reads.
        """

    @abstractmethod
    def editor_class(self) -> type[StorageEditor]:
        """The editor that copies one of this format's files with storages replaced."""

    def writer(self) -> Writer | None:
        """The function that writes a new file of this format from any checkpoint, if any."""
        return None

    def set_writer(self) -> SetWriter | None:
        """For a format of several files: the function that writes a new directory of it
        from any checkpoint, if any (its index file is :attr:`index_name`)."""
        return None

    # The index file a new directory of this format gets (formats with a set writer).
    index_name: ClassVar[str | None] = None

    @property
    def writes_new(self) -> bool:
        """Whether :meth:`write` can make a new file from another format's checkpoint."""
        return self.writer() is not None

    def editor(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        fresh: Collection[str] = (),
        provenance: Mapping[str, Any] | None = None,
        file: Path | None = None,
    ) -> StorageEditor:
        """Start writing a copy of one of ``checkpoint``'s files (``file``, or its only one)
        to ``out`` with storages replaceable."""
        return self.editor_class()(checkpoint, out, fresh=fresh, provenance=provenance, file=file)

    def write(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        provenance: Mapping[str, Any] | None = None,
        source_metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write ``checkpoint`` (of any format) as a new file of this format to ``out``."""
        writer = self.writer()
        if writer is None:
            raise UsageError(f"paramctl {self.no_writer}")
        _refuse_block_quantized(self, checkpoint)
        writer(checkpoint, out, provenance=provenance, source_metadata=source_metadata)

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        """The format's own checks of the container (``checkpoint`` is ``None`` when the
        metadata could not be read)."""
        return Verification()

    def pickles(self, path: Path) -> Iterator[IO[bytes]]:
        """The pickles ``torch.load(weights_only=False)`` would run, for ``--trust`` to list."""
        return iter(())

    def __repr__(self) -> str:
        return f"<format {self.name}>"


def _refuse_block_quantized(fmt: Format, checkpoint: Checkpoint) -> None:
    """GGUF's block-quantized tensors (``Q4_K``) are no dtype other formats store."""
    from paramctl.dtypes import DTYPES

    held = fmt.holds.dtypes or frozenset()
    quantized = [e for e in checkpoint.entries if DTYPES[e.dtype].is_block_quantized and e.dtype not in held]
    if quantized:
        kinds = ", ".join(sorted({e.dtype for e in quantized}))
        raise UsageError(
            f"{checkpoint.label}: {len(quantized)} tensors are block-quantized ({kinds}, e.g. "
            f"{quantized[0].name}), which {fmt.title} cannot store"
        )
