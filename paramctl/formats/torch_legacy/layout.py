r"""What marks a legacy PyTorch checkpoint: it opens with the pickled magic number; kept apart
from the reader so that detecting one costs no imports.

>>> import pickle
>>> [sniff(pickle.dumps(MAGIC_NUMBER, protocol=p)) for p in (2, 4, 5)], sniff(b"PK\x03\x04")
([True, True, True], False)
"""

from __future__ import annotations

NAME = "torch-legacy"
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
# The file's first pickle holds only the magic number: LONG1 of 10 bytes, little-endian,
# after the protocol opcode (and, from protocol 4, a FRAME opcode).
MAGIC = b"\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little")


def sniff(head: bytes) -> bool:
    """Legacy files open with the pickled magic number."""
    return head.startswith(b"\x80") and MAGIC in head[:32]
