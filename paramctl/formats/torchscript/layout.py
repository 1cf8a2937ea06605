"""What marks a TorchScript archive among zips: ``constants.pkl`` and ``code/`` beside its
``data.pkl``; kept apart from the reader so that detecting one costs no imports.

>>> is_torchscript(["m/data.pkl", "m/constants.pkl", "m/code/__torch__.py"])
True
>>> is_torchscript(["m/data.pkl", "m/data/0"])
False
"""

from __future__ import annotations

from collections.abc import Sequence

NAME = "torchscript"


def is_torchscript(members: Sequence[str]) -> bool:
    """Whether a zip's members are a TorchScript archive's: ``constants.pkl`` and ``code/``."""
    roots = {name[: -len("constants.pkl")] for name in members if name.endswith("/constants.pkl")}
    return any(f"{root}data.pkl" in members and f"{root}code/" in n for root in roots for n in members)
