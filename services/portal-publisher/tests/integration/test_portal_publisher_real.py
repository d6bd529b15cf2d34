"""The portal publisher over real servers: tansu (Kafka protocol), SeaweedFS (S3), SQLite and PostgreSQL.

Master data and a cross-property serial letter go through the broker exactly as the ERP connector and the letters
service publish them; two recipients in different properties then use the portal API; the published, viewed and
revoked events are read back from Kafka.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.settings import Settings
from smartpost_shared.messaging import EventPublisher
from smartpost_shared.testing.identity import caller_headers
from smartpost_shared.topics import LETTERS, PORTAL

PASSWORD = "sicheres-passwort-42"


class PortalEventLog:
    """Reads portal.events and letters.events.dlq in the background and keeps this test's accounts' messages."""

    def __init__(self, bootstrap: str, accounts: set[str]) -> None:
        self.bootstrap = bootstrap
        self.accounts = accounts
        self.events: list[dict[str, Any]] = []
        self.dead_letters: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.stopped = False

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            PORTAL.name,
            LETTERS.dead_letter,
            bootstrap_servers=self.bootstrap,
            group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            while not self.stopped:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        body = json.loads(record.value)
                        if body["account_id"] not in self.accounts:
                            continue
                        if record.topic == PORTAL.name:
                            self.events.append(body)
                        else:
                            headers = {k: v.decode() for k, v in record.headers}
                            self.dead_letters.append((body, headers))
        finally:
            await consumer.stop()

    def of(self, event_type: str, account_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type and e["account_id"] == account_id]


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.mark.real
def test_cross_property_letter_reaches_each_recipient_only(
    database_url, kafka_settings, storage_settings, object_store, scenario, make_pdf, make_id
):
    other = type(scenario)(account_id=f"acct-{uuid.uuid4().hex[:8]}")  # a second Hausverwaltung
    for s in (scenario, other):
        for index in range(3):
            object_store.put(s.key(index), make_pdf(f"{s.account_id} letter {index}"), content_type="application/pdf")
    settings = Settings(
        database_url=database_url,
        kafka=kafka_settings,
        storage=storage_settings,
        consumer_group=make_id("portal"),
        download_link_secret=SecretStr("integration-secret"),
        relay_poll_seconds=0.05,
        log_json=False,
    )
    app = create_app(settings)
    log = PortalEventLog(kafka_settings.bootstrap_servers, {scenario.account_id, other.account_id})
    with TestClient(app) as client:
        publisher = EventPublisher(app.state.broker)

        def publish(envelope):
            client.portal.call(publisher.publish, envelope)

        client.portal.start_task_soon(log.run)
        try:
            run_scenario(client, publish, log, scenario, other, object_store, storage_settings, make_pdf)
        finally:
            log.stopped = True
            client.portal.call(asyncio.sleep, 0.5)


def run_scenario(client, publish, log, scenario, other, object_store, storage_settings, make_pdf):  # noqa: PLR0915

    # 1. Master data of both accounts, then the cross-property release (Anna in Lindenstraße, Bert in Eichenweg).
    for envelope in [*scenario.masterdata(), *other.masterdata()]:
        publish(envelope)
    items = [scenario.item(0, "c-anna"), scenario.item(1, "c-bert")]
    release = scenario.release(items)
    publish(release)
    publish(other.release([other.item(0, "c-anna")]))

    # A release pointing into another account's storage is dead-lettered with its reason; nothing is published.
    foreign = scenario.release(
        [scenario.item(0, "c-anna").model_copy(update={"item_id": "foreign-item", "storage_key": other.key(0)})]
    ).model_copy(update={})
    foreign_release = foreign.payload.model_copy(update={"letter_id": "letter-foreign"})
    foreign = foreign.model_copy(update={"payload": foreign_release})
    publish(foreign)

    def deliveries(s=scenario):
        r = client.get(
            f"/internal/letters/{s.letter_id}/deliveries",
            headers=caller_headers(s.account_id, audience="portal-publisher", roles=["prepare"]),
        )
        assert r.status_code == 200
        return r.json()

    wait_for(lambda: len(deliveries()) == 2, "both letters published")
    wait_for(lambda: len(deliveries(other)) == 1, "the other account's letter published")
    published = wait_for(
        lambda: (
            len(log.of("DocumentPublished", scenario.account_id)) == 2
            and log.of("DocumentPublished", scenario.account_id)
        ),
        "DocumentPublished on Kafka",
    )
    assert {e["payload"]["contact_id"] for e in published} == {"c-anna", "c-bert"}
    assert all(e["payload"]["notify_by_email"] is True for e in published)
    assert all(e["causation_id"] == str(release.event_id) for e in published)

    dead = wait_for(
        lambda: [
            h
            for b, h in log.dead_letters
            if b["event_id"] == str(foreign.event_id) and h.get("dlq_consumer") == "portal-publisher"
        ],
        "foreign release dead-lettered",
    )
    assert "outside the area" in dead[0]["dlq_reason"]
    r = client.get(
        "/internal/letters/letter-foreign/deliveries",
        headers=caller_headers(scenario.account_id, audience="portal-publisher", roles=["prepare"]),
    )
    assert r.json() == []

    # 2. Both recipients register with their invitation codes (master data may still be arriving).
    def session_for(s, contact_id, login):
        def invite():
            r = client.post(
                "/internal/invitations",
                json={"contact_id": contact_id},
                headers=caller_headers(s.account_id, audience="portal-publisher", roles=["prepare"]),
            )
            return r.json()["code"] if r.status_code == 201 else None

        code = wait_for(invite, f"contact {contact_id} known")
        r = client.post("/portal/invitations/redeem", json={"code": code, "login": login, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    anna = session_for(scenario, "c-anna", "anna@example.org")
    bert = session_for(scenario, "c-bert", "bert@example.org")
    other_anna = session_for(other, "c-anna", "anna@example.org")  # same login, other account: separate person

    def documents(headers):
        r = client.get("/portal/documents", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    anna_docs = wait_for(lambda: documents(anna), "Anna's contract known")
    bert_docs = wait_for(lambda: documents(bert), "Bert's contract known")
    other_docs = wait_for(lambda: documents(other_anna), "other account's contract known")
    assert len(anna_docs) == len(bert_docs) == len(other_docs) == 1
    assert (anna_docs[0]["property_name"], anna_docs[0]["unit_number"]) == ("Lindenstraße 1", "1.OG links")
    assert (bert_docs[0]["property_name"], bert_docs[0]["unit_number"]) == ("Eichenweg 7", "EG")
    assert anna_docs[0]["folder"] == ["Abrechnungen", "Heizkosten"]
    assert anna_docs[0]["title"] == "Heizkostenabrechnung 2025"
    anna_doc, bert_doc, other_doc = (d[0]["document_id"] for d in (anna_docs, bert_docs, other_docs))

    # 3. Download through a signed link: the PDF from SeaweedFS, recorded as viewed, DocumentViewed on Kafka.
    link = client.post(f"/portal/documents/{anna_doc}/download-link", headers=anna).json()["url"]
    r = client.get(link)
    assert r.status_code == 200
    assert r.content == make_pdf(f"{scenario.account_id} letter 0")
    assert client.get(f"/portal/documents/{bert_doc}/content", headers=bert).content == make_pdf(
        f"{scenario.account_id} letter 1"
    )
    wait_for(lambda: len(log.of("DocumentViewed", scenario.account_id)) == 2, "DocumentViewed on Kafka")
    by_item = {d["item_id"]: d for d in deliveries()}
    assert by_item[items[0].item_id]["first_viewed_at"] is not None
    assert by_item[items[1].item_id]["first_viewed_at"] is not None

    # 4. Security: all refused.
    assert client.get(f"/portal/documents/{bert_doc}", headers=anna).status_code == 404  # other contact
    assert client.get(f"/portal/documents/{bert_doc}/content", headers=anna).status_code == 404
    assert client.post(f"/portal/documents/{bert_doc}/download-link", headers=anna).status_code == 404
    assert client.get(f"/portal/documents/{other_doc}/content", headers=anna).status_code == 404  # other account
    assert client.get(f"/portal/documents/{anna_doc}/content", headers=other_anna).status_code == 404
    assert client.get(f"/portal/documents/{uuid.uuid4()}/content", headers=anna).status_code == 404  # guessed id
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert client.get(f"/portal/downloads/{bert_doc}?{urlencode(query)}").status_code == 403  # swapped document
    longer = {**query, "e": str(int(query["e"]) + 86_400)}
    assert client.get(f"{parts.path}?{urlencode(longer)}").status_code == 403  # tampered expiry
    forged = {**query, "s": query["s"][:-2] + ("AA" if not query["s"].endswith("AA") else "BB")}
    assert client.get(f"{parts.path}?{urlencode(forged)}").status_code == 403  # tampered signature
    expired = client.app.state.portal
    real_clock = expired.clock
    expired.clock = lambda: real_clock() + timedelta(seconds=settings_ttl(client) + 1)
    assert client.get(link).status_code == 403  # expired link
    expired.clock = real_clock
    # The PDFs are not reachable around the portal: anonymous S3 access to the key is refused by SeaweedFS.
    raw = httpx.get(f"http://{storage_settings.endpoint}/{storage_settings.bucket}/{items[0].storage_key}")
    assert raw.status_code == 403
    tampered_s3 = object_store.presigned_get(items[0].storage_key, timedelta(minutes=1)).replace(
        "X-Amz-Signature=", "X-Amz-Signature=0"
    )
    assert httpx.get(tampered_s3).status_code == 403

    # 5. Re-delivery: the same event again and a copy with a new event id publish nothing twice; a later
    # release of the same letter (same partition, so processed after them) publishes only its new item.
    publish(release)
    publish(scenario.release(items))
    publish(scenario.release([*items, scenario.item(2, "c-carl")]))
    wait_for(lambda: len(deliveries()) == 3, "Carl's letter published")
    wait_for(lambda: len(log.of("DocumentPublished", scenario.account_id)) >= 3, "third DocumentPublished")
    time.sleep(0.5)  # give a wrongly duplicated event time to show up
    published_items = [e["payload"]["item_id"] for e in log.of("DocumentPublished", scenario.account_id)]
    assert sorted(published_items) == sorted([items[0].item_id, items[1].item_id, scenario.item(2, "c-carl").item_id])
    assert len(documents(anna)) == 1

    # 6. Revocation of Anna's letter (one unit): gone from her inbox at once, her old link dies, Bert unaffected.
    link = client.post(f"/portal/documents/{anna_doc}/download-link", headers=anna).json()["url"]
    publish(scenario.revoke([items[0].item_id]))
    wait_for(lambda: documents(anna) == [], "Anna's letter revoked")
    assert client.get(link).status_code == 410
    assert client.get(f"/portal/documents/{anna_doc}/content", headers=anna).status_code == 410
    assert len(documents(bert)) == 1
    revoked = wait_for(lambda: log.of("DocumentRevoked", scenario.account_id), "DocumentRevoked on Kafka")
    assert [e["payload"]["item_id"] for e in revoked] == [items[0].item_id]
    assert next(d for d in deliveries() if d["item_id"] == items[0].item_id)["revoked_at"] is not None

    # 7. Bert's contract ended long ago (beyond the access window): his access ends immediately.
    publish(scenario.contract_update("c-bert", end=scenario.today - timedelta(days=400)))
    wait_for(lambda: documents(bert) == [], "Bert's access ended")
    assert client.get(f"/portal/documents/{bert_doc}/content", headers=bert).status_code == 403

    # 8. Deleting the whole serial letter revokes the rest; the other account is untouched.
    publish(scenario.revoke([items[1].item_id], letter_deleted=True))
    wait_for(lambda: all(d["revoked_at"] for d in deliveries()), "whole letter revoked")
    wait_for(lambda: len(log.of("DocumentRevoked", scenario.account_id)) == 3, "three DocumentRevoked")
    assert len(documents(other_anna)) == 1
    assert len(log.of("DocumentViewed", scenario.account_id)) == 2  # first downloads only
    assert client.get("/readyz").json()["ready"] is True


def settings_ttl(client) -> int:
    return int(client.app.state.settings.download_link_ttl_seconds)
