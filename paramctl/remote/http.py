r"""HTTP(S) range reads, with the standard library's client.

fsspec's HTTP file system is not used: it sends a HEAD before reading, reads in blocks of
its own choosing and does not check that the file stays the same between requests, so
the requests a listing takes could neither be kept to the few the format needs nor be
trusted to come from one version of the file. Here each read is one ``GET`` with
``Range`` and ``If-Match`` (a file that changed answers 412), the first one carrying
``If-None-Match`` when a cached copy exists (an unchanged file answers 304, no body).
Several ranges wanted at once (a zip's local headers) go in one request, which the server
answers as ``multipart/byteranges``:

>>> body = (b"--B\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n"
...         b"--B\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n--B--\r\n")
>>> _byteranges(body, "B")
{0: b'01', 8: b'89'}
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from paramctl.remote.session import RemoteError, RemoteNotFound, current
from paramctl.remote.transport import Head, Transport
from paramctl.units import format_bytes

_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")
_STREAM_BLOCK = 1 << 20
_HUB_HOSTS = ("huggingface.co", "hf.co")


class HttpTransport(Transport):
    """One URL read with ranged GETs."""

    def head(self, length: int, known: str | None) -> Head:
        headers = {"If-None-Match": known} if known else {}
        status, response = self._get(0, length, headers)
        validator = _validator(response)
        if status == 200:
            size = int(response.headers.get("Content-Length") or -1)
            if not current().download:
                response.close()
                shown = format_bytes(size) if size >= 0 else "of unknown size"
                raise RemoteError(
                    f"{self.url}: the server ignores Range requests, so reading it means "
                    f"downloading all of it ({shown}); give --download to do that"
                )
            return Head(size, validator, None, whole=_streamed(response))
        with response:
            if status == 304 and known:
                return Head(-1, known, None)  # the size is the kept copy's
            if status == 416:
                return Head(_size_of(response), validator, b"")
            body = response.read()
            current().counted(len(body))
            return Head(_size_of(response), validator, body)

    def fetch(self, start: int, end: int, validator: str) -> bytes:
        status, response = self._get(start, end, {"If-Match": validator} if _strong(validator) else {})
        with response:
            if status != 206 or _validator(response) not in (validator, ""):
                raise _changed(self.url)
            body: bytes = response.read()
        current().counted(len(body))
        if len(body) != end - start:
            raise RemoteError(f"{self.url}: the server sent {len(body)} bytes of the {end - start} asked for")
        return body

    def fetch_many(self, spans: list[tuple[int, int]], validator: str) -> list[bytes]:
        """The ranges in one request (``multipart/byteranges``); a server that will not send
        several at once is asked for them one by one."""
        if len(spans) < 2:
            return super().fetch_many(spans, validator)
        wanted = ",".join(f"{start}-{end - 1}" for start, end in spans)
        extra = {"If-Match": validator} if _strong(validator) else {}
        status, response = self._get(0, 0, extra, ranges=wanted)
        with response:
            kind = response.headers.get("Content-Type") or ""
            if status != 206 or "multipart/byteranges" not in kind or "boundary=" not in kind:
                current().counted(0)  # the body is not read
                return super().fetch_many(spans, validator)
            if _validator(response) not in (validator, ""):
                raise _changed(self.url)
            body = response.read()
        current().counted(len(body))
        parts = _byteranges(body, kind.split("boundary=", 1)[1].strip('"'))
        return [_part_of(parts, start, end, self.url) for start, end in spans]

    def _get(self, start: int, end: int, extra: dict[str, str], ranges: str | None = None) -> tuple[int, Any]:
        wanted = ranges or f"{start}-{max(start, end - 1)}"
        headers = {"Range": f"bytes={wanted}", "Accept-Encoding": "identity", **extra}
        headers.update(_authorization(self.url))
        request = urllib.request.Request(self.url, headers=headers)
        timeout = current().timeout
        try:
            response = _OPENER.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in (304, 416):
                return exc.code, exc
            exc.close()
            current().counted(0)
            raise _refused(self.url, exc.code, exc.reason) from None
        except TimeoutError as exc:
            raise RemoteError(f"{self.url}: no answer within {timeout:g} s") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                raise RemoteError(f"{self.url}: no answer within {timeout:g} s") from exc
            raise RemoteError(f"{self.url}: cannot reach the server ({reason})") from exc
        return int(response.status), response


class _CredentialsStayHome(urllib.request.HTTPRedirectHandler):
    """Redirects followed, a token sent only to the host it was meant for (the Hub sends
    LFS files to a CDN on another host)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        redirected = super().redirect_request(req, fp, code, msg, headers, newurl)
        if redirected is not None and _host(newurl) != _host(req.full_url):
            redirected.remove_header("Authorization")
        return redirected


def _host(url: str) -> str:
    return urllib.parse.urlparse(url).hostname or ""


_OPENER = urllib.request.build_opener(_CredentialsStayHome)


def _byteranges(body: bytes, boundary: str) -> dict[int, bytes]:
    """The parts of a ``multipart/byteranges`` body, by the offset each starts at."""
    parts: dict[int, bytes] = {}
    delimiter = b"--" + boundary.encode()
    position = body.find(delimiter)
    while position >= 0:
        head_end = body.find(b"\r\n\r\n", position)
        if head_end < 0:
            break
        found = _CONTENT_RANGE.search(body[position:head_end].decode("latin-1"))
        if not found or found.group(1) is None:
            break
        start, last = int(found.group(1)), int(found.group(2))
        data_start = head_end + 4
        parts[start] = body[data_start : data_start + last - start + 1]
        position = body.find(delimiter, data_start + last - start + 1)
    return parts


def _part_of(parts: dict[int, bytes], start: int, end: int, url: str) -> bytes:
    for offset, data in parts.items():
        if offset <= start and offset + len(data) >= end:
            return data[start - offset : end - offset]
    raise RemoteError(f"{url}: the server left out a range asked for ({start}-{end - 1})")


def _refused(url: str, code: int, reason: str) -> RemoteError:
    if code == 404:
        return RemoteNotFound(f"{url}: not found (HTTP 404)")
    if code in (401, 403):
        hint = "; for a gated or private Hugging Face repository, set HF_TOKEN"
        return RemoteError(f"{url}: access denied (HTTP {code} {reason}){hint}")
    if code == 412:
        return _changed(url)
    return RemoteError(f"{url}: the server answered HTTP {code} {reason}")


def _changed(url: str) -> RemoteError:
    return RemoteError(f"{url}: the file changed while it was being read (its ETag changed); run again")


def _validator(response: Any) -> str:
    headers = getattr(response, "headers", {})
    linked = headers.get("X-Linked-Etag") or headers.get("ETag")
    return str(linked or headers.get("Last-Modified") or "")


def _strong(validator: str) -> bool:
    return validator.startswith('"')


def _size_of(response: Any) -> int:
    found = _CONTENT_RANGE.search(getattr(response, "headers", {}).get("Content-Range") or "")
    if found:
        return int(found.group(3))
    raise RemoteError(f"{getattr(response, 'url', '')}: the server sent no size (no Content-Range)")


def _streamed(response: Any) -> Iterator[bytes]:
    """The whole body of a server that ignored Range, a block at a time (it is closed after)."""
    with response:
        while block := response.read(_STREAM_BLOCK):
            current().fetched += len(block)
            yield block
    current().requests += 1


def _authorization(url: str) -> dict[str, str]:
    """A Hugging Face token for the Hub's own hosts (``HF_TOKEN``, or the one logged in)."""
    host = urllib.parse.urlparse(url).hostname or ""
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    if host != endpoint and not host.endswith(_HUB_HOSTS):
        return {}
    token = os.environ.get("HF_TOKEN")
    if token is None:
        try:
            from huggingface_hub import get_token
        except ImportError:
            return {}
        token = get_token()
    return {"Authorization": f"Bearer {token}"} if token else {}
