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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, TensorEntry, join_path, model_view
from paramctl.dtypes import dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats import (
    STDIN,
    STDIN_LABEL,
    Finding,
    Severity,
    locate,
    read_checkpoint,
    spool_stdin,
)
from paramctl.select import Selection, check_listed, select
from paramctl.stats import checkpoint_stats, work_bytes
from paramctl.units import plural


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
        """The verdict's counts: findings, what was looked at, which checks ran.

        >>> CheckResult("m.pt", "zip", tensors=1, value_bytes=4, checked=["metadata"]).summary()
        '0 errors, 0 warnings in 1 tensor (4 B of values, not read); checked: metadata'
        """
        from paramctl.units import format_bytes, plural

        parts = [plural(self.errors, "error"), plural(self.warnings, "warning")]
        read = "" if "values" in self.checked else ", not read"
        scope = f"{plural(self.tensors, 'tensor')} ({format_bytes(self.value_bytes)} of values{read})"
        if self.records:
            scope += f", {plural(self.records, 'zip record')}"
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

    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> torch.save({"w": torch.tensor([1.0, float("nan")])}, path)
    >>> [finding.line() for finding in check_checkpoint(path).findings]
    ['error: nan: w: 1 NaN among 2 values']
    """
    label = STDIN_LABEL if str(source) == STDIN else str(source)
    path = spool_stdin() if str(source) == STDIN else Path(source)
    path, fmt = locate(path)
    result = CheckResult(label, fmt.name)
    checkpoint: Checkpoint | None = None
    failure = ""
    try:
        checkpoint = read_checkpoint(path, on_note=on_note)
        checkpoint.label = label
    except CorruptCheckpoint as exc:
        failure = str(exc).replace(str(path), label)
    container = fmt.verify(path, checkpoint, on_progress)
    result.findings += container.findings
    result.checked += container.checked
    result.records = container.records
    if checkpoint is None:
        if not (container.covers_metadata and container.errors):
            result.add("error", "read", "", failure)
        return result
    result.checked.append("metadata")
    view = model_view(checkpoint, key=key, all_tensors=key is None).entries
    check_listed(selection, [entry.name for entry in view], label)
    entries = select(view, selection)
    result.tensors = len(entries)
    result.value_bytes = work_bytes(entries)
    if values:
        _check_values(checkpoint, result, entries, key, on_progress)
    return result


# -- the container ------------------------------------------------------------------------


# -- the values ---------------------------------------------------------------------------


def _check_values(
    checkpoint: Checkpoint,
    result: CheckResult,
    entries: list[TensorEntry],
    key: str | None,
    on_progress: Callable[[int], None] | None,
) -> None:
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
            among = plural(stats.numel or 0, "value")
            result.add("error", check, entry.name, f"{' and '.join(counts)} among {among}")
        elif _is_matrix(entry) and stats.constant and join_path(entry.path) in weights:
            if stats.max == 0:
                result.add("warning", "zeros", entry.name, f"all {stats.numel:,} values are zero")
            else:
                result.add("warning", "constant", entry.name, f"all {stats.numel:,} values are {stats.max!r}")


def _is_matrix(entry: TensorEntry) -> bool:
    """A floating-point weight of two or more dimensions, where a constant is suspicious."""
    return len(entry.shape) >= 2 and entry.numel > 1 and dtype(entry.dtype).is_floating
