"""The processed-event row, the handler's effects and the outbox commit together or not at all (SQLite and PostgreSQL).

Regression: with pysqlite's lazy transactions the SAVEPOINT in claim_event started the transaction and its RELEASE
committed the ledger row alone; a crash before the effects then lost the event for good (seen in the notifier's
kill -9 test as one missing mail).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.db import (
    add_to_outbox,
    claim_event,
    create_platform_tables,
    make_engine,
    outbox,
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
