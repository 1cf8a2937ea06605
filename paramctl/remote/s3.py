"""S3 objects through s3fs (fsspec's S3 file system), one ranged ``GetObject`` per read.

s3fs gives the connection, credentials and endpoint settings (``AWS_*`` variables,
``AWS_ENDPOINT_URL`` for other stores); each read asks for its range with ``IfMatch``,
so an object replaced while it is read is noticed, which s3fs's own file objects do not do.

>>> bucket_and_key("s3://models/llama/model.safetensors")
('models', 'llama/model.safetensors')
"""

from __future__ import annotations

from typing import Any

from paramctl.remote.session import MissingExtra, RemoteError, RemoteNotFound
from paramctl.remote.transport import Head, Transport


def bucket_and_key(url: str) -> tuple[str, str]:
    bucket, _, key = url.split("://", 1)[1].partition("/")
    return bucket, key


class S3Transport(Transport):
    """One ``s3://bucket/key``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import s3fs
        except ImportError:
            raise MissingExtra("s3", "s3fs") from None
        self._fs: Any = s3fs.S3FileSystem()
        self._key = url.split("://", 1)[1].rstrip("/")

    def head(self, length: int, known: str | None) -> Head:
        info = self._call(self._fs.info, self._key)
        if info.get("type") != "file":
            raise RemoteNotFound(f"{self.url}: not an object (a prefix holding others)")
        size, validator = int(info["size"]), str(info.get("ETag") or "")
        self._counted(0)
        if validator and validator == known:
            return Head(size, validator, None)
        return Head(size, validator, self.fetch(0, min(length, size), validator) if size else b"")

    def fetch(self, start: int, end: int, validator: str) -> bytes:
        from fsspec.asyn import sync

        bucket, key = bucket_and_key(self.url)
        extra = {"IfMatch": validator} if validator else {}

        async def get() -> bytes:
            answer = await self._fs._call_s3(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **extra
            )
            body: bytes = await answer["Body"].read()
            return body

        body: bytes = self._call(sync, self._fs.loop, get)
        self._counted(len(body))
        return body

    def is_dir(self) -> bool:
        return bool(self._call(self._fs.isdir, self._key))

    def children(self) -> list[str]:
        listed = self._call(self._fs.ls, self._key, detail=False)
        return [str(name).rsplit("/", 1)[-1] for name in listed]

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except FileNotFoundError:
            raise RemoteNotFound(f"{self.url}: no such object") from None
        except PermissionError as exc:
            raise RemoteError(f"{self.url}: access denied ({exc})") from None
        except OSError as exc:
            if any(sign in str(exc) for sign in ("PreconditionFailed", "412", "pre-conditions")):
                raise RemoteError(
                    f"{self.url}: the object changed while it was being read (its ETag changed); run again"
                ) from None
            raise RemoteError(f"{self.url}: {exc}") from None
        except TimeoutError as exc:
            raise RemoteError(f"{self.url}: no answer in time ({exc})") from None

    @staticmethod
    def _counted(body: int) -> None:
        from paramctl.remote.session import current

        current().counted(body)
