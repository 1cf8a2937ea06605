"""What marks a PyTorch zip checkpoint: its name, the zip magic and the suffixes torch files
go by; kept apart from the reader so that detecting one costs no imports."""

from __future__ import annotations

NAME = "torch-zip"
MAGIC = b"PK\x03\x04"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".pkl")
