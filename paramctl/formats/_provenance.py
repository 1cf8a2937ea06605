"""Where paramctl records what it changed: one key, and the history already recorded.

>>> provenance_history({PROVENANCE_KEY: '[{"command": "init"}]'})
[{'command': 'init'}]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PROVENANCE_KEY = "paramctl"


def provenance_history(metadata: Mapping[str, str]) -> list[Any]:
    """The provenance steps already recorded in safetensors metadata, oldest first."""
    recorded = metadata.get(PROVENANCE_KEY)
    if recorded is None:
        return []
    try:
        history = json.loads(recorded)
    except json.JSONDecodeError:
        return [recorded]
    return history if isinstance(history, list) else [history]
