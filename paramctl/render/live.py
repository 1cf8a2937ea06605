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
from paramctl.render.engine import Column, Environment, Report, as_text

if TYPE_CHECKING:
    from paramctl.live.model import LiveListing
    from paramctl.live.probe import GradProbe


def _human_grad(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else as_text(value)


def _human_yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else as_text(value)


LIVE_COLUMNS = [
    NAME,
    Column("kind", "kind"),
    SHAPE,
    DTYPE,
    NUMEL,
    BYTES,
    Column("requires_grad", "grad", human=_human_yes_no),
    Column("module", "module", style="cyan"),
    SHARED,
]

GRAD_COLUMNS = [
    NAME,
    SHAPE,
    Column("status", "status"),
    Column("grad_norm", "norm", "right", human=_human_grad),
    Column("grad_mean", "mean", "right", human=_human_grad),
    Column("grad_max_abs", "max |g|", "right", human=_human_grad),
    Column("grad_zeros", "zeros", "right", human=human_fraction),
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
        f"{len(params)} parameter names ({numel:,} distinct elements), "
        f"{len(listing.rows) - len(params)} buffer names"
    ]
    if listing.inputs:
        footer.append(f"dry forward pass with {listing.inputs}")
    if listing.materialized:
        footer.append(f"materialized by it: {', '.join(listing.materialized)}")
    if listing.lazy:
        footer.append(
            f"{len(listing.lazy)} uninitialized (lazy) tensors; --input-shape gives them their shapes"
        )
    title = listing.origin + (f", loaded from {listing.loaded_from}" if listing.loaded_from else "")
    return Report(LIVE_COLUMNS, rows, document=listing.to_dict, title=title, footer=footer)


def live_tree_rows(listing: LiveListing) -> list[dict[str, Any]]:
    """The rows ``list --model --tree`` groups: a lazy tensor counts as empty."""
    return [{**row.to_dict(), "numel": row.numel or 0, "bytes": row.nbytes or 0} for row in listing.rows]


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
    )


def announce_globals(env: Environment, names: list[str]) -> None:
    """What a trusted load imports, on stderr, before it runs: the safety notice of ``--trust``."""
    console = env.err_console()
    console.print(
        f"paramctl: --trust: loading runs code from {len(names)} globals:", markup=False, soft_wrap=True
    )
    for name in names:
        console.print(f"  {name}", markup=False, highlight=False, soft_wrap=True)
