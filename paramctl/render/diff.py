"""How ``paramctl diff`` looks: one row per name that differs, the summary last; and the
report of a checkpoint fitted to a model (``diff A --model SPEC``), with the command that
renames it to fit.

>>> change_words(["dtype", "values"]), change_words(["only_a"])
('dtype, values', 'only in A')
>>> pair_text([3, 4], [3, 4], format_shape), pair_text("float32", "bfloat16", str)
('[3, 4]', 'float32 → bfloat16')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paramctl.render.columns import NAME, compact_int, human_int, human_names, human_stat
from paramctl.render.engine import Column, OutputFormat, Report, format_shape

if TYPE_CHECKING:
    from paramctl.compare.diff import CheckpointDiff
    from paramctl.compare.fit import ModelFit

_WORDS = {"only_a": "only in A", "only_b": "only in B"}


def change_words(kinds: list[str]) -> str:
    return ", ".join(_WORDS.get(kind, kind) for kind in kinds)


def pair_text(a: Any, b: Any, show: Callable[[Any], str]) -> str:
    """One value where both sides agree (or one has none), else ``a → b``."""
    if a is None or b is None or a == b:
        return show(a if b is None else b)
    return f"{show(a)} → {show(b)}"


def _ties(a: list[str], b: list[str]) -> str:
    if a == b:
        return ""
    return f"{human_names(a) or 'none'} → {human_names(b) or 'none'}"


def _stat(value: Any) -> str:
    return "" if value is None else human_stat(value)


def _count(key: str, header: str, rank: int) -> Column:
    return Column(key, header, "right", human=human_int, compact=compact_int, drop_rank=rank)


_CHANGE = Column("change", "change", human=change_words, style="yellow")
DIFF_COLUMNS = [
    NAME,
    _CHANGE,
    Column("name_a", "name in A", fold="name", drop_rank=6),
    Column("shape_a", "shape_a", plain=format_shape),
    Column("shape_b", "shape_b", plain=format_shape),
    Column("dtype_a", "dtype_a"),
    Column("dtype_b", "dtype_b"),
    _count("numel", "numel", 0),
    _count("differing", "differing", 0),
    Column("max_abs", "max_abs", "right", human=human_stat),
    Column("rel_l2", "rel_l2", "right", human=human_stat),
    Column("ties_a", "ties_a"),
    Column("ties_b", "ties_b"),
]
# A person sees each pair as one cell; the least telling columns give way first.
DIFF_TABLE_COLUMNS = [
    NAME,
    _CHANGE,
    Column("shape", "shape", fold="words", drop_rank=4),
    Column("dtype", "dtype", fold="words", drop_rank=5),
    _count("differing", "differ", 3),
    Column("max_abs", "max|a-b|", "right", human=_stat, drop_rank=1),
    Column("rel_l2", "rel L2", "right", human=_stat, drop_rank=2),
    Column("ties", "tied to", fold="words", drop_rank=6),
]


def diff_report(diff: CheckpointDiff, fmt: OutputFormat) -> Report:
    """The changes as rows (names only with ``--format names``), the summary as the footer."""
    rows = [change.to_dict() for change in diff.changes]
    if fmt is OutputFormat.table:
        for row in rows:
            row["shape"] = pair_text(row["shape_a"], row["shape_b"], format_shape)
            row["dtype"] = pair_text(row["dtype_a"], row["dtype_b"], str)
            row["ties"] = _ties(row["ties_a"], row["ties_b"])
    title = f"A {diff.a} ({diff.format_a})\nB {diff.b} ({diff.format_b})"
    return Report(
        DIFF_COLUMNS,
        rows,
        document=diff.to_dict,
        title=title,
        footer=[diff.summary()],
        footer_as_notes=True,
        rows_key="changes",
        when_empty="",
        table_columns=DIFF_TABLE_COLUMNS if fmt is OutputFormat.table else None,
    )


FIT_COLUMNS = [
    NAME,
    Column("problem", "problem", style="yellow"),
    Column("checkpoint_name", "in the checkpoint", fold="name", drop_rank=3),
    Column("checkpoint_shape", "checkpoint shape", plain=format_shape, human=format_shape, drop_rank=2),
    Column("model_shape", "model shape", plain=format_shape, human=format_shape, drop_rank=1),
]


def fit_rows(fit: ModelFit) -> list[dict[str, Any]]:
    """One row per name that keeps the checkpoint from loading, once renamed."""
    rows: list[dict[str, Any]] = [
        {"name": m.name, "problem": "shape", "checkpoint_name": _renamed(m.name, m.checkpoint_name)}
        | {"checkpoint_shape": list(m.checkpoint_shape), "model_shape": list(m.model_shape)}
        for m in fit.mismatched
    ]
    rows += [{"name": name, "problem": "missing"} for name in fit.missing]
    rows += [
        {"name": name, "problem": "unexpected", "checkpoint_name": fit.original.get(name)}
        for name in fit.unexpected
    ]
    return rows


def _renamed(name: str, original: str) -> str | None:
    return original if original != name else None


def fit_footer(fit: ModelFit) -> list[str]:
    """The verdict, the command that renames the checkpoint, and what no renaming fixes."""
    lines = [fit.summary()]
    command = fit.command()
    if command:
        verb = "renamed" if fit.found else "renaming given"
        lines.append(f"{verb}: {' '.join(fit.renaming.options())}; write the renamed checkpoint with:")
        lines.append(f"  {command}")
    if fit.mismatched:
        lines.append(
            "no renaming fixes a shape mismatch: leave those tensors out (convert --exclude) "
            "and load with strict=False, or build the model with their shapes"
        )
    return lines


def fit_report(fit: ModelFit) -> Report:
    """What stands between the checkpoint and the model, and the fix."""
    return Report(
        FIT_COLUMNS,
        fit_rows(fit),
        document=fit.to_dict,
        title=f"{fit.source} against {fit.model}",
        footer=fit_footer(fit),
        footer_as_notes=True,
        when_empty="",
    )
