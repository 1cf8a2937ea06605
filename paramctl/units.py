"""Sizes and counts in words: what library summaries and the views both print.

Kept apart from :mod:`paramctl.render` so a library result can describe itself in one
line without importing the presentation.

>>> format_bytes(48), format_bytes(4096), format_bytes(3 * 2**30)
('48 B', '4.00 KiB', '3.00 GiB')
>>> plural(1, "tensor"), plural(1024, "finite value"), plural(2, "match", "matches")
('1 tensor', '1,024 finite values', '2 matches')
"""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(size: int) -> str:
    """Binary units, three significant figures.

    >>> format_bytes(1023), format_bytes(150 * 2**20), format_bytes(2**50)
    ('1023 B', '150 MiB', '1.02e+03 TiB')
    """
    if abs(size) < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS[1:]:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.3g} {unit}" if value >= 100 else f"{value:.2f} {unit}"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, in the plural unless it is one (``many`` if not ``noun + s``)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
