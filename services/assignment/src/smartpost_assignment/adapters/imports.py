"""Import status: which master-data events an import queued, how many are published and applied here.

An import of 20,000 contacts and contracts takes a while to travel through Kafka into every consumer; staff see its
progress with ``GET /imports/{import_id}`` (queued, published by the outbox relay, applied to this service's read
model). Each consumer applies master data in batches; this service's ledger is the one the API can read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, DateTime, Integer, String, Table, and_, func, insert, select

from smartpost_assignment.adapters.db import metadata
from smartpost_shared.db import outbox, processed_events

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

imports = Table(
    "asg_imports",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("import_id", String(64), primary_key=True),
    Column("filename", String(300), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("total", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

import_events = Table(
    "asg_import_events",
    metadata,
    Column("import_id", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
)


def record_import(
    conn: Connection, *, account_id: str, import_id: str, filename: str, actor: str, event_ids: Sequence[str]
) -> None:
    """Remember an import's events (the same file imported again is the same import: kept once)."""
    exists = conn.execute(
        select(imports.c.import_id).where(and_(imports.c.account_id == account_id, imports.c.import_id == import_id))
    ).first()
    if exists is not None:
        return
    conn.execute(
        insert(imports).values(
            account_id=account_id,
            import_id=import_id,
            filename=filename[:300],
            actor=actor[:200],
            total=len(event_ids),
            created_at=datetime.now(UTC),
        )
    )
    unique = list(dict.fromkeys(event_ids))
    for start in range(0, len(unique), 1000):
        conn.execute(
            insert(import_events), [{"import_id": import_id, "event_id": e} for e in unique[start : start + 1000]]
        )


def import_status(conn: Connection, *, account_id: str, import_id: str, consumer: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(imports).where(and_(imports.c.account_id == account_id, imports.c.import_id == import_id))
    ).first()
    if row is None:
        return None
    mine = select(import_events.c.event_id).where(import_events.c.import_id == import_id)
    published = conn.execute(
        select(func.count())
        .select_from(outbox)
        .where(and_(outbox.c.event_id.in_(mine), outbox.c.published_at.is_not(None)))
    ).scalar_one()
    applied = conn.execute(
        select(func.count())
        .select_from(processed_events)
        .where(and_(processed_events.c.consumer == consumer, processed_events.c.event_id.in_(mine)))
    ).scalar_one()
    total = int(row.total)
    return {
        "import_id": import_id,
        "filename": row.filename,
        "actor": row.actor,
        "created_at": row.created_at.isoformat(),
        "total": total,
        "published": int(published),
        "applied": int(applied),
        "status": "applied" if applied >= total else ("publishing" if published < total else "applying"),
    }
