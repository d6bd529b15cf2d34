"""No message above 1 MiB on any topic, whatever the letter's size (claim check, see smartpost_shared.messaging).

Every registered event type is scaled to the mission's size: a 10,000-page source document cut into 4,000 parts
(every list of the golden example repeated 4,000 times with distinct ids, assignments with their candidates), then
put on the wire the way every publisher does. The wire bytes stay below the bound; the consumer side gets back
exactly the envelope that was published.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from smartpost_shared.contracts import parse_envelope, registered_payloads
from smartpost_shared.contracts.examples import example_messages
from smartpost_shared.messaging import (
    CLAIM_CHECK_BYTES,
    MAX_MESSAGE_BYTES,
    ClaimCheck,
    EventPublisher,
    MessageTooLargeError,
    OutboxRelay,
    PermanentError,
    PublishHealth,
)
from smartpost_shared.storage import MemoryStore

PARTS = 4_000
PAGES = 10_000
ID_FIELDS = ("part_id", "item_id", "contact_id", "contract_id", "unit_id", "document_id")


def _scaled_item(item: Any, n: int) -> Any:
    if isinstance(item, str):
        return f"{item}-{n:05d}"
    if isinstance(item, dict):
        out = copy.deepcopy(item)
        for key in ID_FIELDS:
            if isinstance(out.get(key), str) and key != "document_id":
                out[key] = f"{out[key]}-{n:05d}"
        if "index" in out:
            out["index"] = n
        if "first_page" in out:
            out["first_page"], out["last_page"], out["page_count"] = 2 * n + 1, 2 * n + 2, 2
        if out.get("candidates"):
            out["candidates"] = [copy.deepcopy(out["candidates"][0]) for _ in range(3)]
        return out
    return item


def scaled_message(message: dict[str, Any]) -> dict[str, Any]:
    """The golden message with every non-empty list of the payload grown to PARTS entries."""
    scaled = copy.deepcopy(message)
    payload = scaled["payload"]
    for key, value in list(payload.items()):
        if isinstance(value, list) and value and key not in {"path", "recipient_groups", "folder"}:
            payload[key] = [_scaled_item(value[0], n) for n in range(PARTS)]
    if "source_page_count" in payload:
        payload["source_page_count"] = PAGES
    return scaled


@pytest.mark.parametrize("key", sorted(registered_payloads()), ids=lambda k: f"{k[0]}.v{k[1]}")
def test_every_event_type_stays_below_one_mib_at_ten_thousand_pages(key: tuple[str, int]) -> None:
    message = scaled_message(example_messages()[key])
    envelope = parse_envelope(message)  # still a valid event of its contract
    body = envelope.to_bytes()
    store = MemoryStore()
    wire = ClaimCheck(store).outgoing(body)
    assert len(wire) <= MAX_MESSAGE_BYTES
    assert len(wire) <= CLAIM_CHECK_BYTES
    data = json.loads(wire)
    if len(body) > CLAIM_CHECK_BYTES:
        assert "payload" not in data
        assert data["payload_ref"]["key"] == (
            f"accounts/{envelope.account_id}/events/{envelope.event_type}/{envelope.event_id}.json"
        )
        assert data["event_type"] == envelope.event_type
        assert parse_envelope(ClaimCheck(store).incoming(data)) == envelope
    else:
        assert wire == body
        assert parse_envelope(wire) == envelope


def test_the_big_events_really_exceed_the_bound_without_the_claim_check() -> None:
    """Guards the test above: these are the events that stopped the pipeline at ~1,150 letters."""
    messages = example_messages()
    for event_type in ("DocumentSplit", "PagesAssigned", "LetterReleased", "PrintOrdered"):
        body = parse_envelope(scaled_message(messages[(event_type, 1)])).to_bytes()
        assert len(body) > CLAIM_CHECK_BYTES, event_type
        if event_type in {"DocumentSplit", "PagesAssigned"}:
            assert len(body) > MAX_MESSAGE_BYTES, event_type


def test_a_big_envelope_without_object_storage_is_refused_permanently() -> None:
    body = parse_envelope(scaled_message(example_messages()[("PagesAssigned", 1)])).to_bytes()
    with pytest.raises(MessageTooLargeError):
        ClaimCheck(None).outgoing(body)


def test_a_claim_check_that_does_not_match_its_object_is_a_permanent_error() -> None:
    store = MemoryStore()
    body = parse_envelope(scaled_message(example_messages()[("DocumentSplit", 1)])).to_bytes()
    data = json.loads(ClaimCheck(store).outgoing(body))
    store.put(data["payload_ref"]["key"], body.replace(b"10000", b"10001"))
    with pytest.raises(PermanentError, match="sha256"):
        ClaimCheck(store).incoming(data)
    store.delete(data["payload_ref"]["key"])
    with pytest.raises(PermanentError, match="not found"):
        ClaimCheck(store).incoming(data)


class _RecordingBroker:
    def __init__(self, *, fail: BaseException | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail = fail

    async def publish(self, body: bytes, **kwargs: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        self.sent.append(body)
        if kwargs.get("no_confirm"):
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return None


def test_publisher_puts_only_bounded_messages_on_the_wire() -> None:
    store = MemoryStore()
    broker = _RecordingBroker()
    publisher = EventPublisher(broker, store=store)  # type: ignore[arg-type]
    envelope = parse_envelope(scaled_message(example_messages()[("LetterReleased", 1)]))
    asyncio.run(publisher.publish(envelope))
    asyncio.run(publisher.publish_raw("letters.events", "L-1", envelope.to_bytes()))
    assert len(broker.sent) == 2
    assert all(len(body) <= CLAIM_CHECK_BYTES for body in broker.sent)
    assert publisher.claim_check.checked_out == 2


def test_publish_health_surfaces_a_message_that_keeps_failing() -> None:
    health = PublishHealth(stuck_after=3)
    assert health.check() == "ok"
    health.failed(ConnectionError("broker down"), {"event_type": "PagesAssigned"})
    assert not health.stuck
    health.failed(ConnectionError("broker down"))
    health.failed(ConnectionError("broker down"))
    assert health.stuck
    assert "3 failed publishes" in health.check()
    health.succeeded()
    assert health.check() == "ok"
    health.failed(MessageTooLargeError("PagesAssigned of 3500000 bytes"), {"letter_id": "L-1"})
    assert health.stuck  # a permanent error is surfaced at once
    assert "letter_id=L-1" in health.check()


def test_outbox_relay_keeps_a_row_it_cannot_publish_and_reports_it(tmp_path: Any) -> None:
    from smartpost_shared.contracts import make_envelope
    from smartpost_shared.db import add_to_outbox, create_platform_tables, make_engine, pending_outbox

    engine = make_engine(f"sqlite:///{tmp_path}/relay.sqlite3")
    create_platform_tables(engine)
    envelope = parse_envelope(scaled_message(example_messages()[("PagesAssigned", 1)]))
    small = make_envelope(
        parse_envelope(example_messages()[("PagesAssigned", 1)]).payload, account_id="a", producer="t"
    )
    with engine.begin() as conn:
        add_to_outbox(conn, small)
        add_to_outbox(conn, envelope)
    broker = _RecordingBroker()
    relay = OutboxRelay(engine, EventPublisher(broker))  # type: ignore[arg-type] - no object storage
    with pytest.raises(MessageTooLargeError):
        asyncio.run(relay.publish_pending())
    assert relay.health.stuck
    assert "PagesAssigned" in relay.health.check()
    with engine.connect() as conn:
        pending = pending_outbox(conn)
    assert [json.loads(r["body"])["event_id"] for r in pending] == [str(envelope.event_id)]  # nothing lost
    assert len(broker.sent) == 1  # the small one before it went out and is marked
    store = MemoryStore()
    relay.publisher = EventPublisher(broker, store=store)  # type: ignore[arg-type]
    assert asyncio.run(relay.publish_pending()) == 1
    assert relay.health.check() == "ok"
