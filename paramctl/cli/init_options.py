"""The options of ``paramctl init`` that no other command takes.

>>> from typer.main import get_command
>>> from paramctl.cli import app
>>> init = get_command(app).commands["init"]
>>> [param.opts for param in init.params if param.name == "set_value"]
[['--set']]
"""

from __future__ import annotations

from typing import Annotated

import typer

SchemeOpt = Annotated[
    str | None,
    typer.Option(
        "--scheme",
        "-s",
        help="Where new values come from: NAME or NAME(param=value, ...), 'default', "
        "FILE.py:FUNC or MODULE:FUNC (schemes below).",
        show_default=False,
    ),
]
SetOpt = Annotated[
    float | None, typer.Option("--set", help="Set every value to X (constant(val=X)).", show_default=False)
]
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from", help="Copy the same-named tensors from this checkpoint.", show_default=False, metavar="FILE"
    ),
]
RenameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rename",
        help="With --from: rewrite source names by regex, FROM=TO (repeatable, applied in order).",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    float | None, typer.Option("--scale", help="Multiply the values by X (after any new values).")
]
AddOpt = Annotated[float | None, typer.Option("--add", help="Add X to the values (after --scale).")]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help="Seed of the torch.Generator shared by the tensors, in file order."),
]
SkipIncompatibleOpt = Annotated[
    bool,
    typer.Option(
        "--skip-incompatible", help="Leave tensors the change cannot fill unchanged instead of failing."
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", help="Write here (replaced atomically).", show_default=False, metavar="PATH"
    ),
]
InPlaceOpt = Annotated[bool, typer.Option("--in-place", "-i", help="Replace the input file (atomically).")]
BackupOpt = Annotated[bool, typer.Option("--backup", help="With --in-place: keep the old file as PATH.bak.")]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", "-n", help="Show what would change (and the inferred layers); write nothing."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]
ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report",
        help="Show the table of every changed tensor, also on a terminal when more than 20 change "
        "(there one line says what changed).",
    ),
]
