"""Checkpoints on HTTP(S) servers, the Hugging Face Hub and S3, read by range requests.

Any path may be a URL (``https://``, ``http://``, ``hf://org/name[@revision]/path``,
``s3://bucket/key``). Only the bytes a command needs are fetched, and they are kept under
the user cache directory for the next command (``--no-cache``: not kept). ``s3://`` needs
``s3fs`` and ``hf://`` needs ``huggingface_hub``: ``pip install 'paramctl[remote]'``.
"""

from __future__ import annotations

from paramctl.remote.session import MissingExtra, RemoteError, RemoteNotFound, Session, configured, current
from paramctl.remote.url import check_local_output, is_url, url_of

__all__ = [
    "MissingExtra",
    "RemoteError",
    "RemoteNotFound",
    "Session",
    "check_local_output",
    "configured",
    "current",
    "is_url",
    "url_of",
]
