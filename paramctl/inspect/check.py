"""``paramctl check``: verify a checkpoint for scripts and CI.

Three layers, each reported as findings rather than stopping at the first:

1. The container. PyTorch zip: every record is read through :mod:`zipfile`, which checks
   its CRC-32 (``torch.load`` does not, so a flipped bit in tensor data loads silently).
   safetensors: the header's entries must cover the data section exactly, in order, with
   no hole, overlap, offset past the end, or size that disagrees with the shape (what the
   reference loader demands). The legacy format carries no checksums.
2. The metadata: the file must read as a checkpoint.
3. The values: NaN or Inf anywhere is an error, each name listed. A floating-point weight
   of two or more dimensions whose values are all zero, or all one constant, is a warning
   (an initialisation that never ran, an overwritten layer); "weights" are the tensors of
   the model dict (``state_dict`` and the like, or ``key``), so optimizer state that is
   legitimately zero raises none.

Errors make the check fail; warnings do too when ``strict``.
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paramctl.checkpoint import Checkpoint, TensorEntry, join_path, model_view
from paramctl.dtypes import BY_SAFETENSORS_CODE, dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats import (
    STDIN,
    STDIN_LABEL,
    detect_format,
    read_checkpoint,
    safetensors,
    spool_stdin,
    torch_zip,
)
from paramctl.select import Selection, select
from paramctl.stats import checkpoint_stats, work_bytes

Severity = Literal["error", "warning"]
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, which check found it, the tensor or record, and what it is."""

    severity: Severity
    check: str
    name: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "name": self.name, "message": self.message}

    def line(self) -> str:
        """The finding as one line of text.

        >>> Finding("error", "nan", "0.weight", "2 NaN among 12 values").line()
        'error: nan: 0.weight: 2 NaN among 12 values'
        """
        where = f"{self.name}: " if self.name else ""
        return f"{self.severity}: {self.check}: {where}{self.message}"


@dataclass
class CheckResult:
    """All findings about one file, and how much of it was examined."""

    source: str
    format: str
    findings: list[Finding] = field(default_factory=list)
    tensors: int = 0
    value_bytes: int = 0
    records: int = 0
    checked: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def passed(self, strict: bool = False) -> bool:
        return self.errors == 0 and (not strict or self.warnings == 0)

    def add(self, severity: Severity, check: str, name: str, message: str) -> None:
        self.findings.append(Finding(severity, check, name, message))

    def summary(self) -> str:
        from paramctl.units import format_bytes

        parts = [f"{self.errors} error{'s' * (self.errors != 1)}"]
        parts.append(f"{self.warnings} warning{'s' * (self.warnings != 1)}")
        scope = f"{self.tensors} tensors ({format_bytes(self.value_bytes)} of values)"
        if self.records:
            scope += f", {self.records} zip records"
        return f"{', '.join(parts)} in {scope}; checked: {', '.join(self.checked) or 'nothing'}"

    def to_dict(self, strict: bool = False) -> dict[str, Any]:
        return {
            "file": self.source,
            "format": self.format,
            "ok": self.passed(strict),
            "errors": self.errors,
            "warnings": self.warnings,
            "tensors": self.tensors,
            "value_bytes": self.value_bytes,
            "zip_records": self.records,
            "checked": self.checked,
            "findings": [finding.to_dict() for finding in self.findings],
        }


def check_checkpoint(
    source: str | Path,
    *,
    selection: Selection = Selection(),
    key: str | None = None,
    values: bool = True,
    on_progress: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> CheckResult:
    """Check the file at ``source`` (``"-"`` reads standard input).

    Values are checked for every tensor in the file (``key`` narrows to one sub-dict,
    ``selection`` to some names). Raises only when the file cannot be opened or is no
    checkpoint at all; damage inside one is reported as findings.
    """
    label = STDIN_LABEL if str(source) == STDIN else str(source)
    path = spool_stdin() if str(source) == STDIN else Path(source)
    reader = detect_format(path)
    result = CheckResult(label, reader.FORMAT)
    checkpoint: Checkpoint | None = None
    failure = ""
    try:
        checkpoint = read_checkpoint(path, on_note=on_note)
        checkpoint.label = label
    except CorruptCheckpoint as exc:
        failure = str(exc).replace(str(path), label)
    if reader.FORMAT == "torch-zip":
        _check_zip(path, result, _record_owners(checkpoint), on_progress)
    elif reader.FORMAT == "safetensors":
        _check_safetensors_layout(path, result)
    if checkpoint is None:
        if not (reader.FORMAT == "safetensors" and result.errors):
            result.add("error", "read", "", failure)
        return result
    result.checked.append("metadata")
    if values:
        _check_values(checkpoint, result, selection, key, on_progress)
    return result


# -- the container ------------------------------------------------------------------------


def _check_zip(
    path: Path,
    result: CheckResult,
    owners: dict[str, str],
    on_progress: Callable[[int], None] | None,
) -> None:
    """Read every record to its end; zipfile compares each CRC-32 when a record is done."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        result.add("error", "zip", "", f"the archive is damaged or truncated ({exc})")
        return
    result.checked.append("zip CRC-32")
    with archive:
        root = ""
        with contextlib.suppress(CorruptCheckpoint):
            root = torch_zip.find_root(archive.namelist())
        for info in archive.infolist():
            result.records += 1
            name = info.filename
            try:
                with archive.open(info) as record:
                    while chunk := record.read(_READ_CHUNK):
                        if on_progress:
                            on_progress(len(chunk))
            except zipfile.BadZipFile as exc:
                detail = "CRC-32 mismatch: its bytes changed after writing" if "CRC" in str(exc) else str(exc)
                owner = owners.get(name.removeprefix(root))
                result.add("error", "crc", name, detail + (f" (tensor {owner})" if owner else ""))
            # zipfile raises NotImplementedError for compression methods it cannot decode.
            except (OSError, EOFError, NotImplementedError, zlib.error) as exc:
                result.add("error", "zip", name, f"cannot be read ({exc})")


def _record_owners(checkpoint: Checkpoint | None) -> dict[str, str]:
    """Record name below the archive root -> the tensor names on that storage."""
    owners: dict[str, list[str]] = {}
    for entry in checkpoint.entries if checkpoint is not None else ():
        owners.setdefault(f"data/{entry.storage_key}", []).append(entry.name)
    return {record: ", ".join(names) for record, names in owners.items()}


def _check_safetensors_layout(path: Path, result: CheckResult) -> None:
    """Each entry well-formed, and the entries tiling the data section exactly."""
    try:
        header, _, data_length = safetensors.read_header(path)
    except CorruptCheckpoint as exc:
        result.add("error", "header", "", str(exc))
        return
    result.checked.append("safetensors layout")
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == safetensors.METADATA_KEY:
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                result.add("error", "header", name, "must map strings to strings")
            continue
        span = _safetensors_span(name, info, data_length, result)
        if span is not None:
            spans.append((*span, name))
    spans.sort()
    position, previous = 0, ""
    for start, end, name in spans:
        if start > position:
            after = f" after {previous}" if previous else " at the start"
            result.add("error", "coverage", name, f"a hole of {start - position} bytes{after}")
        elif start < position:
            result.add("error", "coverage", name, f"overlaps {previous} by {position - start} bytes")
        position, previous = max(position, end), name
    if position < data_length and spans:
        result.add("error", "coverage", "", f"{data_length - position} bytes after the last tensor")


def _safetensors_span(name: str, info: Any, data_length: int, result: CheckResult) -> tuple[int, int] | None:
    try:
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        begin, end = offsets
    except (KeyError, TypeError, ValueError):
        result.add("error", "header", name, "needs dtype, shape and two data_offsets")
        return None
    element = BY_SAFETENSORS_CODE.get(code) if isinstance(code, str) else None
    if element is None:
        result.add("error", "header", name, f"unknown dtype {code!r}")
        return None
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        result.add("error", "header", name, f"bad shape {shape!r}")
        return None
    if not (isinstance(begin, int) and isinstance(end, int)) or not 0 <= begin <= end:
        result.add("error", "offsets", name, f"bad data offsets {offsets!r}")
        return None
    if end > data_length:
        result.add(
            "error",
            "offsets",
            name,
            f"data offsets [{begin}, {end}] run past the {data_length} bytes of data",
        )
        return None
    numel = 1
    for size in shape:
        numel *= size
    if end - begin != numel * element.itemsize:
        result.add(
            "error",
            "offsets",
            name,
            f"data offsets span {end - begin} bytes, the shape needs {numel * element.itemsize}",
        )
    return begin, end


# -- the values ---------------------------------------------------------------------------


def _check_values(
    checkpoint: Checkpoint,
    result: CheckResult,
    selection: Selection,
    key: str | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    entries = select(model_view(checkpoint, key=key, all_tensors=key is None).entries, selection)
    result.tensors = len(entries)
    result.value_bytes = work_bytes(entries)
    try:
        all_stats = checkpoint_stats(checkpoint, entries, on_progress=on_progress)
    except CorruptCheckpoint as exc:
        # Not damage (a compressed record, big-endian data): the values just go unchecked.
        result.add("warning", "values", "", f"tensor values not checked: {exc}")
        return
    result.checked.append("values")
    # Constant matrices are suspicious among the model's weights, not in optimizer state.
    weights = {join_path(e.path) for e in model_view(checkpoint, key=key).entries}
    for entry, stats in zip(entries, all_stats, strict=True):
        if not stats.finite:
            counts = [f"{n:,} {label}" for n, label in ((stats.nan, "NaN"), (stats.inf, "Inf")) if n]
            check = "nan" if stats.nan else "inf"
            result.add("error", check, entry.name, f"{' and '.join(counts)} among {stats.numel:,} values")
        elif _is_matrix(entry) and stats.constant and join_path(entry.path) in weights:
            if stats.max == 0:
                result.add("warning", "zeros", entry.name, f"all {stats.numel:,} values are zero")
            else:
                result.add("warning", "constant", entry.name, f"all {stats.numel:,} values are {stats.max!r}")


def _is_matrix(entry: TensorEntry) -> bool:
    """A floating-point weight of two or more dimensions, where a constant is suspicious."""
    return len(entry.shape) >= 2 and entry.numel > 1 and dtype(entry.dtype).is_floating
