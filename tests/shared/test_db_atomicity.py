"""The processed-event row, the handler's effects and the outbox commit together or not at all (SQLite and PostgreSQL).

Regression: with pysqlite's lazy transactions the SAVEPOINT in claim_event started the transaction and its RELEASE
committed the ledger row alone; a crash before the effects then lost the event for good (seen in the notifier's
kill -9 test as one missing mail).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, inspect, select, text, update

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.db import (
    add_many_to_outbox,
    add_to_outbox,
    claim_event,
    create_platform_tables,
    make_engine,
    outbox,
    pending_outbox,
    platform_metadata,
    processed_events,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.real)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_crash_after_claiming_leaves_neither_ledger_row_nor_effects(database_url: str) -> None:
    engine = make_engine(database_url)
    create_platform_tables(engine)
    metadata = MetaData()
    effects = Table("effects", metadata, Column("id", String(40), primary_key=True))
    metadata.create_all(engine)
    event = make_envelope(ContactUpserted(contact_id="c1"), account_id="a", producer="test")

    with pytest.raises(RuntimeError), engine.begin() as conn:  # noqa: PT012 - the crash is inside the transaction
        assert claim_event(conn, "consumer", event.event_id)
        add_to_outbox(conn, event)
        conn.execute(insert(effects).values(id=str(uuid.uuid4())))
        raise RuntimeError("crash before commit")

    with engine.connect() as conn:
        for table in (processed_events, outbox, effects):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name

    # Redelivery processes it (the ledger did not swallow it), a second redelivery is recognised.
    with engine.begin() as conn:
        assert claim_event(conn, "consumer", event.event_id)
        conn.execute(insert(effects).values(id="once"))
    with engine.begin() as conn:
        assert not claim_event(conn, "consumer", event.event_id)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(effects)).scalar_one() == 1
    engine.dispose()


def test_the_relay_finds_pending_rows_through_the_partial_index_also_in_an_older_database(database_url: str) -> None:
    """Published rows stay in the outbox; the relay's poll must not scan them (it did: 15 ms per poll at 15,000)."""
    engine = make_engine(database_url)
    platform_metadata.create_all(engine)
    with engine.begin() as conn:  # a database from before the index
        conn.execute(text("DROP INDEX ix_outbox_pending"))
    create_platform_tables(engine)
    assert "ix_outbox_pending" in {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    published = make_envelope(ContactUpserted(contact_id="c1"), account_id="a", producer="test")
    pending = make_envelope(ContactUpserted(contact_id="c2"), account_id="a", producer="test")
    with engine.begin() as conn:
        add_to_outbox(conn, published)
        add_to_outbox(conn, pending)
        conn.execute(update(outbox).where(outbox.c.event_id == str(published.event_id)).values(published_at=func.now()))
    with engine.connect() as conn:
        assert [r["body"] for r in pending_outbox(conn)] == [pending.to_bytes().decode()]
        if engine.dialect.name == "sqlite":
            plan = conn.execute(
                text("EXPLAIN QUERY PLAN SELECT position FROM outbox WHERE published_at IS NULL ORDER BY position")
            ).fetchall()
            assert "ix_outbox_pending" in str(plan)


def test_many_events_are_queued_in_order_and_each_event_id_once(database_url: str) -> None:
    """An import queues thousands of events with one statement: same rows, same order as one by one."""
    engine = make_engine(database_url)
    create_platform_tables(engine)
    events = [
        make_envelope(ContactUpserted(contact_id=f"c{i}"), account_id="a", producer="test") for i in range(1, 301)
    ]
    with engine.begin() as conn:
        add_to_outbox(conn, events[5])  # queued earlier (a re-import): kept where it was
        add_many_to_outbox(conn, [*events, events[7]])  # and one twice in the same call
        add_many_to_outbox(conn, [])
    with engine.connect() as conn:
        queued = [r["body"] for r in pending_outbox(conn, limit=1000)]
    expected = [events[5], *events[:5], *events[6:]]
    assert queued == [e.to_bytes().decode() for e in expected]
