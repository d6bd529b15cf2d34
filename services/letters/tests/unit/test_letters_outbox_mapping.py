"""Domain events -> wire events, deterministic event ids, and the relay's position handling (SQLite store)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from letters_testkit import STAFF, LetterBuilder

from smartpost_letters.adapters.relay import RELAY_NAME, NotificationLogRelay
from smartpost_letters.application import LettersApplication, event_store_env
from smartpost_letters.domain.models import DocumentRole
from smartpost_letters.integration import wire_envelopes
from smartpost_shared.contracts.envelope import parse_envelope
from smartpost_shared.contracts.letters import PrintOptions

TODAY = datetime.now(UTC).date()


def test_each_wire_event_is_built_from_the_stored_event_with_stable_ids():
    b = LetterBuilder()
    b.attach("doc-1").attach("att", DocumentRole.ATTACHMENT).attach("doc-2")
    b.letter.start_split(actor=STAFF)
    b.split("doc-1", 2).split("doc-2", 1).assign("doc-1").assign("doc-2")
    b.letter.discard_part(part_id="doc-2-p0", actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    b.letter.release(notify_by_email=True, actor=STAFF)
    b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)
    b.letter.revoke(unit_id="unit-0", item_ids=None, reason="r", actor=STAFF)
    b.letter.delete(reason="weg", actor=STAFF)
    events = b.letter.collect_events()
    envelopes = [env for e in events for env in wire_envelopes(e)]
    types = [e.event_type for e in envelopes]
    assert types == [
        "LetterCreated",
        "SplitRequested",
        "SplitRequested",
        "AssignmentCorrected",
        "LetterReleased",
        "PrintOrdered",
        "LetterItemsRevoked",
        "LetterItemsRevoked",
    ]
    split_requests = [e.payload for e in envelopes if e.event_type == "SplitRequested"]
    assert [r.document_id for r in split_requests] == ["doc-1", "doc-2"]
    assert split_requests[0].attachment_keys == [b.letter.document("att").source_key]
    released = envelopes[4].payload
    assert [i.part_id for i in released.items] == ["doc-1-p0", "doc-1-p1"]
    assert envelopes[-1].payload.letter_deleted is True
    assert envelopes[-1].payload.item_ids == [f"{b.lid}:doc-1-p1"]
    assert all(e.account_id == "acc-1" and e.correlation_id == b.letter.id for e in envelopes)
    again = [env for e in events for env in wire_envelopes(e)]
    assert [e.event_id for e in again] == [e.event_id for e in envelopes]
    assert len({e.event_id for e in envelopes}) == len(envelopes)
    for env in envelopes:  # consumers can parse every envelope
        assert parse_envelope(env.to_bytes()).payload == env.payload


class FakePublisher:
    def __init__(self, fail_after: int | None = None):
        self.sent = []
        self.fail_after = fail_after

    async def publish(self, envelope, *, body=None):
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("broker down")
        assert body == envelope.to_bytes()
        self.sent.append(envelope)


@pytest.fixture
def event_app(tmp_path):
    app = LettersApplication(event_store_env(f"sqlite:///{tmp_path}/events.sqlite3"))
    yield app
    app.close()


async def test_relay_publishes_in_order_records_position_and_retries_after_failure(event_app):
    letters = []
    for _ in range(3):
        b = LetterBuilder()
        b.letter = b.letter
        b.attach()
        b.letter.start_split(actor=STAFF)
        event_app.save(b.letter)
        letters.append(b.letter)
    failing = FakePublisher(fail_after=4)
    relay = NotificationLogRelay(event_app, failing, event_app.factory.tracking_recorder(), batch_size=100)
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    assert relay.position() == 0  # nothing recorded: the whole batch goes out again
    publisher = FakePublisher()
    relay = NotificationLogRelay(event_app, publisher, event_app.factory.tracking_recorder(), batch_size=4)
    while await relay.publish_pending():
        pass
    assert [e.event_id for e in publisher.sent[:4]] == [e.event_id for e in failing.sent]
    assert [e.event_type for e in publisher.sent] == ["LetterCreated", "SplitRequested"] * 3
    assert relay.position() == event_app.recorder.max_notification_id()
    assert await relay.publish_pending() == 0
    assert event_app.factory.tracking_recorder().max_tracking_id(RELAY_NAME) == relay.position()


async def test_relay_skips_gaps_in_notification_ids(event_app):
    b = LetterBuilder()
    event_app.save(b.letter)
    publisher = FakePublisher()
    relay = NotificationLogRelay(event_app, publisher, event_app.factory.tracking_recorder())
    await relay.publish_pending()
    b.attach()
    b.letter.start_split(actor=STAFF)
    event_app.save(b.letter)  # notifications 2 (attach) and 3 (split requested)
    b2 = LetterBuilder()
    event_app.save(b2.letter)  # notification 4
    # Simulate a hole in the log like PostgreSQL leaves after a rolled-back insert: notification 2 never appears.
    with event_app.recorder.datastore.transaction(commit=True) as c:
        c.execute("DELETE FROM stored_events WHERE rowid = 2")
    await relay.publish_pending()
    ids = [n.id for n in event_app.recorder.select_notifications(start=1, limit=10)]
    assert ids == [1, 3, 4]
    assert [e.event_type for e in publisher.sent] == ["LetterCreated", "SplitRequested", "LetterCreated"]
    assert publisher.sent[-1].payload.letter_id == str(b2.letter.id)
    assert relay.position() == ids[-1]


async def test_relay_decodes_and_serialises_off_the_event_loop(event_app, monkeypatch):
    """A release of thousands of letters is megabytes to decode and serialise: never on the loop (HTTP answers)."""
    import threading

    from smartpost_letters.adapters import relay as relay_module

    threads: list[int] = []
    real = relay_module.wire_envelopes

    def recording(event):
        threads.append(threading.get_ident())
        return real(event)

    monkeypatch.setattr(relay_module, "wire_envelopes", recording)
    b = LetterBuilder()
    b.attach()
    b.letter.start_split(actor=STAFF)
    event_app.save(b.letter)
    publisher = FakePublisher()
    relay = NotificationLogRelay(event_app, publisher, event_app.factory.tracking_recorder())
    assert await relay.publish_pending() == 3
    assert [e.event_type for e in publisher.sent] == ["LetterCreated", "SplitRequested"]
    assert len(threads) == 3
    assert threading.get_ident() not in threads


def test_snapshots_keep_long_histories_fast_and_equal(tmp_path):
    app = LettersApplication(event_store_env(f"sqlite:///{tmp_path}/e.sqlite3"), snapshot_interval=10)
    b = LetterBuilder().to_review(2)
    for i in range(30):
        b.letter.reassign_part(part_id="doc-1-p0", contact_id=f"c{i}", property_id=None, unit_id=None, actor=STAFF)
    app.save(b.letter)
    # Snapshots are taken on save at multiples of the interval; force one so the replay starts from it.
    app.take_snapshot(b.letter.id)
    assert list(app.snapshots.get(b.letter.id, desc=True, limit=1))
    loaded = app.repository.get(b.letter.id)
    assert loaded.part("doc-1-p0").assignment.contact_id == "c29"
    assert loaded.version == b.letter.version
    assert loaded.processed_commands == b.letter.processed_commands
    assert loaded.documents == b.letter.documents
    assert loaded.letter_date == b.letter.letter_date
    assert loaded.status == b.letter.status
    app.close()


def test_event_store_env_parses_urls():
    env = event_store_env("postgresql://app:app@127.0.0.1:5432/letters")
    assert env["POSTGRES_DBNAME"] == "letters"
    assert env["POSTGRES_PORT"] == "5432"
    with pytest.raises(ValueError, match="unsupported"):
        event_store_env("mysql://x")
    assert uuid.UUID(str(uuid.uuid4()))
