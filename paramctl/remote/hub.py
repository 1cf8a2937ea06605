"""``hf://`` addresses: a file from the local Hugging Face cache when it is there (offline
with ``HF_HUB_OFFLINE=1``), else the Hub's own download URL, read with range requests.

``huggingface_hub`` resolves the revision (a branch, a tag or a commit) against the cache's
``refs`` and gives the snapshot folder, laid out as it lays it out (``HF_HUB_CACHE``).

>>> offline({"HF_HUB_OFFLINE": "1"}), offline({})
(True, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from paramctl.remote.session import MissingExtra, RemoteError
from paramctl.remote.url import parse_hub

_TRUE = {"1", "on", "yes", "true"}


def offline(environ: Mapping[str, str]) -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network (read now: tests and callers set it late)."""
    return environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def resolve_hub(url: str) -> Path | str:
    """The local path of an ``hf://`` file or folder in the cache, else its download URL."""
    address = parse_hub(url)
    try:
        from huggingface_hub import hf_hub_url, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise MissingExtra("hf", "huggingface_hub") from None
    cache = os.environ.get("HF_HUB_CACHE") or None
    try:
        folder = snapshot_download(
            address.repo_id,
            repo_type=address.repo_type,
            revision=address.revision,
            cache_dir=cache,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        folder = None
    if folder is not None and (Path(folder) / address.path).exists():
        return Path(folder) / address.path
    if offline(os.environ):
        revision = f" at {address.revision}" if address.revision else ""
        raise RemoteError(f"{url}: not in the local Hugging Face cache{revision}, and HF_HUB_OFFLINE is set")
    if not address.path:
        raise RemoteError(
            f"{url}: name a file of the repository (its index file for a sharded checkpoint): "
            "a repository is read over the network file by file"
        )
    # HF_ENDPOINT is read now, not when huggingface_hub was imported (a mirror, a test server).
    endpoint = os.environ.get("HF_ENDPOINT") or None
    found = hf_hub_url(
        address.repo_id,
        address.path,
        repo_type=address.repo_type,
        revision=address.revision,
        endpoint=endpoint,
    )
    return str(found)
