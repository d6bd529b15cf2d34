"""Import progress: how many of an import's master-data events are published and applied here.

An import of 20,000 contacts and contracts takes a while to travel through Kafka into every consumer; staff see its
progress with ``GET /imports/{import_id}``: the stored import (:meth:`AssignmentStore.import_status`: status,
counts, row errors) plus ``total`` events, how many the outbox relay has ``published`` and how many are ``applied``
to this service's read model, and the ``stage`` (publishing, applying, applied, rejected).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from smartpost_assignment.adapters.db import AssignmentStore, imports
from smartpost_shared.db import outbox

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def import_status(conn: Connection, *, account_id: str, import_id: str, consumer: str) -> dict[str, Any] | None:
    found = AssignmentStore(conn).import_status(account_id, import_id, consumer)
    if found is None:
        return None
    row = conn.execute(
        select(imports.c.event_ids).where(and_(imports.c.account_id == account_id, imports.c.import_id == import_id))
    ).one()
    event_ids: list[str] = json.loads(row.event_ids)
    published = 0
    for chunk in range(0, len(event_ids), 500):
        wanted = event_ids[chunk : chunk + 500]
        published += conn.execute(
            select(func.count())
            .select_from(outbox)
            .where(and_(outbox.c.event_id.in_(wanted), outbox.c.published_at.is_not(None)))
        ).scalar_one()
    total, applied = len(event_ids), int(found["applied_events"])
    if found["status"] == "rejected":
        stage = "rejected"
    else:
        stage = "applied" if applied >= total else ("publishing" if published < total else "applying")
    return {**found, "total": total, "published": int(published), "applied": applied, "stage": stage}
