"""How ``paramctl shared`` looks: one row per name, numbered by group, the summary last.

>>> [column.key for column in SHARED_COLUMNS][:3]
['group', 'relation', 'name']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramctl.render.columns import BYTES, NAME, SHAPE, human_int, ranked
from paramctl.render.engine import Column, Report

if TYPE_CHECKING:
    from paramctl.inspect.sharing import SharingReport

SHARED_COLUMNS = [
    Column("group", "group", "right"),
    Column("relation", "relation", style="magenta", drop_rank=2),
    NAME,
    *ranked([SHAPE], {"shape": 3}),
    Column("dtype", "dtype", drop_rank=4),
    *ranked([BYTES], {"bytes": 1}),
    # A storage key is a tensor's name in safetensors: it folds like one.
    Column("storage", "storage", fold="name", drop_rank=5),
    Column("start", "start", "right", human=human_int, drop_rank=6),
    Column("end", "end", "right", human=human_int, drop_rank=6),
    Column("view", "view", "right", drop_rank=5),
]


def shared_report(report: SharingReport) -> Report:
    """One row per name, numbered by group; the summary as the footer (a note in pipes)."""
    rows = []
    for number, group in enumerate(report.groups, start=1):
        for name in group.names:
            row = name.to_dict()
            row.update(group=number, relation=group.relation, storage=group.storage)
            rows.append(row)
    return Report(
        SHARED_COLUMNS,
        rows,
        document=report.to_dict,
        title=f"{report.source} ({report.format})",
        footer=[report.summary()],
        footer_as_notes=True,
        # No sharing: the summary says so, without an empty frame above it.
        when_empty="",
    )
