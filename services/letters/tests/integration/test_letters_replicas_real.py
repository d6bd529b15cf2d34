"""Two letters replicas on one PostgreSQL database: the outbox relay runs in exactly one of them (advisory-lock
lease), every event is published once, and when that replica stops the other takes over the relay."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import httpx
import pytest
from letters_testkit import read_topic
from sqlalchemy import create_engine, text

from smartpost_letters.app import create_app
from smartpost_letters.settings import Settings
from smartpost_shared.settings import LeaseSettings
from smartpost_shared.testing.identity import caller_headers

pytestmark = [pytest.mark.real]


def holder(postgres_url: str) -> str | None:
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT holder FROM leases WHERE name = 'letters-outbox-relay'")).first()
        return row[0] if row else None
    finally:
        engine.dispose()


async def wait_holder(postgres_url: str, wanted: set[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = holder(postgres_url)
        if current in wanted:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"no holder among {wanted}, found {holder(postgres_url)}")


def h(account: str) -> dict[str, str]:
    return caller_headers(account, "staff:anna", audience="letters", roles=["prepare", "release"])


async def create_letter(client: httpx.AsyncClient, account: str) -> str:
    r = await client.post(
        "/v1/document-types", json={"name": f"Abrechnungen {uuid.uuid4().hex[:6]}"}, headers=h(account)
    )
    assert r.status_code in (200, 201), r.text
    dt = r.json()["created_id"]
    r = await client.post(
        "/v1/letters",
        json={
            "title": "Heizkosten",
            "document_type_id": dt,
            "recipient_groups": ["tenants"],
            "scope": "cross_property",
        },
        headers=h(account),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["letter_id"])


async def published_ids(bootstrap: str, letter_id: str) -> list[str]:
    found = await read_topic(
        bootstrap,
        "letters.events",
        lambda body, _headers: body.get("payload", {}).get("letter_id") == letter_id,
        until=lambda matches: len(matches) >= 2,  # wait a while for a (wrong) second copy
        timeout=6,
    )
    return [body["event_id"] for body, _ in found]


async def test_one_relay_across_two_replicas_and_takeover(tmp_path, postgres_url, kafka_settings, storage_settings):
    def settings(replica: str) -> Settings:
        return Settings(
            data_dir=str(tmp_path / replica),
            database_url=postgres_url,
            kafka=kafka_settings,
            storage=storage_settings,
            log_json=False,
            relay_poll_seconds=0.1,
            consumer_group=f"smartpost-letters-{uuid.uuid4().hex[:8]}",
            lease=LeaseSettings(
                replica_id=replica, ttl_seconds=3, renew_seconds=0.3, retry_seconds=0.2, takeover_seconds=0.5
            ),
        )

    apps = {name: create_app(settings(name)) for name in ("a", "b")}
    account = f"acc-{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        lifespans = {}
        for name, app in apps.items():
            lifespans[name] = contextlib.AsyncExitStack()
            await lifespans[name].enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://letters")
            )
        try:
            first = await wait_holder(postgres_url, {"a", "b"})
            other = "b" if first == "a" else "a"
            # Created through the replica that does NOT relay: the holder publishes it, once.
            letter_one = await create_letter(clients[other], account)
            ids = await published_ids(kafka_settings.bootstrap_servers, letter_one)
            assert len(ids) == 1, ids

            await lifespans[first].aclose()  # graceful stop of the relaying replica: it releases the lease
            assert await wait_holder(postgres_url, {other}, timeout=10) == other
            letter_two = await create_letter(clients[other], account)
            ids = await published_ids(kafka_settings.bootstrap_servers, letter_two)
            assert len(ids) == 1, ids
        finally:
            for lifespan in lifespans.values():
                await lifespan.aclose()
