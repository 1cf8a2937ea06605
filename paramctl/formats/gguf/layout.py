"""What marks a GGUF file: its name and magic, and the order its shapes are listed in; kept
apart from the reader (and the ``gguf`` package it uses) so that detecting one costs no
imports.

>>> sniff(b"GGUF" + bytes(4)), sniff(b"PK\\x03\\x04")
(True, False)
"""

from __future__ import annotations

NAME = "gguf"
MAGIC = b"GGUF"
SHAPE_ORDER = "PyTorch order (GGUF's dimensions reversed)"


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)
