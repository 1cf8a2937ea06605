"""How ``paramctl shared`` looks: one row per name, numbered by group, the summary last.

>>> [column.key for column in SHARED_COLUMNS][:3]
['group', 'relation', 'name']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramctl.render.columns import BYTES, DTYPE, NAME, SHAPE
from paramctl.render.engine import Column, Report

if TYPE_CHECKING:
    from paramctl.inspect.sharing import SharingReport

SHARED_COLUMNS = [
    Column("group", "group", "right"),
    Column("relation", "relation", style="magenta"),
    NAME,
    SHAPE,
    DTYPE,
    BYTES,
    Column("storage", "storage"),
    Column("start", "start", "right"),
    Column("end", "end", "right"),
    Column("view", "view", "right"),
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
    )
