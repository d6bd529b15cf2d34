"""A service's own relational database: read models, the processed-events ledger, the transactional outbox.

SQLite by default, PostgreSQL by URL. The ledger makes consumers idempotent.

The ledger row, the handler's effects and any outgoing events are written in ONE transaction, so a crash at any
point either keeps all of them or none; redelivery then finds the ledger row and changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection, Engine

    from smartpost_shared.contracts.envelope import Envelope

platform_metadata = MetaData()

processed_events = Table(
    "processed_events",
    platform_metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox",
    platform_metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("message_key", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
)

# Proofs that may be used once (a caller token's id on a state-changing request, a signed webhook): shared by every
# replica of a service through its database, so a captured proof replayed to another replica is refused too.
# ``proof`` is a SHA-256 of the proof's key (fixed length, no token material stored); rows go after ``expires_at``.
seen_proofs = Table(
    "seen_proofs",
    platform_metadata,
    Column("proof", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# The relay asks for the pending rows several times a second, and published rows stay (import progress reads them):
# without this partial index every poll scanned the whole outbox (15,000 rows after an account import: a quarter of
# the assignment service's CPU while it matched a 4,000-letter split). Only pending rows are in it.
OUTBOX_PENDING_INDEX = Index(
    "ix_outbox_pending",
    outbox.c.position,
    sqlite_where=outbox.c.published_at.is_(None),
    postgresql_where=outbox.c.published_at.is_(None),
)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so a consumer and an API can share the file."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is durable against a process crash (kill -9) once write() returned, without an
            # fsync per commit. Only an OS crash or power loss can roll back the latest commits; production runs on
            # PostgreSQL. The fsync per commit also widened the notifier's unavoidable "committed, final dot not yet
            # written" window to milliseconds.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # pysqlite opens transactions lazily, only before DML: a SAVEPOINT (claim_event) issued first then
            # *starts* the transaction and its RELEASE commits it, so the processed-event row was committed apart
            # from the handler's effects (a kill -9 in between lost the event). Let SQLAlchemy issue BEGIN itself.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE: take the write lock up front, waiting up to the busy timeout. A deferred transaction that
            # reads first and writes later gets "database is locked" at once when another writer got in between.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def create_platform_tables(engine: Engine) -> None:
    platform_metadata.create_all(engine)
    # create_all adds the indexes of new tables only: a database from before the index gets it here. IF NOT EXISTS
    # makes it idempotent; on PostgreSQL two replicas creating it at the same instant can still collide (catalog
    # unique violation), which fails that replica's "database" start-up step, and that step is retried.
    with engine.begin() as conn:
        conn.execute(CreateIndex(OUTBOX_PENDING_INDEX, if_not_exists=True))


def claim_event(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """Record that ``consumer`` processes ``event_id`` in the current transaction. False if it already did."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(processed_events).values(
                    consumer=consumer, event_id=str(event_id), processed_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        return False
    return True


def was_processed(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """Whether ``consumer`` has processed ``event_id`` (a read; :func:`claim_event` is what records it)."""
    found = conn.execute(
        select(processed_events.c.event_id).where(
            processed_events.c.consumer == consumer, processed_events.c.event_id == str(event_id)
        )
    ).first()
    return found is not None


def claim_events(conn: Connection, consumer: str, envelopes: list[Envelope]) -> list[Envelope]:
    """Record a batch of events for ``consumer`` in the current transaction.

    Returns those not processed before (in order, each event id once): two statements for the whole batch instead
    of a savepoint per event.
    """
    unique = list({str(e.event_id): e for e in envelopes}.values())
    ids = [str(e.event_id) for e in unique]
    seen: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        seen |= {
            str(r[0])
            for r in conn.execute(
                select(processed_events.c.event_id).where(
                    processed_events.c.consumer == consumer, processed_events.c.event_id.in_(chunk)
                )
            )
        }
    new = [e for e in unique if str(e.event_id) not in seen]
    if new:
        now = datetime.now(UTC)
        conn.execute(
            insert(processed_events),
            [{"consumer": consumer, "event_id": str(e.event_id), "processed_at": now} for e in new],
        )
    return new


def add_to_outbox(conn: Connection, envelope: Envelope) -> None:
    """Queue an outgoing event in the current transaction; :class:`OutboxRelay` publishes it after commit.

    The same event id queued twice is kept once (the relay would publish it once anyway).
    """
    from smartpost_shared.topics import topic_for_event  # noqa: PLC0415 - avoid import cycle

    topic = topic_for_event(envelope.event_type)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(outbox).values(
                    event_id=str(envelope.event_id),
                    topic=topic.name,
                    message_key=message_key(envelope),
                    body=envelope.to_bytes().decode(),
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        return


def add_many_to_outbox(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Queue many outgoing events in order in the current transaction, with one statement.

    Same result as :func:`add_to_outbox` for each: an event id already queued (or twice in ``envelopes``) is kept once.

    An account import is 20,000 events: one savepoint and one insert per event was a third of the import's time in
    the importing service.
    """
    from smartpost_shared.topics import topic_for_event  # noqa: PLC0415 - avoid import cycle

    if not envelopes:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": str(envelope.event_id),
            "topic": topic_for_event(envelope.event_type).name,
            "message_key": message_key(envelope),
            "body": envelope.to_bytes().decode(),
            "created_at": now,
        }
        for envelope in envelopes
    ]
    insert_ = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert_(outbox).on_conflict_do_nothing(index_elements=["event_id"]), rows)


def message_key(envelope: Envelope) -> str:
    from smartpost_shared.topics import topic_for_event  # noqa: PLC0415 - avoid import cycle

    key_field = topic_for_event(envelope.event_type).key
    if key_field == "account_id":
        return envelope.account_id
    value = getattr(envelope.payload, key_field, None)
    return str(value) if value is not None else envelope.account_id


def pending_outbox(conn: Connection, limit: int = 500) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(outbox.c.position, outbox.c.topic, outbox.c.message_key, outbox.c.body)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.position)
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def mark_published(conn: Connection, positions: list[int]) -> None:
    if positions:
        conn.execute(update(outbox).where(outbox.c.position.in_(positions)).values(published_at=datetime.now(UTC)))


def outbox_body(row: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(row["body"])
    return body
