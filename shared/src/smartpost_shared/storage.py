"""Object storage: one interface, a MinIO-client implementation (S3: MinIO, SeaweedFS) and an in-memory fake.

Both implementations pass the same contract test suite (``tests/shared/test_storage_contract.py``).
Keys are deterministic per account/letter/document so a re-run overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO, Protocol

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError as Urllib3Error

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smartpost_shared.settings import StorageSettings


# Connection refused, timeouts and urllib3's MaxRetryError all mean: storage is not reachable right now.
_UNAVAILABLE: tuple[type[Exception], ...] = (OSError, Urllib3Error)


class ObjectNotFoundError(KeyError):
    """No object under this key."""


class StorageUnavailableError(ConnectionError):
    """Object storage could not be reached; the caller should retry later."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    """What services need from object storage."""

    def put(self, key: str, data: bytes, *, content_type: str = ..., metadata: dict[str, str] | None = ...) -> None: ...

    def put_file(self, key: str, path: str, *, content_type: str = ...) -> None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def stream(self, key: str) -> Iterator[bytes]: ...

    def stat(self, key: str) -> StoredObject: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def presigned_get(self, key: str, expires: timedelta) -> str: ...


def account_key_problem(account_id: str, key: str) -> str | None:
    """Why ``key`` is not an object of ``account_id`` (None when it lies under ``accounts/<account_id>/``).

    Every consumer checks the keys an event names before it reads or copies anything: a key of another account
    would copy, publish or print that account's letter (a data breach).
    """
    prefix = f"accounts/{account_id}/"
    parts = key.split("/")
    if not key.startswith(prefix) or ".." in parts or "" in parts[2:] or "\\" in key or "\x00" in key:
        return f"storage key {key!r} is outside the area of account {account_id}"
    return None


def letter_prefix(account_id: str, letter_id: str) -> str:
    return f"accounts/{account_id}/letters/{letter_id}/"


def source_key(account_id: str, letter_id: str, document_id: str) -> str:
    return f"{letter_prefix(account_id, letter_id)}sources/{document_id}.pdf"


def part_key(account_id: str, letter_id: str, document_id: str, index: int) -> str:
    return f"{letter_prefix(account_id, letter_id)}parts/{document_id}/{index:05d}.pdf"


def thumbnail_key(account_id: str, letter_id: str, document_id: str, index: int) -> str:
    return f"{letter_prefix(account_id, letter_id)}thumbnails/{document_id}/{index:05d}.png"


def thumbnail_pack_key(account_id: str, letter_id: str, document_id: str) -> str:
    """One object with the PNG thumbnails of every part of a document, read by byte range (see SplitPart)."""
    return f"{letter_prefix(account_id, letter_id)}thumbnails/{document_id}/thumbnails.pngpack"


class MinioStore:
    """S3 via the ``minio`` client. Works against MinIO (production) and SeaweedFS (local, tests)."""

    def __init__(self, settings: StorageSettings, *, bucket: str | None = None) -> None:
        self.bucket = bucket or settings.bucket
        if settings.secret_key is None:
            msg = "object storage needs SMARTPOST_S3_SECRET_KEY"
            raise ValueError(msg)
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
        )

    def ensure_bucket(self) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        try:
            self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=metadata,  # type: ignore[arg-type]
            )
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def put_file(self, key: str, path: str, *, content_type: str = "application/octet-stream") -> None:
        try:
            # One part in flight: minio reads each 5 MiB part into memory, and three in parallel were ~20 MB of
            # the splitter's peak when it stores a 10k-page document's thumbnail pack.
            self.client.fput_object(self.bucket, key, path, content_type=content_type, num_parallel_uploads=1)
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def put_stream(self, key: str, stream: BinaryIO, length: int, *, content_type: str) -> None:
        try:
            self.client.put_object(self.bucket, key, stream, length, content_type=content_type)
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def get(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``offset`` .. ``offset + length - 1`` of an object (an HTTP range request)."""
        if offset < 0 or length < 1:
            raise ValueError("offset must be >= 0 and length >= 1")
        try:
            response = self.client.get_object(self.bucket, key, offset=offset, length=length)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectNotFoundError(key) from exc
            if exc.code == "InvalidRange":  # the range starts past the end: nothing of the object is there
                raise ObjectNotFoundError(f"{key} (bytes {offset}+{length})") from exc
            raise
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc
        try:
            return bytes(response.read())
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc
        finally:
            response.close()
            response.release_conn()

    def stream(self, key: str) -> Iterator[bytes]:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectNotFoundError(key) from exc
            raise
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc
        try:
            yield from response.stream(256 * 1024)
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> StoredObject:
        try:
            info = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                raise ObjectNotFoundError(key) from exc
            raise
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc
        metadata = {
            k.lower().removeprefix("x-amz-meta-"): str(v)
            for k, v in (info.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return StoredObject(key, info.size or 0, info.content_type or "", metadata)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(o.object_name or "" for o in self.client.list_objects(self.bucket, prefix, recursive=True))
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, key)
        except _UNAVAILABLE as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def presigned_get(self, key: str, expires: timedelta) -> str:
        return self.client.presigned_get_object(self.bucket, key, expires=expires)


class MemoryStore:
    """In-memory fake with the same behaviour as :class:`MinioStore` (for unit tests)."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._secret = b"memory-store"

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._objects[key] = (bytes(data), content_type, {k.lower(): v for k, v in (metadata or {}).items()})

    def put_file(self, key: str, path: str, *, content_type: str = "application/octet-stream") -> None:
        with open(path, "rb") as fh:  # noqa: PTH123 - mirrors minio's fput_object(path)
            self.put(key, fh.read(), content_type=content_type)

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key][0]
            except KeyError:
                raise ObjectNotFoundError(key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 1:
            raise ValueError("offset must be >= 0 and length >= 1")
        data = self.get(key)
        if offset >= len(data):
            raise ObjectNotFoundError(f"{key} (bytes {offset}+{length})")  # as S3 answers InvalidRange
        return data[offset : offset + length]

    def stream(self, key: str) -> Iterator[bytes]:
        data = self.get(key)
        for i in range(0, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]
        if not data:
            return

    def stat(self, key: str) -> StoredObject:
        with self._lock:
            try:
                data, content_type, metadata = self._objects[key]
            except KeyError:
                raise ObjectNotFoundError(key) from None
        return StoredObject(key, len(data), content_type, dict(metadata))

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def presigned_get(self, key: str, expires: timedelta) -> str:
        until = int((datetime.now(UTC) + expires).timestamp())
        signature = hashlib.sha256(self._secret + f"{key}:{until}".encode()).hexdigest()
        return f"memory://{key}?expires={until}&signature={signature}"
