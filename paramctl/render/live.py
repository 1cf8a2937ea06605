"""How live modules look: ``list --model``, ``paramctl grads``, and ``--trust``'s notice.

>>> import io
>>> env = Environment(io.StringIO(), io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> announce_globals(env, ["collections.OrderedDict", "mynets.MLP"])
>>> print(env.stderr.getvalue(), end="")
paramctl: --trust: loading runs code from 2 globals:
  collections.OrderedDict
  mynets.MLP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paramctl.render.columns import BYTES, DTYPE, NAME, NUMEL, SHAPE, SHARED, human_fraction
from paramctl.render.engine import Column, Environment, Report, as_text, format_shape
from paramctl.units import plural

if TYPE_CHECKING:
    from paramctl.inspect.listing import SortKey
    from paramctl.live.model import LiveListing
    from paramctl.live.probe import GradProbe


def _human_grad(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else as_text(value)


def _human_yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else as_text(value)


LIVE_COLUMNS = [
    NAME,
    Column("kind", "kind", drop_rank=2),
    SHAPE,
    DTYPE,
    NUMEL,
    BYTES,
    Column("requires_grad", "grad", human=_human_yes_no, drop_rank=5),
    Column("module", "module", style="cyan", drop_rank=6),
    SHARED,
]

GRAD_COLUMNS = [
    NAME,
    Column("shape", "shape", plain=format_shape, human=format_shape, drop_rank=4),
    Column("status", "status"),
    Column("grad_norm", "norm", "right", human=_human_grad),
    Column("grad_mean", "mean", "right", human=_human_grad, drop_rank=3),
    Column("grad_max_abs", "max |g|", "right", human=_human_grad, drop_rank=2),
    Column("grad_zeros", "zeros", "right", human=human_fraction, drop_rank=5),
    SHARED,
]


def live_listing_report(listing: LiveListing) -> Report:
    """The report of ``list --model``: the module's own names, kinds and owners."""
    rows = [row.to_dict() for row in listing.rows]
    params = [row for row in listing.rows if row.kind == "parameter"]
    numel, seen = 0, set[str]()
    for row in params:
        if row.name not in seen:  # a shared parameter counts once
            numel += row.numel or 0
            seen.update((row.name, *row.shared_with))
    footer = [
        f"{plural(len(params), 'parameter name')} ({plural(numel, 'distinct element')}), "
        f"{plural(len(listing.rows) - len(params), 'buffer name')}"
    ]
    if listing.inputs:
        footer.append(f"dry forward pass with {listing.inputs}")
    if listing.materialized:
        footer.append(f"materialized by it: {', '.join(listing.materialized)}")
    if listing.lazy:
        lazy = plural(len(listing.lazy), "uninitialized (lazy) tensor")
        footer.append(f"{lazy}; --input-shape gives them their shapes")
    title = listing.origin + (f", loaded from {listing.loaded_from}" if listing.loaded_from else "")
    return Report(
        LIVE_COLUMNS, rows, document=listing.to_dict, title=title, footer=footer, rows_key="tensors"
    )


def live_tree(listing: LiveListing, depth: int | None = None, sort: SortKey = "file") -> Report:
    """``list --model --tree``: the module's names as a tree; a lazy tensor counts as empty,
    a shared parameter's bytes once per module."""
    from paramctl.inspect.tree import Leaf, module_tree
    from paramctl.render.tree import tree_report

    leaves = [
        Leaf(
            row.name,
            row.numel or 0,
            row.nbytes or 0,
            row.dtype,
            row.to_dict(),
            tie=min([row.name, *row.shared_with]),
        )
        for row in listing.rows
    ]
    return tree_report(module_tree(leaves, sort), depth=depth, title=listing.origin)


def grads_report(probe: GradProbe) -> Report:
    """The report of ``paramctl grads``: a row per distinct parameter, with its gradient."""
    counts = probe.counts()
    seed = f", seed {probe.seed}" if probe.seed is not None else ""
    footer = [
        f"loss {probe.loss} = {probe.loss_value:.6g} with {probe.inputs} ({probe.mode} mode{seed})",
        f"{counts['ok']} with gradient, {counts['unused']} unused (no gradient reached them), "
        f"{counts['frozen']} frozen (requires_grad=False)",
    ]
    return Report(
        GRAD_COLUMNS,
        [row.to_dict() for row in probe.rows],
        document=probe.to_dict,
        title=f"gradients of {probe.source}" if probe.source else "gradients",
        footer=footer,
        rows_key="parameters",
    )


def announce_globals(env: Environment, names: list[str]) -> None:
    """What a trusted load imports, on stderr, before it runs: the safety notice of ``--trust``."""
    console = env.err_console()
    console.print(
        f"paramctl: --trust: loading runs code from {plural(len(names), 'global')}:",
        markup=False,
        soft_wrap=True,
    )
    for name in names:
        console.print(f"  {name}", markup=False, highlight=False, soft_wrap=True)
