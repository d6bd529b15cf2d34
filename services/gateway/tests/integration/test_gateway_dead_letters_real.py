"""The gateway's admin routes for dead letters over a REAL tansu broker: role ``admin`` only, own account only,
CSRF on re-drive, re-driving twice has one effect."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi.testclient import TestClient

from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import PropertyUpserted
from smartpost_shared.topics import MASTERDATA

pytestmark = [pytest.mark.real]

PASSWORD = "geheim"


def login(client: TestClient, user: str) -> str:
    response = client.post("/login", data={"login": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match
    return match.group(1)


async def put_dead_letter(bootstrap: str, account: str) -> str:
    """A dead letter as EventConsumer writes it (body unchanged, reason in headers); returns its event id."""
    event = make_envelope(
        PropertyUpserted(property_id=f"P-{uuid.uuid4().hex[:6]}", reference="WEG-A", name="WEG Admin"),
        account_id=account,
        producer="test",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        headers = {
            "dlq_reason": "Liegenschaft unbekannt",
            "dlq_error_type": "PermanentError",
            "dlq_source_topic": MASTERDATA.name,
            "dlq_source_partition": "0",
            "dlq_source_offset": "0",
            "dlq_consumer": "assignment",
        }
        await producer.send_and_wait(
            MASTERDATA.dead_letter,
            event.to_bytes(),
            key=account.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()
    return str(event.event_id)


async def redriven_copies(bootstrap: str, event_id: str) -> int:
    consumer = AIOKafkaConsumer(
        MASTERDATA.name,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
    )
    await consumer.start()
    found = 0
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and found:
                break
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers or [])
                    if "smartpost_redriven_from" in headers and event_id.encode() in (record.value or b""):
                        found += 1
    finally:
        await consumer.stop()
    return found


def test_admin_lists_shows_and_redrives_dead_letters_of_the_own_account_once(kafka_settings) -> None:
    own, other = f"acc-{uuid.uuid4().hex[:6]}", f"acc-{uuid.uuid4().hex[:6]}"
    bootstrap = kafka_settings.bootstrap_servers
    ours = asyncio.run(put_dead_letter(bootstrap, own))
    foreign = asyncio.run(put_dead_letter(bootstrap, other))
    password_hash = hash_password(PASSWORD)
    settings = Settings(
        staff_users={
            "olga@hv.de": {"password_hash": password_hash, "account_id": own, "roles": ["prepare", "admin"]},
            "paul@hv.de": {"password_hash": password_hash, "account_id": own, "roles": ["prepare", "release"]},
        },
        accounts={own: {"name": "HV"}},
        session_secret="s" * 32,
        log_json=False,
        kafka=kafka_settings,
    )
    with TestClient(create_app(settings)) as paul:
        login(paul, "paul@hv.de")
        assert paul.get("/admin/dead-letters", headers={"HX-Request": "1"}).status_code == 403
    with TestClient(create_app(settings)) as olga:
        csrf = login(olga, "olga@hv.de")
        listing = olga.get("/admin/dead-letters", params={"topic": MASTERDATA.name})
        assert listing.status_code == 200, listing.text
        rows = listing.json()["dead_letters"]
        assert [r["event_id"] for r in rows if r["event_id"] in {ours, foreign}] == [ours]  # own account only
        row = next(r for r in rows if r["event_id"] == ours)
        assert row["reason"] == "Liegenschaft unbekannt"
        assert row["redriven"] is False
        shown = olga.get(f"/admin/dead-letters/{MASTERDATA.dead_letter}/{row['partition']}/{row['offset']}")
        assert shown.status_code == 200
        assert shown.json()["body"]["event_id"] == ours
        assert olga.get("/admin/dead-letters", params={"topic": "nope.events"}).status_code == 404

        body = {"topic": MASTERDATA.name, "coordinates": [f"{row['partition']}:{row['offset']}"]}
        assert olga.post("/admin/dead-letters/redrive", json=body).status_code == 403  # no CSRF token
        first = olga.post("/admin/dead-letters/redrive", json=body, headers={"X-CSRF-Token": csrf})
        assert first.status_code == 200, first.text
        coordinates = f"{MASTERDATA.dead_letter}:{row['partition']}:{row['offset']}"
        assert first.json() == {"redriven": [coordinates], "skipped_already_redriven": []}
        second = olga.post("/admin/dead-letters/redrive", json=body, headers={"X-CSRF-Token": csrf})
        assert second.json() == {"redriven": [], "skipped_already_redriven": [coordinates]}

        foreign_row = next(r for r in asyncio.run(_all_rows(kafka_settings)) if r["event_id"] == foreign)
        stolen = {"topic": MASTERDATA.name, "coordinates": [f"{foreign_row['partition']}:{foreign_row['offset']}"]}
        refused = olga.post("/admin/dead-letters/redrive", json=stolen, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 404  # another account's dead letter is not hers to re-drive
        after = olga.get("/admin/dead-letters", params={"topic": MASTERDATA.name}).json()["dead_letters"]
        assert ours not in [r["event_id"] for r in after]  # re-driven: no longer waiting
    assert asyncio.run(redriven_copies(bootstrap, ours)) == 1
    assert asyncio.run(redriven_copies(bootstrap, foreign)) == 0


async def _all_rows(kafka_settings) -> list[dict]:
    from smartpost_shared.redrive import dead_letter_topics, read_dead_letters

    return [letter.summary() for letter in await read_dead_letters(kafka_settings, dead_letter_topics(MASTERDATA.name))]
