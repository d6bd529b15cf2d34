"""Forged events (issue #13, item 2), over the real broker: only the producer the topic registry names may write.

Before: anyone on the network published a LetterReleased, DocumentPublished or PrintOrdered and services acted on it
(mails to real recipients, another account's letter posted on paper, another account's PDF copied).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from smartpost_shared.contracts import Envelope, make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.event_signing import SIGNATURE_HEADER, EventSigner, EventVerifier
from smartpost_shared.identity import generate_keypair
from smartpost_shared.messaging import EventConsumer, EventPublisher, make_broker
from smartpost_shared.settings import KafkaSettings
from smartpost_shared.topics import MASTERDATA

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.real


def contact(account: str, contact_id: str) -> Envelope:
    return make_envelope(ContactUpserted(contact_id=contact_id, last_name="X"), account_id=account, producer="erp")


async def dead_letters(bootstrap: str, account: str, expected: int) -> dict[str, bytes]:
    reader = AIOKafkaConsumer(
        MASTERDATA.dead_letter,
        bootstrap_servers=bootstrap,
        group_id=f"r-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await reader.start()
    found: dict[str, bytes] = {}
    try:
        deadline = time.monotonic() + 30
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key == account.encode():
                        found[r.value.decode(errors="replace")] = dict(r.headers)["dlq_reason"]
    finally:
        await reader.stop()
    return found


async def test_unsigned_forged_and_tampered_events_never_reach_a_handler(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    account = make_id("acc")
    erp_private, erp_public = generate_keypair()
    impostor_private, _ = generate_keypair()
    base = {"bootstrap_servers": kafka_settings.bootstrap_servers, "session_timeout_ms": 2000}
    consumer_settings = KafkaSettings(
        **base, heartbeat_interval_ms=500, trusted_producers={"erp-integration": [erp_public]}
    )
    erp = make_broker(KafkaSettings(**base, signing_key=SecretStr(erp_private)), service="erp")
    impostor = make_broker(KafkaSettings(**base, signing_key=SecretStr(impostor_private)), service="impostor")

    received: list[str] = []

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id == account:
            payload = envelope.payload
            assert isinstance(payload, ContactUpserted)
            received.append(payload.contact_id)

    broker = make_broker(consumer_settings, service="victim")
    consumer = EventConsumer(broker, service="victim", backoff_seconds=0.05)
    consumer.subscribe(
        MASTERDATA,
        {"ContactUpserted": on_contact},
        group_id=make_id("g"),
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    raw = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await asyncio.gather(broker.start(), erp.start(), impostor.start(), raw.start())
    try:
        await EventPublisher(impostor).publish(contact(account, "forged"))  # signed, but not by the producer
        unsigned = contact(account, "unsigned").to_bytes()
        await raw.send_and_wait(MASTERDATA.name, unsigned, key=account.encode())
        genuine = contact(account, "tampered").to_bytes()
        signature = EventSigner(erp_private).sign(genuine)
        altered = genuine.replace(b'"last_name":"X"', b'"last_name":"Y"')
        await raw.send_and_wait(
            MASTERDATA.name, altered, key=account.encode(), headers=[(SIGNATURE_HEADER, signature.encode())]
        )
        await EventPublisher(erp).publish(contact(account, "genuine"))
        deadline = time.monotonic() + 30
        while "genuine" not in received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await asyncio.gather(broker.stop(), erp.stop(), impostor.stop(), raw.stop())
    assert received == ["genuine"], "only the producer's own, unaltered event is handled"
    dead = await dead_letters(kafka_settings.bootstrap_servers, account, expected=3)
    reasons: dict[str, Any] = {body.split('"contact_id":"')[1].split('"')[0]: why for body, why in dead.items()}
    assert set(reasons) == {"forged", "unsigned", "tampered"}
    assert b"unsigned message" in reasons["unsigned"]
    assert b"does not match producer" in reasons["forged"]
    assert b"does not match producer" in reasons["tampered"]


def test_rotation_trusts_old_and_new_key_and_nothing_else() -> None:
    old_private, old_public = generate_keypair()
    new_private, new_public = generate_keypair()
    verifier = EventVerifier({"letters": [old_public, new_public]})
    body = b'{"event_type":"LetterReleased"}'
    assert verifier.problem("letters", body, EventSigner(old_private).sign(body)) is None
    assert verifier.problem("letters", body, EventSigner(new_private).sign(body)) is None
    assert (
        verifier.problem("splitter", body, EventSigner(new_private).sign(body))
        == "no trusted key for producer 'splitter'"
    )
    assert verifier.problem("letters", body, "not base64!") == "malformed signature"


def test_the_key_that_verified_last_is_tried_first_and_every_trusted_key_still_counts() -> None:
    """Master data signed by the importer's key (second in the list) must not cost a failed check of the ERP's key
    every time; a message of the other key, and a forged one, are still judged right."""
    erp_private, erp_public = generate_keypair()
    importer_private, importer_public = generate_keypair()
    stranger_private, _ = generate_keypair()
    verifier = EventVerifier({"erp-integration": [erp_public, importer_public]})
    tried: list[int] = []
    keys = verifier._keys["erp-integration"]

    class Counting:
        def __init__(self, index: int) -> None:
            self.index = index

        def verify(self, signature: bytes, body: bytes) -> None:
            tried.append(self.index)
            keys_before[self.index].verify(signature, body)

    keys_before = list(keys)
    verifier._keys["erp-integration"] = [Counting(0), Counting(1)]  # type: ignore[list-item]
    body = b'{"event_type":"ContactUpserted"}'
    for _ in range(3):
        assert verifier.problem("erp-integration", body, EventSigner(importer_private).sign(body)) is None
    assert tried == [0, 1, 1, 1]  # one miss, then the importer's key first
    tried.clear()
    assert verifier.problem("erp-integration", body, EventSigner(erp_private).sign(body)) is None
    assert verifier.problem("erp-integration", body, EventSigner(erp_private).sign(body)) is None
    assert tried == [1, 0, 0]
    assert verifier.problem("erp-integration", body, EventSigner(stranger_private).sign(body)) == (
        "signature does not match producer 'erp-integration'"
    )


async def test_deeply_nested_json_is_dead_lettered_and_the_partition_goes_on(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    """A few KB of "[[[[…" made json.loads raise RecursionError (not a ValueError) before the signature check.

    It escaped the parser, the message was handed back and redelivered for ever: one unsigned message stopped the
    partition for every account. Now it is dead-lettered like any unreadable message, signed or not.
    """
    account = make_id("acc")
    erp_private, erp_public = generate_keypair()
    base = {"bootstrap_servers": kafka_settings.bootstrap_servers, "session_timeout_ms": 2000}
    erp = make_broker(KafkaSettings(**base, signing_key=SecretStr(erp_private)), service="erp")
    broker = make_broker(
        KafkaSettings(**base, heartbeat_interval_ms=500, trusted_producers={"erp-integration": [erp_public]}),
        service="victim",
    )
    received: list[str] = []

    async def on_contact(envelope: Envelope) -> None:
        if envelope.account_id == account:
            payload = envelope.payload
            assert isinstance(payload, ContactUpserted)
            received.append(payload.contact_id)

    consumer = EventConsumer(broker, service="victim", backoff_seconds=0.05)
    consumer.subscribe(
        MASTERDATA,
        {"ContactUpserted": on_contact},
        group_id=make_id("g"),
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    raw = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    nested = b'{"event_type":"ContactUpserted","payload":' + b"[" * 5000 + b"]" * 5000 + b"}"
    await asyncio.gather(broker.start(), erp.start(), raw.start())
    try:
        # The same partition as the genuine event (same key): a stalled partition would never deliver it.
        await raw.send_and_wait(MASTERDATA.name, nested, key=account.encode())
        signed = EventSigner(erp_private).sign(nested)
        await raw.send_and_wait(
            MASTERDATA.name, nested, key=account.encode(), headers=[(SIGNATURE_HEADER, signed.encode())]
        )
        await EventPublisher(erp).publish(contact(account, "genuine"))
        deadline = time.monotonic() + 60
        while "genuine" not in received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await asyncio.gather(broker.stop(), erp.stop(), raw.stop())
    assert received == ["genuine"], "the partition went on past the nested messages"
    reader = AIOKafkaConsumer(
        MASTERDATA.dead_letter,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=f"r-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await reader.start()
    reasons: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(reasons) < 2 and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                reasons += [dict(r.headers)["dlq_reason"] for r in records if r.key == account.encode()]
    finally:
        await reader.stop()
    assert len(reasons) == 2
    assert any(b"unsigned message" in r for r in reasons), reasons
    assert any(b"invalid message" in r and b"recursion" in r for r in reasons), reasons
