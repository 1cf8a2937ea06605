"""The limits every reader holds a file to, so that a hostile or broken input stops at once
with :class:`~paramctl.errors.LimitExceeded` (exit code 3) instead of hanging or exhausting
memory.

Each limit sits far above what real checkpoints need (a 100,000-tensor state_dict reads in
a few seconds, well inside all of them); the README's "Limits" section lists them, and
``tests/test_limits.py`` measures real files against them. Readers of every format share
one :data:`LIMITS`; a reader that needs other numbers passes its own :class:`Limits`.

>>> LIMITS.tensors
500000
>>> check_count("the header", "tensors", 600_000, LIMITS.tensors)
Traceback (most recent call last):
paramctl.errors.LimitExceeded: the header is too large or too complex to read: 600,000 tensors; ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paramctl.errors import CheckpointIOError, CorruptCheckpoint, LimitExceeded

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint, Storage, TensorEntry


@dataclass(frozen=True)
class Limits:
    """How much work reading one file may take."""

    # A pickle (``data.pkl``, a legacy file's object pickle, a DCP ``.metadata``), as
    # stored or once inflated: this bounds its opcodes too, one byte at least each.
    pickle_bytes: int = 64 << 20
    # Memo slots a pickle may name. pickle numbers them from 0, so an index past the
    # pickle's own length is never real; this caps the table for large pickles too
    # (the C unpickler allocates two slots per index asked for).
    memo_entries: int = 1 << 23
    # Objects in the unpickled tree counted once per path that reaches them: a memo
    # entry referenced from many places ("billion laughs") multiplies paths, not bytes.
    paths: int = 10_000_000
    # Containers inside containers, in a pickle's tree or a JSON header.
    depth: int = 100
    # Named tensors in one checkpoint (of any format).
    tensors: int = 500_000
    # Bytes of one integer in a pickle (LONG1/LONG4): beyond this, Python cannot even
    # print it (sys.int_info's 4,300 digits).
    integer_bytes: int = 1024
    # Elements an allowlisted constructor (set, frozenset, bytearray, OrderedDict,
    # Counter...) may be handed in one call.
    constructor_items: int = 10_000_000
    # A safetensors header, as the reference implementation limits it.
    header_bytes: int = 100_000_000
    # JSON values (arrays, objects, numbers, strings) in one safetensors header.
    json_values: int = 8_000_000
    # Bytes of values a tensor may claim beyond the bytes it views (a stride-0 view that
    # repeats one stored element across a huge shape), for the commands that read values.
    repeated_value_bytes: int = 1 << 30
    # Elements of the arrays in one GGUF header (a tokenizer's tokens, scores, types and
    # merges: about a million in the largest vocabularies).
    metadata_elements: int = 4_000_000
    # Bytes a compressed zip record may inflate to before `check` refuses to inflate it.
    inflated_bytes: int = 1 << 30


LIMITS = Limits()


def _count(number: int) -> str:
    return f"{number:,}"


def check_count(what: str, unit: str, found: int, limit: int) -> None:
    """Raise :class:`LimitExceeded` when ``found`` ``unit`` exceed ``limit``."""
    if found > limit:
        raise LimitExceeded(what, f"{_count(found)} {unit}", f"paramctl reads at most {_count(limit)}")


def check_readable(
    checkpoint: Checkpoint, entry: TensorEntry, limits: Limits = LIMITS, *, writing: bool = False
) -> None:
    """What a value command checks before it allocates anything for ``entry``.

    Each storage holding the entry must still lie inside its file (a file cut short since
    its metadata was read would fault the memory map instead of failing), and the tensor
    may not claim more values than it views by more than ``limits.repeated_value_bytes``
    (a stride-0 view repeating four stored bytes across a shape of terabytes). ``writing``
    adds what an edit in place needs: a dense tensor, in this machine's byte order.
    """
    if checkpoint.fallback_tensors is not None:
        loaded = checkpoint.fallback_tensors.get(".".join(map(str, entry.path)))
        if writing and loaded is not None and (loaded.is_quantized or str(loaded.layout) != "torch.strided"):
            kind = "quantized" if loaded.is_quantized else str(loaded.layout).removeprefix("torch.")
            where = f"{checkpoint.label}: {entry.name}"
            raise CorruptCheckpoint(f"{where}: a {kind} tensor; paramctl writes values of dense tensors only")
        return
    if writing and checkpoint.byteorder != "little":
        # Values would be written in this machine's order.
        raise CorruptCheckpoint(f"{checkpoint.label}: big-endian tensor data is not written in place")
    for key in checkpoint.storage_keys(entry):
        check_storage_in_file(checkpoint, checkpoint.storages[key])
    start, end = entry.byte_span
    repeated = entry.nbytes - (end - start)
    if repeated > limits.repeated_value_bytes:
        raise LimitExceeded(
            f"{checkpoint.label}: {entry.name}",
            f"a view of {end - start:,} stored bytes claims {entry.nbytes:,} bytes of values "
            f"(shape {list(entry.shape)}, stride {list(entry.stride)})",
            f"value commands expand at most {limits.repeated_value_bytes:,} bytes of repeated values",
        )


def check_storage_in_file(checkpoint: Checkpoint, storage: Storage) -> None:
    """A storage's bytes lie inside its file as the file is now."""
    if storage.offset is None or storage.nbytes == 0 or storage.chunked or storage.inline is not None:
        return
    from paramctl.remote.url import url_of

    if url_of(storage.file) is not None:
        return  # a remote file that changes is caught by its validator (ETag) when read
    try:
        size = os.stat(storage.file).st_size
    except OSError as exc:
        raise CheckpointIOError(f"{storage.file}: {exc.strerror or exc}") from exc
    if storage.offset + storage.nbytes > size:
        raise CorruptCheckpoint(
            f"{checkpoint.label}: storage {storage.key} ends at byte {storage.offset + storage.nbytes:,}, "
            f"past the end of the file ({size:,} bytes): it changed or was cut short since it was read"
        )
