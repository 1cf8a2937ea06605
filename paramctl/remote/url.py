"""Which paths are URLs, and what an ``hf://`` address names.

A URL given where a path is expected is kept as a :class:`~pathlib.Path` whose first part
is the scheme (``Path`` folds ``https://host/m.pt`` to ``https:/host/m.pt``): the path
arithmetic the formats do (an index's shards beside it, a DCP directory's rank files)
then works on URLs unchanged, and :func:`url_of` gives the URL back.

>>> from pathlib import Path
>>> url_of(Path("https://example.org/models/m.pt"))
'https://example.org/models/m.pt'
>>> url_of(Path("weights/m.pt")) is None
True
>>> parse_hub("hf://org/name@v1.0/sub/model.safetensors")
HubAddress(repo_id='org/name', revision='v1.0', path='sub/model.safetensors', repo_type='model')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from paramctl.errors import UsageError

SCHEMES = ("https", "http", "hf", "s3")
_URL = re.compile(r"^(https?|hf|s3)://", re.IGNORECASE)
_FOLDED = re.compile(r"^(https?|hf|s3):/(?!/)", re.IGNORECASE)
_HUB_TYPES = {"datasets": "dataset", "spaces": "space"}


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a URL paramctl reads (``https://``, ``http://``, ``hf://``, ``s3://``).

    >>> is_url("s3://bucket/key"), is_url("s3:/bucket"), is_url("model.pt")
    (True, False, False)
    """
    return bool(_URL.match(os.fspath(text)))


def url_of(path: str | os.PathLike[str]) -> str | None:
    """The URL a path stands for, or ``None`` for a local path."""
    text = os.fspath(path)
    if _URL.match(text):
        return text
    if _FOLDED.match(text):
        return _FOLDED.sub(lambda found: f"{found.group(1)}://", text, count=1)
    return None


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].lower()


@dataclass(frozen=True)
class HubAddress:
    """A file or folder in a Hugging Face Hub repository: ``hf://[datasets/]org/name[@rev]/path``."""

    repo_id: str
    revision: str | None
    path: str
    repo_type: str = "model"


def parse_hub(url: str) -> HubAddress:
    """The repository, revision and path an ``hf://`` URL names."""
    parts = [part for part in url.split("://", 1)[1].split("/") if part]
    repo_type = "model"
    if parts and parts[0] in _HUB_TYPES:
        repo_type = _HUB_TYPES[parts.pop(0)]
    if len(parts) < 2:
        raise UsageError(f"{url}: an hf:// URL names a repository, hf://org/name[@revision]/path")
    name, _, revision = parts[1].partition("@")
    return HubAddress(f"{parts[0]}/{name}", revision or None, "/".join(parts[2:]), repo_type)


def check_local_output(path: str | os.PathLike[str] | None) -> None:
    """Writing goes to a local path: a URL given for the output is a usage error.

    >>> check_local_output("https://example.org/out.pt")
    Traceback (most recent call last):
    paramctl.errors.UsageError: https://example.org/out.pt: paramctl writes local files only; ...
    """
    if path is not None and url_of(path) is not None:
        raise UsageError(f"{os.fspath(path)}: paramctl writes local files only; write it here and upload it")
