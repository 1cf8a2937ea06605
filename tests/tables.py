"""Reading back what a person sees: the cells of a Rich table, and names folded over lines."""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass
class Drawn:
    """A boxed table as printed: its header cells and, per body line, its cells."""

    headers: list[str]
    lines: list[list[str]]

    def column(self, index: int) -> list[str]:
        return [cells[index] for cells in self.lines]

    def folded(self, index: int) -> str:
        """The column's text over all body lines, joined: folded names come back whole."""
        return "".join(cell.strip() for cell in self.column(index))


def read_table(text: str) -> Drawn:
    """The first boxed table in ``text`` (a heavy head, light body). Cells are cut where
    the top rule has its joints, so a cell may hold box characters of its own (a tree)."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.lstrip().startswith("┏"))
    joints = [i for i, char in enumerate(lines[top]) if char in "┏┳┓"]

    def cells(line: str) -> list[str]:
        return [line[start + 1 : end] for start, end in itertools.pairwise(joints)]

    headers: list[str] = []
    index = top + 1
    while lines[index].lstrip().startswith("┃"):
        parts = cells(lines[index])
        if headers:
            parts = [f"{old.strip()} {new.strip()}" for old, new in zip(headers, parts, strict=True)]
        headers = parts
        index += 1
    body = []
    for line in lines[index + 1 :]:
        if line.lstrip().startswith("└"):
            break
        body.append(cells(line))
    return Drawn([h.strip() for h in headers], body)


def assert_fits(text: str, width: int) -> None:
    """No line is wider than the terminal, and nothing was cut short with an ellipsis."""
    from rich.cells import cell_len

    assert "…" not in text
    too_wide = [line for line in text.splitlines() if cell_len(line) > width]
    assert too_wide == []


def assert_no_empty_column(drawn: Drawn) -> None:
    for index, header in enumerate(drawn.headers):
        assert header, f"column {index} has no header"
        assert any(cell.strip() for cell in drawn.column(index)), f"column {header!r} is empty"
