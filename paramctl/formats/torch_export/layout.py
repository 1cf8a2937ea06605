"""What marks a torch.export archive among zips: an ``archive_format`` record beside a
``models/`` folder; kept apart from the reader so that detecting one costs no imports.

>>> export_root(["m/archive_format", "m/models/model.json"]), export_root(["m/data.pkl"])
('m/', None)
"""

from __future__ import annotations

from collections.abc import Sequence

NAME = "torch-export"
ARCHIVE_FORMAT = "archive_format"


def export_root(members: Sequence[str]) -> str | None:
    """The archive's root folder, when its members are a PT2 archive's."""
    for name in members:
        root, _, leaf = name.rpartition("/")
        if leaf == ARCHIVE_FORMAT and f"{root}/models/" in {n[: len(root) + 8] for n in members}:
            return f"{root}/"
    return None
