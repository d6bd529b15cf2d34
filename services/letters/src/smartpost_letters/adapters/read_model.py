"""Letter list read model in the service's SQL database (SQLite by default, PostgreSQL by URL).

A projector follows the event store's notification log and upserts one summary row per letter; the row changes
and the projector's position commit in ONE transaction, so a crash re-projects from the last position and the
upsert makes that harmless. Queries always filter by account.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select, update

from smartpost_letters.domain.letter import SerialLetter

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from smartpost_letters.application import LettersApplication

metadata = MetaData()

letter_summaries = Table(
    "letter_summaries",
    metadata,
    Column("letter_id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("document_type_id", String(128), nullable=False),
    Column("document_type_path", Text, nullable=False),
    Column("scope", String(32), nullable=False),
    Column("property_id", String(128), nullable=True),
    Column("status", String(32), nullable=False),
    Column("letter_date", String(10), nullable=False),
    Column("documents", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("assigned", Integer, nullable=False),
    Column("undecided", Integer, nullable=False),
    Column("discarded", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("released_items", Integer, nullable=False),
    Column("revoked_items", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
)

PROJECTION = "letter_summaries"


def summary_row(letter: SerialLetter) -> dict[str, Any]:
    parts = letter.parts()
    return {
        "letter_id": str(letter.id),
        "account_id": letter.account_id,
        "title": letter.title,
        "document_type_id": letter.document_type.id,
        "document_type_path": json.dumps(letter.document_type.path, ensure_ascii=False),
        "scope": letter.scope.value,
        "property_id": letter.property_id,
        "status": letter.status.value,
        "letter_date": letter.letter_date.isoformat(),
        "documents": len(letter.documents),
        "parts": len(parts),
        "assigned": sum(1 for p in parts if p.is_assigned),
        "undecided": sum(1 for p in parts if not p.is_decided),
        "discarded": sum(1 for p in parts if p.is_discarded),
        "warnings": sum(len(d.assignment_warnings) + len(d.split_warnings) for d in letter.documents),
        "released_items": len(letter.items),
        "revoked_items": len(letter.revoked),
        "version": letter.version,
        "created_by": letter.created_by,
        "created_at": letter.created_on,
        "updated_at": letter.modified_on,
    }


class LetterSummaryProjector:
    def __init__(
        self, app: LettersApplication, engine: Engine, *, batch_size: int = 500, create_tables: bool = True
    ) -> None:
        self.app = app
        self.engine = engine
        self.batch_size = batch_size
        self._lock = threading.Lock()
        if create_tables:  # the service creates them in its background start-up (the database may still be down)
            self.create_tables()

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    def position(self, conn: Connection) -> int:
        value = conn.execute(select(projection_positions.c.position).where(projection_positions.c.name == PROJECTION))
        found = value.scalar_one_or_none()
        return int(found) if found is not None else 0

    def catch_up(self) -> int:
        """Project everything new in the notification log; returns the number of notifications read."""
        total = 0
        with self._lock:
            while True:
                with self.engine.begin() as conn:
                    position = self.position(conn)
                    notifications = self.app.recorder.select_notifications(start=position + 1, limit=self.batch_size)
                    if not notifications:
                        return total
                    letter_ids: dict[uuid.UUID, None] = {}
                    for n in notifications:
                        if "SerialLetter" in n.topic:
                            letter_ids[uuid.UUID(str(n.originator_id))] = None
                    for letter_id in letter_ids:
                        with self.app.letters.lock(letter_id):
                            letter: object = self.app.letters.get(letter_id)
                            assert isinstance(letter, SerialLetter)
                            row = summary_row(letter)
                        conn.execute(delete(letter_summaries).where(letter_summaries.c.letter_id == row["letter_id"]))
                        conn.execute(insert(letter_summaries).values(**row))
                    last = notifications[-1].id
                    if (
                        position == 0
                        and not conn.execute(
                            select(projection_positions.c.name).where(projection_positions.c.name == PROJECTION)
                        ).first()
                    ):
                        conn.execute(insert(projection_positions).values(name=PROJECTION, position=last))
                    else:
                        conn.execute(
                            update(projection_positions)
                            .where(projection_positions.c.name == PROJECTION)
                            .values(position=last)
                        )
                    total += len(notifications)

    def list_letters(
        self, account_id: str, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        query = select(letter_summaries).where(letter_summaries.c.account_id == account_id)
        if status:
            query = query.where(letter_summaries.c.status == status)
        query = query.order_by(letter_summaries.c.updated_at.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["document_type_path"] = json.loads(row["document_type_path"])
            for key in ("created_at", "updated_at"):
                value = row[key]
                if isinstance(value, datetime) and value.tzinfo is None:
                    row[key] = value.replace(tzinfo=UTC)  # SQLite drops the zone; we stored UTC
        return rows
