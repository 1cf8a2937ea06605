"""Comparing checkpoints: two files (``paramctl diff A B``), or a file and the model it
should load into (``paramctl diff A --model SPEC``).

- :mod:`paramctl.compare.names`: which names the two sides share, after a renaming;
- :mod:`paramctl.compare.values`: two tensors' values compared chunk by chunk;
- :mod:`paramctl.compare.diff`: the whole comparison, :class:`CheckpointDiff`;
- :mod:`paramctl.compare.fit`: a checkpoint against a model's state_dict, and the renaming
  that makes it fit.
"""

from paramctl.compare.diff import CheckpointDiff, TensorChange, diff_checkpoints
from paramctl.compare.values import Tolerance, ValueDiff

__all__ = ["CheckpointDiff", "TensorChange", "Tolerance", "ValueDiff", "diff_checkpoints"]
