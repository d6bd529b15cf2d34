"""One contract suite for object storage, run against the in-memory fake and against real SeaweedFS (S3)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.settings import StorageSettings
from smartpost_shared.storage import (
    MemoryStore,
    MinioStore,
    ObjectNotFoundError,
    ObjectStore,
    StorageUnavailableError,
    part_key,
    source_key,
    thumbnail_key,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(params=["memory", "seaweedfs"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    if request.param == "memory":
        return MemoryStore()
    real: MinioStore = request.getfixturevalue("object_store")
    return real


def test_put_get_stat_and_metadata(store: ObjectStore) -> None:
    store.put("a/b.pdf", b"%PDF-1.7 hello", content_type="application/pdf", metadata={"sha256": "abc"})
    assert store.get("a/b.pdf") == b"%PDF-1.7 hello"
    info = store.stat("a/b.pdf")
    assert info.size == 14
    assert info.content_type == "application/pdf"
    assert info.metadata.get("sha256") == "abc"
    assert store.exists("a/b.pdf")
    assert not store.exists("a/c.pdf")


def test_overwrite_keeps_one_object(store: ObjectStore) -> None:
    store.put("k", b"one")
    store.put("k", b"two")
    assert store.get("k") == b"two"
    assert store.list("k") == ["k"]


def test_missing_object_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get("nope")
    with pytest.raises(ObjectNotFoundError):
        store.stat("nope")


def test_list_by_prefix_and_delete(store: ObjectStore) -> None:
    for i in range(3):
        store.put(f"p/x/{i}", b"x")
    store.put("p/y/0", b"y")
    assert store.list("p/x/") == ["p/x/0", "p/x/1", "p/x/2"]
    store.delete("p/x/1")
    assert store.list("p/x/") == ["p/x/0", "p/x/2"]
    store.delete("p/x/1")  # deleting twice is fine


def test_stream_returns_large_objects_in_chunks(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    store.put("big", data)
    chunks = list(store.stream("big"))
    assert b"".join(chunks) == data
    assert len(chunks) >= 2


def test_get_range_reads_part_of_an_object(store: ObjectStore) -> None:
    store.put("pack", b"0123456789abcdef")
    assert store.get_range("pack", 0, 4) == b"0123"
    assert store.get_range("pack", 10, 6) == b"abcdef"
    assert store.get_range("pack", 14, 10) == b"ef"  # a range past the end is cut, as HTTP does
    with pytest.raises(ObjectNotFoundError):
        store.get_range("pack", 16, 4)  # a range that starts past the end has nothing
    with pytest.raises(ObjectNotFoundError):
        store.get_range("missing", 0, 1)
    with pytest.raises(ValueError, match="offset"):
        store.get_range("pack", 0, 0)


def test_put_file(store: ObjectStore, tmp_path) -> None:
    path = tmp_path / "f.pdf"
    path.write_bytes(b"%PDF-1.4 file")
    store.put_file("f.pdf", str(path), content_type="application/pdf")
    assert store.get("f.pdf") == b"%PDF-1.4 file"


def test_presigned_url_is_created(store: ObjectStore) -> None:
    store.put("signed", b"secret")
    url = store.presigned_get("signed", timedelta(minutes=5))
    assert "signed" in url
    assert "ignature" in url


def test_keys_are_deterministic_and_scoped_by_account() -> None:
    assert source_key("a", "l", "d") == "accounts/a/letters/l/sources/d.pdf"
    assert part_key("a", "l", "d", 7) == "accounts/a/letters/l/parts/d/00007.pdf"
    assert thumbnail_key("a", "l", "d", 7) == "accounts/a/letters/l/thumbnails/d/00007.png"
    assert part_key("a", "l", "d", 7) != part_key("b", "l", "d", 7)


@pytest.mark.real
def test_seaweedfs_presigned_get_works_and_tampering_is_refused(object_store: MinioStore) -> None:
    object_store.put("doc.pdf", b"%PDF-1.7 only for you")
    url = object_store.presigned_get("doc.pdf", timedelta(minutes=1))
    assert httpx.get(url).content == b"%PDF-1.7 only for you"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403
    other_key = url.replace("doc.pdf", "doc2.pdf")
    assert httpx.get(other_key).status_code in {403, 404}


@pytest.mark.real
def test_unreachable_storage_raises_storage_unavailable() -> None:
    store = MinioStore(
        StorageSettings(
            endpoint=f"127.0.0.1:{free_port()}", secret_key=SecretStr("x" * 24), bucket="unreachable-bucket"
        )
    )
    with pytest.raises(StorageUnavailableError):
        store.put("k", b"v")


@pytest.mark.real
def test_seaweedfs_keeps_data_across_restart(tmp_path: Path) -> None:
    """Ops promise: a restart of local storage keeps letters (same data dir). Own stack: restarting the session's
    SeaweedFS would pull the floor from under other tests."""
    stack = Stack(tmp_path / "stack", s3_port=free_port(), with_smtp=False)
    stack.start_seaweedfs()
    try:
        stack.wait_for_s3()
        store = MinioStore(
            StorageSettings(endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key), bucket="smartpost")
        )
        store.put("persist/me.pdf", b"%PDF keep")
        stack.down()
        stack.start_seaweedfs()
        stack.wait_for_s3()
        assert store.get("persist/me.pdf") == b"%PDF keep"
    finally:
        stack.down()
