"""Tables that fit the terminal.

A tensor name is never cut: it folds, at dots where it can. A column empty in every row is
left out. When the columns do not fit, in this order: a column that says the same in every
row goes (``dtype`` when all are float32); names fold down to a third of the width and long
headers wrap; numbers take their compact form (``1.23M``) and the least important columns
are hidden, highest :attr:`~paramctl.render.engine.Column.drop_rank` first. A note names
what was hidden. When even the columns that are never hidden do not fit, each row becomes
a block: the name on its own line, its values under it.

Rich draws the table; it would shorten cells with ``…`` to make them fit, so the widths
are decided here and handed to it fixed.

>>> fold_name("encoder.layers.0.self_attn.in_proj_weight", 20)
['encoder.layers.0.', 'self_attn.', 'in_proj_weight']
>>> from paramctl.render.engine import Column
>>> columns = [Column("name", "name", fold="name"), Column("note", "note", drop_rank=1)]
>>> layout = fit_layout(columns, [{"name": "a.b", "note": "x" * 30}], width=20)
>>> [c.key for c in layout.columns], [c.key for c in layout.hidden]
(['name'], ['note'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paramctl.render.engine import Column, Report, as_text, escape_control, escape_lines

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

# Names fold no narrower than this share of the width before other columns are hidden.
_NAME_SHARE = 3
_SEGMENT = re.compile(r"[^.]*\.|[^.]+")  # a dotted name's parts, each keeping its dot


def fold_name(name: str, width: int) -> list[str]:
    """``name`` in lines of at most ``width`` cells, broken after dots; a part longer than
    a line is broken inside it (nothing is ever dropped)."""
    from rich.cells import cell_len, chop_cells

    lines: list[str] = []
    line = ""
    for part in _SEGMENT.findall(name) or [""]:
        if line and cell_len(line) + cell_len(part) > width:
            lines.append(line)
            line = ""
        if cell_len(part) > width:
            *full, part = chop_cells(line + part, max(width, 1))
            lines += full
            line = ""
        line += part
    return [*lines, line]


def wrap_words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces (a word longer than a
    line folds like a name)."""
    from rich.cells import cell_len

    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if line and cell_len(candidate) > width:
            lines.append(line)
            candidate = word
        if cell_len(candidate) > width:
            *full, candidate = fold_name(candidate, width)
            lines += full
        line = candidate
    return [*lines, line]


def pack(items: Sequence[str], width: int, gap: str = "   ") -> list[str]:
    """``items`` side by side in lines of at most ``width`` cells; an item is split (at
    spaces) only when it is longer than a line."""
    from rich.cells import cell_len

    lines: list[str] = []
    line = ""
    for item in items:
        if line and cell_len(line + gap + item) <= width:
            line += gap + item
            continue
        if line:
            lines.append(line)
        *full, line = wrap_words(item, width)
        lines += full
    return [*lines, line] if line else lines


def _longest(texts: Sequence[str], pattern: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(part) for text in texts for part in re.findall(pattern, text)), default=0)


def _fold(column: Column, text: str, width: int) -> list[str]:
    if column.fold == "name":
        return fold_name(text, width)
    return wrap_words(text, width) if column.fold == "words" else [text]


@dataclass
class _Sized:
    """One column while the layout is decided: its texts and the widths it can take."""

    column: Column
    texts: list[str]
    natural: int = 0  # on one line each
    least: int = 0  # folded as far as it goes
    width: int = 0

    def measure(self) -> None:
        from rich.cells import cell_len

        column = self.column
        self.natural = max([cell_len(column.header), *(cell_len(text) for text in self.texts)])
        words = _longest([column.header], r"\S+")
        if column.fold == "name":
            self.least = max(words, _longest(self.texts, _SEGMENT.pattern))
        elif column.fold == "words":
            self.least = max(words, _longest(self.texts, r"\S+"))
        else:
            self.least = max([words, *(cell_len(text) for text in self.texts)])
        self.width = self.natural


@dataclass
class Layout:
    """How a table fits: the columns shown with their widths and texts, those hidden, or
    ``narrow`` (a block per row)."""

    columns: list[Column]
    widths: list[int]
    texts: list[list[str]]  # per column, one text per row
    hidden: list[Column] = field(default_factory=list)
    narrow: bool = False


def _text(column: Column, value: Any, compact: bool) -> str:
    render = (column.compact if compact else None) or column.human or as_text
    return escape_control(render(value))


def _total(sized: Sequence[_Sized]) -> int:
    # Rich's padding of one cell each side, and a rule between columns and at both edges.
    return sum(item.width for item in sized) + 3 * len(sized) + 1


def _squeeze(sized: list[_Sized], width: int, *, hide: bool) -> list[_Sized]:
    """Fold names to their share of the width and wrap headers; with ``hide``, then hide
    columns by rank, and fold names all the way."""
    for item in sized:
        item.width = item.least
        if item.column.fold == "name":
            item.width = max(item.least, min(item.natural, width // _NAME_SHARE))
    kept = list(sized)
    while hide and _total(kept) > width:
        droppable = [item for item in kept if item.column.drop_rank > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda item: (item.column.drop_rank, kept.index(item))))
    if hide and _total(kept) > width:
        for item in kept:
            item.width = item.least
    return kept


def _widen(kept: list[_Sized], width: int) -> None:
    """Give the room left to folded names first, then to wrapped headers and texts."""
    for folds in (True, False):
        for item in kept:
            if (item.column.fold == "name") == folds:
                item.width += max(0, min(item.natural - item.width, width - _total(kept)))


def fit_layout(columns: Sequence[Column], rows: Sequence[dict[str, Any]], width: int) -> Layout:
    """Decide which ``columns`` a table of ``rows`` shows at ``width``, and how wide each is:
    as they are; else without the columns that say the same in every row; else with names
    folded and headers wrapped; else with numbers in their compact form and the least
    important columns hidden; else as blocks."""
    every = [_Sized(c, [_text(c, row.get(c.key), False) for row in rows]) for c in columns]
    if rows:
        every = [item for item in every if any(item.texts)]
    for item in every:
        item.measure()
    if _total(every) <= width:
        return _layout(every)
    sized, uniform = list(every), []
    same = [i for i in every if i.column.drop_rank and len(rows) > 1 and len(set(i.texts)) == 1]
    for item in sorted(same, key=lambda i: -i.column.drop_rank):
        if _total(sized) > width:
            sized.remove(item)
            uniform.append(item)
    if _total(sized) <= width:
        return _layout(sized, [item for item in every if item in uniform])
    kept = _squeeze(sized, width, hide=False)
    if _total(kept) > width:
        for item in every:
            if item.column.compact is not None:
                item.texts = [_text(item.column, row.get(item.column.key), True) for row in rows]
                item.measure()
        kept = _squeeze(sized, width, hide=True)
    if _total(kept) > width:
        for item in every:  # a block per row has room for every number in full
            item.texts = [_text(item.column, row.get(item.column.key), False) for row in rows]
        return _layout(every, narrow=True)
    _widen(kept, width)
    return _layout(kept, [item for item in every if item not in kept])


def _layout(sized: Sequence[_Sized], hidden: Sequence[_Sized] = (), *, narrow: bool = False) -> Layout:
    columns, widths, texts = [i.column for i in sized], [i.width for i in sized], [i.texts for i in sized]
    shown = set(map(id, sized))
    return Layout(columns, widths, texts, [i.column for i in hidden if id(i) not in shown], narrow)


def hidden_note(hidden: Sequence[Column]) -> str:
    """The line saying which columns a narrow terminal hid, and how to see them."""
    groups = {column.group for column in hidden}
    kind = f"{groups.pop()} columns" if len(groups) == 1 and None not in groups else "columns"
    headers = ", ".join(column.header for column in hidden)
    return f"({kind} hidden: {headers} — widen the terminal or use --format tsv)"


def draw_table(report: Report, console: Console) -> None:
    """Print ``report``'s rows as a table that fits ``console``, or as blocks when none does."""
    layout = fit_layout(report.table_columns or report.columns, report.rows, console.width)
    if layout.narrow:
        console.print(_blocks(report, layout, console.width))
        return
    console.print(_rich_table(report, layout))
    if layout.hidden:
        from rich.text import Text

        console.print(Text(hidden_note(layout.hidden), style="dim"))


def _rich_table(report: Report, layout: Layout) -> RenderableType:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    title = Text(escape_lines(report.title)) if report.title else None
    caption = Text(report.caption) if report.caption else None
    table = Table(title=title, caption=caption, caption_justify="left", box=box.HEAVY_HEAD)
    for column, width in zip(layout.columns, layout.widths, strict=True):
        header = "\n".join(wrap_words(column.header, width))
        table.add_column(
            header,
            justify=column.justify,  # type: ignore[arg-type]
            style=column.style,
            width=width,
            no_wrap=True,
            overflow="fold",
        )
    for row in range(len(report.rows)):
        cells = [
            Text("\n".join(_fold(column, texts[row], width)))
            for column, width, texts in zip(layout.columns, layout.widths, layout.texts, strict=True)
        ]
        table.add_row(*cells)
    return table


def _blocks(report: Report, layout: Layout, width: int) -> RenderableType:
    """The narrow layout: per row, the name alone on its line, then ``header value`` pairs."""
    from rich.console import Group
    from rich.text import Text

    names = next((i for i, c in enumerate(layout.columns) if c.fold == "name"), 0)
    parts: list[RenderableType] = []
    if report.title:
        parts.append(Text(escape_lines(report.title), style="bold"))
    for row in range(len(report.rows)):
        name = layout.texts[names][row]
        parts += [Text(line, style="bold") for line in fold_name(name, width)]
        pairs = [
            f"{column.header} {texts[row]}"
            for i, (column, texts) in enumerate(zip(layout.columns, layout.texts, strict=True))
            if i != names and texts[row]
        ]
        parts += [Text("  " + line) for line in pack(pairs, max(width - 2, 1))]
    if report.caption:
        parts.append(Text(report.caption))
    return Group(*parts)
