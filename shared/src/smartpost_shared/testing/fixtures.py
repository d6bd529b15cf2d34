"""Pytest fixtures that start REAL servers for integration tests (no mocks, no skips).

- ``stack``: one tansu broker (memory storage), one SeaweedFS S3 and one aiosmtpd per test session, on free ports.
- ``kafka_settings`` / ``storage_settings`` / ``object_store``: settings pointing at that stack; the store uses a
  fresh bucket per test.
- ``postgres_url``: a fresh PostgreSQL database per test on 127.0.0.1:5432 (the machine's server).
- ``sqlite_url``: a fresh SQLite file per test.
- ``make_id``: unique ids per test, so tests never collide on shared servers.

If a server cannot start, the fixture errors (a skipped real-server test counts as failing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.settings import KafkaSettings, StorageSettings
from smartpost_shared.storage import MinioStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

POSTGRES_ADMIN_DSN = os.environ.get("SMARTPOST_TEST_POSTGRES_ADMIN", "postgresql://app:app@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="smartpost-stack-"))
    s = Stack(
        root,
        kafka_port=free_port(),
        s3_port=free_port(),
        smtp_port=free_port(),
        tansu_storage="memory",
    )
    try:
        s.up()
        yield s
    finally:
        s.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def kafka_settings(stack: Stack) -> KafkaSettings:
    # Short group timeouts: joining a consumer group takes session_timeout/2 on tansu.
    # Its own consumer-group prefix per test: apps of earlier tests on the shared broker are never group peers.
    return KafkaSettings(
        bootstrap_servers=stack.bootstrap_servers,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        group_prefix=f"t{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
def storage_settings(stack: Stack, make_id: Callable[[str], str]) -> StorageSettings:
    return StorageSettings(
        endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key), bucket=make_id("test").lower()
    )


@pytest.fixture
def object_store(storage_settings: StorageSettings) -> MinioStore:
    store = MinioStore(storage_settings)
    store.ensure_bucket()
    return store


@pytest.fixture
def make_id() -> Callable[[str], str]:
    def make(prefix: str = "id") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import psycopg  # noqa: PLC0415

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
