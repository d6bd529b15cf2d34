"""The letters service against real tansu, SeaweedFS and both event stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from letters_testkit import make_parts, read_topic, tiny_pdf

from smartpost_letters.app import create_app
from smartpost_letters.settings import Settings
from smartpost_shared.contracts.documents import (
    AssignmentStatus,
    DocumentSplit,
    DocumentSplitFailed,
    PagesAssigned,
    PartAssignment,
    SplitFailureReason,
)
from smartpost_shared.contracts.envelope import Envelope, make_envelope
from smartpost_shared.contracts.portal import DocumentViewed
from smartpost_shared.contracts.printing import MailpieceStatus, PrintJobStatusChanged
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.testing.identity import caller_headers

pytestmark = [pytest.mark.real]

PDF = tiny_pdf(2)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
async def running(tmp_path, database_url, kafka_settings, storage_settings, object_store):
    settings = Settings(
        data_dir=str(tmp_path),
        database_url=database_url,
        kafka=kafka_settings,
        storage=storage_settings,
        log_json=False,
        relay_poll_seconds=0.1,
        # A fresh group per app: tansu makes a new member wait for members of a stopped app for a long time.
        consumer_group=f"smartpost-letters-{uuid.uuid4().hex[:8]}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://letters") as client:
            publisher_broker = make_broker(kafka_settings, service="test-upstream")
            await publisher_broker.start()
            try:
                yield app, client, EventPublisher(publisher_broker), kafka_settings.bootstrap_servers
            finally:
                await publisher_broker.stop()


def h(account, actor="staff:anna"):
    return caller_headers(account, actor, audience="letters", roles=["prepare", "release"])


async def wait_for(client, account, letter_id, predicate, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    body = None
    while asyncio.get_running_loop().time() < deadline:
        body = (await client.get(f"/v1/letters/{letter_id}", headers=h(account))).json()
        if predicate(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"letter never reached the expected state: {body and body.get('status')}")


async def test_full_life_cycle_over_kafka(  # noqa: PLR0915 - one scenario end to end
    running, make_id, object_store
):
    _, client, upstream, bootstrap = running
    account = make_id("acc")
    r = await client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=h(account))
    dt = r.json()["created_id"]
    r = await client.post(
        "/v1/letters",
        json={
            "title": "Heizkosten",
            "document_type_id": dt,
            "recipient_groups": ["tenants"],
            "scope": "cross_property",
            "period_start": "2024-01-01",
            "period_end": "2024-12-31",
        },
        headers=h(account),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["period_start"], r.json()["period_end"]) == ("2024-01-01", "2024-12-31")
    lid = r.json()["letter_id"]
    r = await client.post(
        f"/v1/letters/{lid}/documents",
        files={"file": ("a.pdf", PDF, "application/pdf")},
        data={"role": "split"},
        headers=h(account),
    )
    doc = r.json()["documents"][0]
    assert object_store.get(doc["source_key"]) == PDF
    await client.post(f"/v1/letters/{lid}/split", headers=h(account))

    # The splitter fails once: back to draft with the reason; staff split again.
    failed = make_envelope(
        DocumentSplitFailed(
            letter_id=lid,
            document_id=doc["document_id"],
            source_key=doc["source_key"],
            reason_code=SplitFailureReason.NEEDS_OCR,
            reason="Scan ohne Text",
        ),
        account_id=account,
        producer="splitter",
    )
    await upstream.publish(failed)
    body = await wait_for(client, account, lid, lambda b: b["status"] == "draft")
    assert body["documents"][0]["failure"]["reason"] == "Scan ohne Text"
    await client.post(f"/v1/letters/{lid}/split", headers=h(account))

    parts = make_parts(account, lid, doc["document_id"], 2)
    split = make_envelope(
        DocumentSplit(
            letter_id=lid,
            document_id=doc["document_id"],
            source_key=doc["source_key"],
            strategy="address_block",
            source_page_count=4,
            parts=parts,
        ),
        account_id=account,
        producer="splitter",
    )
    assigned = make_envelope(
        PagesAssigned(
            letter_id=lid,
            document_id=doc["document_id"],
            assignments=[
                PartAssignment(
                    part_id=p.part_id,
                    status=AssignmentStatus.ASSIGNED,
                    contact_id=f"c{i}",
                    property_id=f"prop-{i}",
                    unit_id=f"u{i}",
                )
                for i, p in enumerate(parts)
            ],
        ),
        account_id=account,
        producer="assignment",
    )
    # Assignment may overtake the split (different topics): both orders must end in review.
    await upstream.publish(assigned)
    await upstream.publish(split)
    await upstream.publish(split)  # re-delivery
    body = await wait_for(client, account, lid, lambda b: b["status"] == "in_review")
    version = body["version"]
    await upstream.publish(assigned)  # re-delivery changes nothing
    await asyncio.sleep(1.0)
    assert (await client.get(f"/v1/letters/{lid}", headers=h(account))).json()["version"] == version

    await client.post(f"/v1/letters/{lid}/review/confirm", headers=h(account))
    r = await client.post(f"/v1/letters/{lid}/release", json={"notify_by_email": True}, headers=h(account))
    assert r.json()["status"] == "released", r.text
    r = await client.post(f"/v1/letters/{lid}/print-order", json={"duplex": False}, headers=h(account))
    order_id = r.json()["print_order"]["print_order_id"]
    item0 = f"{lid}:{parts[0].part_id}"

    def status(mailpiece: str, value: MailpieceStatus, order: str = order_id) -> Envelope:
        return make_envelope(
            PrintJobStatusChanged(
                print_order_id=order,
                letter_id=lid,
                mailpiece_id=mailpiece,
                contact_id="c0",
                item_ids=[item0],
                status=value,
                provider="filedrop",
            ),
            account_id=account,
            producer="print-dispatch",
        )

    # A burst of status changes is consumed in groups (one save per letter); one that names another print order
    # breaks its group, which is then applied one by one: only that one is dead-lettered, the rest is recorded.
    burst = [
        status(f"mp-{n}", value)
        for value in (MailpieceStatus.CREATED, MailpieceStatus.SUBMITTED, MailpieceStatus.SENT)
        for n in range(1, 21)
    ]
    wrong = status("mp-x", MailpieceStatus.SENT, order="another-order")
    burst.insert(30, wrong)
    for envelope in burst:
        await upstream.publish(envelope)
    await upstream.publish(burst[5])  # a re-delivery changes nothing
    await upstream.publish(
        make_envelope(
            DocumentViewed(
                document_id="pd-1",
                letter_id=lid,
                item_id=item0,
                contact_id="c0",
                first_viewed_at="2026-03-02T08:00:00+00:00",
            ),
            account_id=account,
            producer="portal-publisher",
        )
    )
    body = await wait_for(
        client, account, lid, lambda b: b["print_order"]["mailpieces"] and b["items"][0]["first_viewed_at"]
    )
    body = await wait_for(
        client, account, lid, lambda b: [m["status"] for m in b["print_order"]["mailpieces"]] == ["sent"] * 20
    )
    assert {m["mailpiece_id"]: m["status"] for m in body["print_order"]["mailpieces"]} == {
        f"mp-{n}": "sent" for n in range(1, 21)
    }
    dead = await read_topic(
        bootstrap, "print.events.dlq", lambda b, _: b["event_id"] == str(wrong.event_id), until=lambda m: len(m) >= 1
    )
    assert "does not belong" in dead[0][1]["dlq_reason"]
    await client.post(f"/v1/letters/{lid}/revocations", json={"unit_id": "u1", "reason": "Auszug"}, headers=h(account))

    wanted = [
        "LetterCreated",
        "SplitRequested",
        "SplitRequested",
        "LetterReleased",
        "PrintOrdered",
        "LetterItemsRevoked",
    ]
    events = await read_topic(
        bootstrap,
        "letters.events",
        lambda b, _: b["payload"].get("letter_id") == lid,
        until=lambda m: len(m) >= len(wanted),
    )
    assert [e["event_type"] for e, _ in events] == wanted  # all on one partition, in order
    created = events[0][0]["payload"]
    assert (created["period_start"], created["period_end"]) == ("2024-01-01", "2024-12-31")  # billing period
    released = events[3][0]
    assert released["account_id"] == account
    assert released["payload"]["notify_by_email"] is True
    assert [i["item_id"] for i in released["payload"]["items"]] == [item0, f"{lid}:{parts[1].part_id}"]
    assert events[5][0]["payload"]["item_ids"] == [f"{lid}:{parts[1].part_id}"]

    audit = (await client.get(f"/v1/letters/{lid}/audit", headers=h(account))).json()["entries"]
    assert {"service:splitter", "service:assignment", "service:print-dispatch", "staff:anna"} <= {
        e["actor"] for e in audit
    }
    listed = (await client.get("/v1/letters", headers=h(account))).json()["letters"]
    assert listed[0]["letter_id"] == lid
    assert listed[0]["status"] == "print_ordered"
    ready = await client.get("/readyz")
    assert ready.json()["ready"] is True


async def test_inbound_for_unknown_or_foreign_letter_is_dead_lettered(running, make_id):
    _, client, upstream, bootstrap = running
    account = make_id("acc")
    r = await client.post("/v1/document-types", json={"name": "X"}, headers=h(account))
    r = await client.post(
        "/v1/letters",
        json={
            "title": "T",
            "document_type_id": r.json()["created_id"],
            "recipient_groups": ["owners"],
            "property_id": "p",
        },
        headers=h(account),
    )
    lid = r.json()["letter_id"]
    foreign = make_envelope(
        PagesAssigned(letter_id=lid, document_id="d", assignments=[]),
        account_id=make_id("other"),
        producer="assignment",
    )
    unknown = make_envelope(
        PagesAssigned(letter_id=str(uuid.uuid4()), document_id="d", assignments=[]),
        account_id=account,
        producer="assignment",
    )
    await upstream.publish(foreign)
    await upstream.publish(unknown)
    ids = {str(foreign.event_id), str(unknown.event_id)}
    dead = await read_topic(
        bootstrap, "assignment.events.dlq", lambda b, _: b["event_id"] in ids, until=lambda m: len(m) >= 2
    )
    assert len(dead) == 2
    assert all("unknown letter" in hdr["dlq_reason"] for _, hdr in dead)
    assert all(hdr["dlq_consumer"] == "letters" for _, hdr in dead)
    body = (await client.get(f"/v1/letters/{lid}", headers=h(account))).json()
    assert body["version"] == 1
