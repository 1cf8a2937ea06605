"""``paramctl convert``: write a checkpoint in another format, streaming one tensor at a time.

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> folder = tempfile.mkdtemp()
>>> torch.save({"module.w": torch.ones(2)}, os.path.join(folder, "m.pt"))
>>> out = os.path.join(folder, "m.safetensors")
>>> args = ["convert", os.path.join(folder, "m.pt"), out, "--strip-prefix", "module.", "-f", "tsv"]
>>> result = CliRunner().invoke(app, args)
>>> result.stdout.splitlines()[0]
'source\\toutput\\tformat\\ttensors\\tbytes\\tfiles'
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from paramctl.cli import options
from paramctl.convert.plan import CAST_DTYPES

CastDType = Enum("CastDType", {name: name for name in CAST_DTYPES}, type=str)  # type: ignore[misc]

SourceArg = Annotated[
    str,
    typer.Argument(
        help="Checkpoint to convert: a file, a directory holding one, or - for standard input.",
        metavar="SRC",
        show_default=False,
    ),
]
DestinationArg = Annotated[
    str,
    typer.Argument(
        help="Where to write: a file, or a directory for a sharded or DCP checkpoint.",
        metavar="DST",
        show_default=False,
    ),
]
ToOpt = Annotated[
    options.WriteFormat | None,
    typer.Option(
        "--to", help="Output format [default: DST's suffix's, else the input's].", show_default=False
    ),
]
RenameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rename",
        help="Rename tensors: 'REGEX=REPLACEMENT' as re.sub (\\1 groups), after --strip-prefix (repeatable).",
        show_default=False,
        metavar="RE=REPL",
    ),
]
StripPrefixOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--strip-prefix",
        help="Cut this prefix from names that start with it (repeatable).",
        show_default=False,
    ),
]
DTypeOpt = Annotated[
    CastDType | None,
    typer.Option(
        "--dtype",
        help="Cast floating tensors to this dtype (integers never); the selection then names "
        "the tensors cast, and every tensor is kept.",
        show_default=False,
    ),
]
MaxShardOpt = Annotated[
    str,
    typer.Option(
        "--max-shard-size", help="Largest shard of a sharded output (5GB, 500MB, 2GiB).", metavar="SIZE"
    ),
]
DropExtrasOpt = Annotated[
    bool, typer.Option("--drop-extras", help="Leave out non-tensor values the output format cannot hold.")
]


def convert_command(
    source: SourceArg,
    destination: DestinationArg,
    to: ToOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    rename: RenameOpt = None,
    strip_prefix: StripPrefixOpt = None,
    dtype: DTypeOpt = None,
    max_shard_size: MaxShardOpt = "5GB",
    drop_extras: DropExtrasOpt = False,
    output_format: options.FormatOpt = None,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Convert a checkpoint to another format, by DST's suffix or --to (which also writes
    sharded safetensors and DCP directories).

    Takes the model dict of a training checkpoint (or --key, --all); the selection
    (--match, --regex, --exclude, --names-from) picks the tensors kept; --strip-prefix and
    --rename rename them.
    Bytes are copied, not re-created; ties are kept where the format records them. What the
    output cannot hold is refused, naming the option that leaves it out.
    """
    from paramctl.convert import ConvertOptions, NameMap, convert_checkpoint, parse_size, target_format
    from paramctl.formats import read_checkpoint
    from paramctl.render.convert import convert_report
    from paramctl.render.engine import Environment, emit

    env = Environment.current()
    path = options.checkpoint_source(source)
    chosen = options.selection(match, regex, exclude, options.names_from(names_from, [path]))
    settings = ConvertOptions(
        key=key,
        all_tensors=all_tensors,
        selection=chosen,
        names=NameMap.parse(strip_prefixes=strip_prefix or (), renames=rename or ()),
        dtype=dtype.value if dtype is not None else None,
        drop_extras=drop_extras,
        max_shard_size=parse_size(max_shard_size),
    )
    checkpoint = read_checkpoint(path, on_note=env.note if verbose else None)
    fmt = target_format(destination, to.value if to is not None else None, checkpoint.format)
    result = convert_checkpoint(checkpoint, destination, fmt, settings)
    emit(convert_report(result), env.resolve(output_format), env)
