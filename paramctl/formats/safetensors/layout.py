"""What marks a safetensors file: an 8-byte header length the reference loader accepts, then
the header's opening brace; kept apart from the reader so that detecting one costs no
imports.

>>> sniff((2).to_bytes(8, "little") + b"{}"), sniff(b"GGUF" + bytes(8))
(True, False)
"""

from __future__ import annotations

import struct

NAME = "safetensors"


def sniff(head: bytes) -> bool:
    from paramctl.formats._limits import LIMITS

    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    # The reference implementation refuses headers above 100 MB; so does the reader.
    return 2 <= length <= LIMITS.header_bytes and head[8:9] == b"{"
