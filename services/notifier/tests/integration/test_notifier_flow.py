"""End to end through real tansu and aiosmtpd: a released cross-property letter, read back from the Maildir."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from smartpost_notifier.app import create_app
from smartpost_notifier.settings import Settings
from smartpost_shared.contracts.envelope import parse_envelope
from smartpost_shared.contracts.masterdata import (
    ContactUpserted,
    ContractUpserted,
    PropertyUpserted,
    UnitUpserted,
)
from smartpost_shared.contracts.portal import DocumentPublished, DocumentRevoked
from smartpost_shared.testing.identity import caller_headers
from smartpost_shared.topics import NOTIFIER

from .notifier_testkit import Producer, mails_of, wait_for

pytestmark = pytest.mark.real


async def notification_events(bootstrap: str, account_id: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(NOTIFIER.name, p) for p in consumer.partitions_for_topic(NOTIFIER.name) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    envelope = parse_envelope(record.value)
                    if envelope.account_id == account_id:
                        events.append(envelope)
        return events
    finally:
        await consumer.stop()


async def test_release_of_a_cross_property_letter_mails_once_and_digests(stack, kafka_settings, sqlite_url, make_id):  # noqa: PLR0915
    account = make_id("acc")
    letter = make_id("letter")
    settings = Settings(
        database_url=sqlite_url,
        kafka=kafka_settings,
        smtp_host="127.0.0.1",
        smtp_port=stack.smtp_port,
        immediate_delay_seconds=1.0,
        send_poll_seconds=0.2,
        digest_enabled=False,
        kafka_group_id=make_id("notifier"),
        portal_base_url="https://portal.example/hv",
        accounts={"unused": {"language": "en"}},
        log_json=False,
    )
    app = create_app(settings)
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")).date()
    now = datetime.now(UTC)

    def doc(document_id: str, contact: str, unit: str | None, prop: str | None, notify: bool = True, letter_id=None):
        return DocumentPublished(
            document_id=document_id,
            letter_id=letter_id or letter,
            item_id=f"item-{document_id}",
            contact_id=contact,
            property_id=prop,
            unit_id=unit,
            title="Einladung Eigentümerversammlung",
            folder=["Versammlungen", "2026"],
            letter_date=date(2026, 1, 2),
            notify_by_email=notify,
            published_at=now,
        )

    async with app.router.lifespan_context(app), Producer(kafka_settings, account) as producer:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier")
        await producer.send(
            PropertyUpserted(property_id="pa", reference="A", name="Lindenstraße 5"),
            PropertyUpserted(property_id="pb", reference="B", name="Am Markt 1"),
            UnitUpserted(unit_id="ua1", property_id="pa", number="1", position="EG links"),
            UnitUpserted(unit_id="ub7", property_id="pb", number="7"),
            ContactUpserted(
                contact_id="anna",
                salutation="Frau",
                first_name="Anna",
                last_name="Albers",
                email="anna@example.org",
                portal_registered=True,
            ),
            ContactUpserted(
                contact_id="ben", salutation="Herr", last_name="Berg", email="ben@example.org", portal_registered=True
            ),
            ContactUpserted(contact_id="carl", last_name="Claus", email="carl@example.org", portal_registered=False),
            ContactUpserted(contact_id="dora", last_name="Dietz", portal_registered=True),
            ContractUpserted(
                contract_id="k1",
                contact_id="anna",
                unit_id="ua1",
                property_id="pa",
                role="owner",
                start=date(2020, 1, 1),
            ),
            ContractUpserted(
                contract_id="k2",
                contact_id="anna",
                unit_id="ub7",
                property_id="pb",
                role="owner",
                start=date(2020, 1, 1),
            ),
        )
        await asyncio.sleep(1.0)  # master data first, as in production (the notifier also tolerates the reverse)
        await producer.send(
            doc("d-anna-a", "anna", "ua1", "pa"),
            doc("d-anna-b", "anna", "ub7", "pb"),
            doc("d-ben", "ben", None, "pa"),
            doc("d-carl", "carl", "ua1", "pa"),
            doc("d-dora", "dora", "ub7", "pb"),
            doc("d-ben-quiet", "ben", None, "pb", notify=False, letter_id=make_id("letter")),
            doc("d-ben-revoked", "ben", None, "pb", notify=False, letter_id=make_id("letter")),
            producer="portal-publisher",
        )
        await producer.send(
            DocumentRevoked(document_id="d-ben-revoked", letter_id="x", item_id="x", contact_id="ben", reason="test"),
            producer="portal-publisher",
        )

        immediate = await wait_for(
            lambda: (m := mails_of(stack.maildir, account)) and len(m) >= 2 and m, 30, what="two immediate mails"
        )
        await asyncio.sleep(2.0)  # anything else would arrive by now
        immediate = mails_of(stack.maildir, account)
        assert sorted(m["To"].addresses[0].addr_spec for m in immediate) == ["anna@example.org", "ben@example.org"]
        anna = next(m for m in immediate if m["To"].addresses[0].addr_spec == "anna@example.org")
        assert anna["Subject"] == "Ihre Hausverwaltung: Neue Dokumente in Ihrem Kundenportal"
        assert list(anna.iter_attachments()) == []
        text = anna.get_body(("plain",)).get_content()
        assert text.startswith("Sehr geehrte Frau Albers,")
        assert "Lindenstraße 5, Einheit 1 (EG links)" in text
        assert "Am Markt 1, Einheit 7" in text
        assert f"https://portal.example/hv/{account}/dokumente/d-anna-a" in text
        assert f"https://portal.example/hv/{account}/dokumente/d-anna-b" in text

        response = await client.post(
            "/internal/digests/run",
            params={"day": today.isoformat()},
            headers=caller_headers(account, audience="notifier", roles=["admin"]),
        )
        assert response.status_code == 200, response.text
        assert response.json()["mails_created"] == 4  # one row per recipient; carl and dora get skipped
        again = await client.post(
            "/internal/digests/run",
            params={"day": today.isoformat()},
            headers=caller_headers(account, audience="notifier", roles=["admin"]),
        )
        assert again.json()["mails_created"] == 0

        await wait_for(lambda: len(mails_of(stack.maildir, account)) >= 4, 30, what="two digests")
        await asyncio.sleep(1.0)
        all_mails = mails_of(stack.maildir, account)
        digests = [m for m in all_mails if m["X-SmartPost-Kind"] == "digest"]
        assert sorted(m["To"].addresses[0].addr_spec for m in digests) == ["anna@example.org", "ben@example.org"]
        ben_digest = next(m for m in digests if m["To"].addresses[0].addr_spec == "ben@example.org")
        ben_text = ben_digest.get_body(("plain",)).get_content()
        assert "2 neue Dokumente" in ben_text  # d-ben and d-ben-quiet; the revoked one is gone
        assert "d-ben-revoked" not in ben_text
        assert len({str(m["Message-ID"]) for m in all_mails}) == len(all_mails) == 4

        stats = (
            await client.get(
                "/internal/mails/stats", headers=caller_headers(account, audience="notifier", roles=["admin"])
            )
        ).json()
        assert stats["mails"]["immediate"] == {"sent": 2, "skipped": 2}
        assert stats["mails"]["digest"] == {"sent": 2, "skipped": 2}
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.post("/internal/digests/run")).status_code == 401  # signed caller claims are required

        sent_events = []
        for _ in range(30):
            sent_events = await notification_events(stack.bootstrap_servers, account)
            if len(sent_events) >= 4:
                break
            await asyncio.sleep(0.5)
        kinds = sorted((e.payload.contact_id, e.payload.kind.value) for e in sent_events)
        assert kinds == [("anna", "digest"), ("anna", "immediate"), ("ben", "digest"), ("ben", "immediate")]
        anna_immediate = next(
            e for e in sent_events if e.payload.contact_id == "anna" and e.payload.kind == "immediate"
        )
        assert anna_immediate.payload.document_ids == ["d-anna-a", "d-anna-b"]
        assert anna_immediate.payload.letter_id == letter
        await client.aclose()
