"""Walking proof of the messaging plumbing over a REAL tansu broker (Kafka protocol)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from smartpost_shared.contracts import Envelope, make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted, PropertyUpserted
from smartpost_shared.db import add_to_outbox, create_platform_tables, make_engine
from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.messaging import (
    EventConsumer,
    EventPublisher,
    OutboxRelay,
    PermanentError,
    SqlIdempotency,
    TransientError,
    make_broker,
)
from smartpost_shared.settings import KafkaSettings
from smartpost_shared.topics import MASTERDATA

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sqlalchemy.engine import Connection

pytestmark = [pytest.mark.real]


async def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def read_topic(bootstrap: str, topic: str, *, expected: int, timeout: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def contact_event(account: str, contact_id: str, name: str = "Müller") -> Envelope:
    return make_envelope(ContactUpserted(contact_id=contact_id, last_name=name), account_id=account, producer="test")


async def run_consumer(
    settings: KafkaSettings, handlers: dict[str, Callable[[Envelope], Awaitable[None]]], group: str, **kw: Any
) -> tuple[Any, EventConsumer]:
    broker = make_broker(settings, service="test")
    consumer = EventConsumer(broker, service="test", backoff_seconds=0.05, **kw)
    consumer.subscribe(
        MASTERDATA,
        handlers,
        group_id=group,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
    await broker.start()
    return broker, consumer


async def test_contract_event_round_trips_through_tansu_to_two_consumer_groups(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    account = make_id("acc")
    received: list[Envelope] = []

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id == account:
            received.append(envelope)

    broker, _ = await run_consumer(kafka_settings, {"ContactUpserted": on_contact}, make_id("group"))
    try:
        sent = contact_event(account, "c-1")
        await EventPublisher(broker).publish(sent)
        await wait_until(lambda: len(received) == 1)
        assert received[0] == sent
        # A second, independent consumer group reads the same message, keyed by account.
        records = await read_topic(kafka_settings.bootstrap_servers, MASTERDATA.name, expected=10_000, timeout=4)
        mine = [r for r in records if r.key == account.encode()]
        assert len(mine) == 1
        assert dict(mine[0].headers)["event_type"] == b"ContactUpserted"
    finally:
        await broker.stop()


async def test_malformed_messages_go_to_dead_letter_topic_and_consumer_keeps_going(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    account = make_id("acc")
    received: list[Envelope] = []

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id == account:
            received.append(envelope)

    broker, consumer = await run_consumer(kafka_settings, {"ContactUpserted": on_contact}, make_id("group"))
    try:
        bad_json = f"not json {account}".encode()
        wrong_type = contact_event(account, "c-x").to_json_dict()
        wrong_type["payload"]["portal_registered"] = "vielleicht"
        wrong_type["event_id"] = str(uuid.uuid4())
        import json

        # Signed by a trusted producer (publish_raw signs), so the contract check is what refuses them.
        await EventPublisher(broker).publish_raw(MASTERDATA.name, account, bad_json)
        await EventPublisher(broker).publish_raw(MASTERDATA.name, account, json.dumps(wrong_type).encode())
        good = contact_event(account, "c-2")
        await EventPublisher(broker).publish(good)
        await wait_until(lambda: len(received) == 1)
        assert received[0].event_id == good.event_id
        assert consumer.dead_lettered >= 2
    finally:
        await broker.stop()
    dead = await read_topic(kafka_settings.bootstrap_servers, MASTERDATA.dead_letter, expected=10_000, timeout=4)
    mine = {r.value: dict(r.headers) for r in dead if r.key == account.encode()}
    assert bad_json in mine
    assert b"invalid message" in mine[bad_json]["dlq_reason"]
    assert mine[bad_json]["dlq_source_topic"] == MASTERDATA.name.encode()
    reasons = [h["dlq_reason"] for v, h in mine.items() if v != bad_json]
    assert any(b"portal_registered" in r for r in reasons)


async def test_handler_that_keeps_failing_is_dead_lettered_and_transient_errors_are_retried(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    account = make_id("acc")
    calls: dict[str, int] = {}
    done: list[str] = []

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id != account:
            return
        payload = envelope.payload
        assert isinstance(payload, ContactUpserted)
        calls[payload.contact_id] = calls.get(payload.contact_id, 0) + 1
        if payload.contact_id == "always-broken":
            raise RuntimeError("bug in handler")
        if payload.contact_id == "unknown-letter":
            raise PermanentError("refers to an unknown letter")
        if payload.contact_id == "storage-down" and calls[payload.contact_id] < 4:
            raise TransientError("storage unavailable")
        done.append(payload.contact_id)

    broker, _ = await run_consumer(kafka_settings, {"ContactUpserted": on_contact}, make_id("group"), attempts=3)
    try:
        publisher = EventPublisher(broker)
        for contact in ("always-broken", "unknown-letter", "storage-down", "fine"):
            await publisher.publish(contact_event(account, contact))
        await wait_until(lambda: "fine" in done, timeout=30)
    finally:
        await broker.stop()
    assert calls["always-broken"] == 3
    assert calls["unknown-letter"] == 1
    assert calls["storage-down"] == 4  # retried through the outage, not dead-lettered
    assert done == ["storage-down", "fine"]
    dead = await read_topic(kafka_settings.bootstrap_servers, MASTERDATA.dead_letter, expected=10_000, timeout=4)
    reasons = [dict(r.headers)["dlq_reason"] for r in dead if r.key == account.encode()]
    assert any(b"handler failed 3 times" in r for r in reasons)
    assert any(b"unknown letter" in r for r in reasons)
    assert len(reasons) == 2


async def test_sql_idempotency_applies_a_redelivered_event_once(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str], sqlite_url: str
) -> None:
    account = make_id("acc")
    engine = make_engine(sqlite_url)
    create_platform_tables(engine)
    metadata = MetaData()
    seen = Table("seen", metadata, Column("id", Integer, primary_key=True), Column("contact_id", String(50)))
    metadata.create_all(engine)
    handled: list[uuid.UUID] = []

    def apply(envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, ContactUpserted)
        conn.execute(insert(seen).values(contact_id=payload.contact_id))
        handled.append(envelope.event_id)

    idempotent = SqlIdempotency(engine, "test-consumer").handler(apply)

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id == account:
            await idempotent(envelope)

    broker, _ = await run_consumer(kafka_settings, {"ContactUpserted": on_contact}, make_id("group"))
    try:
        event = contact_event(account, "c-1")
        publisher = EventPublisher(broker)
        await publisher.publish(event)
        await publisher.publish(event)  # redelivery (e.g. producer retry or outbox re-publish)
        await publisher.publish(contact_event(account, "c-2"))
        await wait_until(lambda: len(handled) == 2)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(seen)).scalar_one() == 2


async def test_outbox_relay_publishes_committed_events_in_order(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str], sqlite_url: str
) -> None:
    account = make_id("acc")
    engine = make_engine(sqlite_url)
    create_platform_tables(engine)
    events = [
        make_envelope(
            PropertyUpserted(property_id=f"p{i}", reference=f"R{i}", name=f"P {i}"), account_id=account, producer="test"
        )
        for i in range(5)
    ]
    with engine.begin() as conn:
        for event in events:
            add_to_outbox(conn, event)
        add_to_outbox(conn, events[0])  # queued twice: kept once
    broker = make_broker(kafka_settings, service="test")
    await broker.start()
    try:
        relay = OutboxRelay(engine, EventPublisher(broker))
        assert await relay.publish_pending() == 5
        assert await relay.publish_pending() == 0
    finally:
        await broker.stop()
    records = await read_topic(kafka_settings.bootstrap_servers, MASTERDATA.name, expected=10_000, timeout=4)
    mine = [r for r in records if r.key == account.encode()]
    import json

    assert [json.loads(r.value)["event_id"] for r in mine] == [str(e.event_id) for e in events]


def test_local_stack_keeps_topics_and_messages_across_restart(tmp_path: Path) -> None:
    """The one-command local stack persists tansu's data in SeaweedFS (s3://): a restart keeps letters."""
    stack = Stack(tmp_path / "stack", kafka_port=free_port(), s3_port=free_port(), with_smtp=False)
    stack.up()
    try:
        settings = KafkaSettings(bootstrap_servers=stack.bootstrap_servers)
        event = contact_event("acc-persist", "c-1")

        async def send() -> None:
            broker = make_broker(settings, service="test")
            await broker.start()
            await EventPublisher(broker).publish(event)
            await broker.stop()

        asyncio.run(send())
        stack.down()
        stack.up()
        records = asyncio.run(read_topic(stack.bootstrap_servers, MASTERDATA.name, expected=1, timeout=20))
        assert [r.key for r in records] == [b"acc-persist"]
    finally:
        stack.down()


async def test_a_ten_thousand_page_split_result_travels_as_a_claim_check_through_tansu_and_seaweedfs(
    kafka_settings: KafkaSettings, object_store: Any, make_id: Callable[[str], str]
) -> None:
    """4,000 parts (3.5 MB of JSON) on a broker with the 1 MiB default: the wire carries a bounded claim check and
    the consumer's handler gets the whole event; a consumer without storage dead-letters it with the reason."""
    from smartpost_shared.contracts.documents import DocumentSplit, SplitPart
    from smartpost_shared.messaging import CLAIM_CHECK_BYTES
    from smartpost_shared.topics import SPLITTER

    account, letter_id = make_id("acc"), make_id("letter")
    parts = [
        SplitPart(
            part_id=f"{letter_id}-part-{i:05d}",
            index=i,
            first_page=2 * i + 1,
            last_page=2 * i + 2,
            page_count=2,
            storage_key=f"accounts/{account}/letters/{letter_id}/parts/D-1/{i:05d}.pdf",
            sha256="0" * 64,
            size_bytes=40_000,
            address_lines=[f"Frau Erika Mustermann-{i}", "Lindenstraße 12", "10115 Berlin"],
            property_refs=["WEG Lindenstraße 12"],
        )
        for i in range(4_000)
    ]
    sent = make_envelope(
        DocumentSplit(
            letter_id=letter_id,
            document_id="D-1",
            source_key=f"accounts/{account}/letters/{letter_id}/documents/D-1.pdf",  # inside the account's area
            strategy="address_block",
            source_page_count=10_000,
            parts=parts,
        ),
        account_id=account,
        producer="test",
    )
    assert len(sent.to_bytes()) > 1_048_576
    received: list[Envelope] = []

    async def on_split(envelope: Envelope) -> None:
        if envelope.account_id == account:
            received.append(envelope)

    broker = make_broker(kafka_settings, service="test")  # the 1 MiB producer default
    with_store = EventConsumer(broker, service="test", backoff_seconds=0.05, store=object_store)
    with_store.subscribe(SPLITTER, {"DocumentSplit": on_split}, group_id=make_id("group"))
    without_store = EventConsumer(broker, service="test-nostore", backoff_seconds=0.05)
    without_store.subscribe(SPLITTER, {"DocumentSplit": on_split}, group_id=make_id("group"))
    await broker.start()
    try:
        await EventPublisher(broker, store=object_store).publish(sent)
        await wait_until(lambda: len(received) == 1 and without_store.dead_lettered >= 1)  # other tests share the topic
        assert received[0] == sent
        records = await read_topic(kafka_settings.bootstrap_servers, SPLITTER.name, expected=10_000, timeout=4)
        mine = [r for r in records if r.key == letter_id.encode()]
        assert len(mine) == 1
        assert len(mine[0].value) <= CLAIM_CHECK_BYTES
        assert object_store.exists(f"accounts/{account}/events/DocumentSplit/{sent.event_id}.json")
        dead = await read_topic(kafka_settings.bootstrap_servers, SPLITTER.dead_letter, expected=10_000, timeout=4)
        reasons = [dict(r.headers)["dlq_reason"] for r in dead if r.key == letter_id.encode()]
        assert reasons == [
            f"claim-check message accounts/{account}/events/DocumentSplit/{sent.event_id}.json but this consumer has no object storage".encode()
        ]
    finally:
        await broker.stop()


async def test_master_data_is_applied_in_batches_with_invalid_and_poisonous_events_isolated(  # noqa: PLR0915
    kafka_settings: KafkaSettings, make_id: Callable[[str], str], sqlite_url: str
) -> None:
    """1,200 contacts in a few transactions; a message that fails its contract and one whose handler breaks are
    dead-lettered alone, everything else is applied exactly once (a re-delivered batch changes nothing)."""
    from smartpost_shared.masterdata import MasterDataReader, apply_masterdata, create_masterdata_tables

    account = make_id("acc")
    engine = make_engine(sqlite_url)
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    transactions: list[int] = []

    def on_masterdata(envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        if isinstance(payload, ContactUpserted) and payload.contact_id == "poison":
            raise RuntimeError("bug in handler")
        apply_masterdata(conn, envelope)

    idempotency = SqlIdempotency(engine, "batch-test")
    original = idempotency.run_batch

    def counting(handlers: Any, envelopes: list[Envelope], apply_batch: Any = None) -> int:
        transactions.append(len(envelopes))
        return original(handlers, envelopes, apply_batch)

    idempotency.run_batch = counting  # type: ignore[method-assign]
    broker = make_broker(kafka_settings, service="test")
    consumer = EventConsumer(broker, service="test", backoff_seconds=0.05, attempts=2)
    consumer.subscribe_batch(
        MASTERDATA, idempotency, dict.fromkeys(MASTERDATA.event_types, on_masterdata), group_id=make_id("group")
    )
    # The topic also holds other tests' messages (some invalid): count only this account's dead letters.
    dead_keys: list[Any] = []
    dead_letter = consumer._dead_letter

    async def recording(topic: Any, msg: Any, dead: Any) -> None:
        dead_keys.append(getattr(msg.raw_message, "key", None))
        await dead_letter(topic, msg, dead)

    consumer._dead_letter = recording  # type: ignore[method-assign]
    # The import is on the topic before the consumer starts (as after an ERP import or a restart): published one by
    # one while the consumer runs, a consumer faster than the publisher would see batches of a few events only.
    source = make_broker(kafka_settings, service="test-source")
    await source.start()
    try:
        publisher = EventPublisher(source)
        events = [contact_event(account, f"c-{i:05d}") for i in range(1_200)]
        events.insert(700, contact_event(account, "poison"))
        for envelope in events:
            await publisher.publish(envelope)
        await publisher.publish_raw(MASTERDATA.name, account, b'{"event_type": "ContactUpserted"}')
        await publisher.publish(events[5])  # a duplicate
        # Not signed by the topic's producer: dead-lettered alone, the rest of its batch is applied.
        forged = contact_event(account, "forged")
        await source.publish(forged.to_bytes(), topic=MASTERDATA.name, key=account.encode())
    finally:
        await source.stop()
    await broker.start()
    try:

        def count() -> int:
            with engine.connect() as conn:
                return len(MasterDataReader(conn).contacts(account))

        await wait_until(lambda: count() == 1_200 and dead_keys.count(account.encode()) == 3, timeout=180)
    finally:
        await broker.stop()
    assert sum(transactions) >= 1_201
    assert len(transactions) < 1_201 / 10 + 20  # batches, not one transaction per event (+ other tests' events)
    dead = await read_topic(kafka_settings.bootstrap_servers, MASTERDATA.dead_letter, expected=10_000, timeout=4)
    reasons = sorted(dict(r.headers)["dlq_reason"] for r in dead if r.key == account.encode())
    assert len(reasons) == 3
    assert b"handler failed 2 times" in reasons[0]
    assert b"invalid message" in reasons[1]
    assert reasons[2].startswith(b"not from ")
    with engine.connect() as conn:
        assert "forged" not in {c.contact_id for c in MasterDataReader(conn).contacts(account)}
