"""Reinitialize, edit or copy tensors of a checkpoint and write it back: ``paramctl init``.

Data flows one way, a module per step:

1. :mod:`~paramctl.change.vocabulary`: a :class:`Change` says what happens to each selected
   tensor: new values from an :class:`~paramctl.schemes.catalog.InitScheme` or from another
   checkpoint (:func:`copy_source`, ``--from``/``--rename``), then optionally an
   :class:`Edit` (``value * scale + add``).
2. :mod:`~paramctl.change.plan`: :func:`plan_change` checks it against the selected
   entries and says what fills each one, reading no values (``--dry-run`` shows the
   :class:`Plan`).
3. :mod:`~paramctl.change.fill`: :func:`apply_plan` produces the new values one tensor at
   a time, in file order, with one ``torch.Generator`` (:func:`generator_for` a seed from
   :func:`draw_seed`), into a storage editor.
4. :mod:`~paramctl.change.write`: :func:`write_changes` runs step 3 for one or more plans
   into an output file, converting to another format if asked; :func:`save_changes` adds
   the destination; :func:`reinit` is one plan with its seed.

Importing this package does not import torch; filling values does.

>>> from paramctl.change import Change
>>> from paramctl.schemes.catalog import make_scheme
>>> Change(scheme=make_scheme("normal", std=0.01)).describe()
'normal(mean=0.0, std=0.01)'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paramctl.change.fill import (
        ChangedTensor,
        Randomness,
        apply_plan,
        draw_seed,
        edit_,
        fill_,
        generator_for,
        mean_std,
    )
    from paramctl.change.plan import (
        Plan,
        PlannedTensor,
        Refusals,
        Skipped,
        incompatibility,
        plan_change,
        value_kind,
    )
    from paramctl.change.vocabulary import (
        Change,
        CopySource,
        Edit,
        copy_source,
        parse_rename,
        rename,
        some_names,
    )
    from paramctl.change.write import (
        InitResult,
        provenance_record,
        reinit,
        save_changes,
        write_changes,
        write_record,
    )

# Each name loads its module on first use: `paramctl list` imports change.destination,
# which must not pay for the planning and scheme machinery.
_HOMES = {
    "fill": (
        "ChangedTensor",
        "Randomness",
        "apply_plan",
        "draw_seed",
        "edit_",
        "fill_",
        "generator_for",
        "mean_std",
    ),
    "plan": ("Plan", "PlannedTensor", "Refusals", "Skipped", "incompatibility", "plan_change", "value_kind"),
    "vocabulary": ("Change", "CopySource", "Edit", "copy_source", "parse_rename", "rename", "some_names"),
    "write": ("InitResult", "provenance_record", "reinit", "save_changes", "write_changes", "write_record"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'paramctl.change' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"paramctl.change.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Change",
    "ChangedTensor",
    "CopySource",
    "Edit",
    "InitResult",
    "Plan",
    "PlannedTensor",
    "Randomness",
    "Refusals",
    "Skipped",
    "apply_plan",
    "copy_source",
    "draw_seed",
    "edit_",
    "fill_",
    "generator_for",
    "incompatibility",
    "mean_std",
    "parse_rename",
    "plan_change",
    "provenance_record",
    "reinit",
    "rename",
    "save_changes",
    "some_names",
    "value_kind",
    "write_changes",
    "write_record",
]
