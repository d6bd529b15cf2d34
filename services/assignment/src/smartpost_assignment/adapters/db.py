"""The service's own tables: letter contexts, pending splits, documents and per-part assignments.

The master-data read model (``md_*`` tables) comes from :mod:`smartpost_shared.masterdata`; the processed-events
ledger and outbox from :mod:`smartpost_shared.db`. All live in the same database so one transaction covers them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)

from smartpost_assignment.domain.matching import LetterContext
from smartpost_shared.contracts.common import LetterScope
from smartpost_shared.contracts.documents import AssignmentStatus, AssignmentWarning, PartAssignment, SplitPart
from smartpost_shared.db import processed_events

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

metadata = MetaData()

letters = Table(
    "asg_letters",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("letter_id", String(128), primary_key=True),
    Column("scope", String(20), nullable=False),
    Column("property_id", String(128)),
    Column("recipient_groups", Text, nullable=False),
    Column("roles", Text, nullable=False),
    Column("include_archived", Boolean, nullable=False),
    Column("letter_date", Date, nullable=False),
    Column("title", String(200), nullable=False, default=""),
)

# The billing period of a letter (LetterCreated.period_start/end, since 2026-11): a table of its own so that
# databases created before need no column migration (create_all adds a missing table, never a missing column).
letter_periods = Table(
    "asg_letter_periods",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("letter_id", String(128), primary_key=True),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
)

# Master-data imports over the API: what was received (or rejected, with the row errors) and which events the
# import produced, so that GET /imports/{id} can tell when they are all applied to the read model.
imports = Table(
    "asg_imports",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("import_id", String(64), primary_key=True),
    Column("status", String(20), nullable=False),  # received | rejected
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("filename", String(300), nullable=False, default=""),
    Column("counts", Text, nullable=False, default="{}"),
    Column("errors", Text, nullable=False, default="[]"),
    Column("event_ids", Text, nullable=False, default="[]"),
)

pending_splits = Table(
    "asg_pending_splits",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("letter_id", String(128), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("envelope", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

documents = Table(
    "asg_documents",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("letter_id", String(128), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("parts", Text, nullable=False),  # the splitter's parts (evidence), JSON list
    Column("warnings", Text, nullable=False, default="[]"),
    Column("revision", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

part_assignments = Table(
    "asg_part_assignments",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("letter_id", String(128), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("part_id", String(128), primary_key=True),
    Column("part_index", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("contact_id", String(128)),
    Column("property_id", String(128)),
    Column("unit_id", String(128)),
    Column("method", String(10)),
    Column("score", Float, nullable=False, default=0.0),
    Column("assignment", Text, nullable=False),  # the full PartAssignment as JSON
    # Staff decided this part (reassign/unassign/discard): automatic runs never change it again.
    Column("confirmed", Boolean, nullable=False, default=False),
    Column("confirmed_by", String(200)),
)


def create_tables(conn_or_engine: Any) -> None:
    metadata.create_all(conn_or_engine)


@dataclass(frozen=True)
class StoredDocument:
    letter_id: str
    document_id: str
    parts: list[SplitPart]
    warnings: list[AssignmentWarning]
    revision: int


@dataclass(frozen=True)
class StoredPart:
    assignment: PartAssignment
    confirmed: bool
    confirmed_by: str | None
    index: int


class AssignmentStore:
    """Reads and writes of the service's tables on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- letters --
    def save_letter(self, context: LetterContext, groups: list[str], title: str) -> None:
        values = {
            "scope": context.scope.value,
            "property_id": context.property_id,
            "recipient_groups": json.dumps(groups),
            "roles": json.dumps(sorted(context.roles)),
            "include_archived": context.include_archived,
            "letter_date": context.letter_date,
            "title": title,
        }
        key = and_(letters.c.account_id == context.account_id, letters.c.letter_id == context.letter_id)
        if self.conn.execute(select(letters.c.letter_id).where(key)).first() is None:
            self.conn.execute(
                insert(letters).values(account_id=context.account_id, letter_id=context.letter_id, **values)
            )
        else:
            self.conn.execute(update(letters).where(key).values(**values))
        period_key = and_(
            letter_periods.c.account_id == context.account_id, letter_periods.c.letter_id == context.letter_id
        )
        self.conn.execute(delete(letter_periods).where(period_key))
        if context.period_start is not None and context.period_end is not None:
            self.conn.execute(
                insert(letter_periods).values(
                    account_id=context.account_id,
                    letter_id=context.letter_id,
                    period_start=context.period_start,
                    period_end=context.period_end,
                )
            )

    # -- imports --
    def record_import(
        self,
        account_id: str,
        import_id: str,
        *,
        status: str,
        actor: str,
        filename: str,
        counts: dict[str, int],
        errors: list[dict[str, str]],
        event_ids: list[str],
    ) -> None:
        key = and_(imports.c.account_id == account_id, imports.c.import_id == import_id)
        self.conn.execute(delete(imports).where(key))
        self.conn.execute(
            insert(imports).values(
                account_id=account_id,
                import_id=import_id,
                status=status,
                received_at=datetime.now(UTC),
                actor=actor,
                filename=filename[:300],
                counts=json.dumps(counts),
                errors=json.dumps(errors),
                event_ids=json.dumps(event_ids),
            )
        )

    def import_status(self, account_id: str, import_id: str, consumer: str) -> dict[str, Any] | None:
        """Status: received (queued), applied (every event processed by ``consumer``) or rejected (row errors)."""
        row = self.conn.execute(
            select(imports).where(and_(imports.c.account_id == account_id, imports.c.import_id == import_id))
        ).first()
        if row is None:
            return None
        data = row._mapping  # noqa: SLF001 - SQLAlchemy's documented row mapping accessor
        event_ids: list[str] = json.loads(data["event_ids"])
        applied = 0
        for chunk in range(0, len(event_ids), 500):
            wanted = event_ids[chunk : chunk + 500]
            applied += len(
                self.conn.execute(
                    select(processed_events.c.event_id).where(
                        and_(processed_events.c.consumer == consumer, processed_events.c.event_id.in_(wanted))
                    )
                ).all()
            )
        status = str(data["status"])
        if status == "received" and applied == len(event_ids):
            status = "applied"
        received_at: datetime = data["received_at"]
        return {
            "import_id": import_id,
            "status": status,
            "received_at": received_at.isoformat(),
            "actor": data["actor"],
            "filename": data["filename"],
            "counts": json.loads(data["counts"]),
            "events": len(event_ids),
            "applied_events": applied,
            "errors": json.loads(data["errors"]),
        }

    def letter(self, account_id: str, letter_id: str) -> LetterContext | None:
        row = self.conn.execute(
            select(letters).where(and_(letters.c.account_id == account_id, letters.c.letter_id == letter_id))
        ).first()
        if row is None:
            return None
        data = row._mapping  # noqa: SLF001 - SQLAlchemy's documented row mapping accessor
        letter_date: date = data["letter_date"]
        period = self.conn.execute(
            select(letter_periods.c.period_start, letter_periods.c.period_end).where(
                and_(letter_periods.c.account_id == account_id, letter_periods.c.letter_id == letter_id)
            )
        ).first()
        return LetterContext(
            account_id=account_id,
            letter_id=letter_id,
            scope=LetterScope(data["scope"]),
            property_id=data["property_id"],
            roles=frozenset(json.loads(data["roles"])),
            include_archived=bool(data["include_archived"]),
            letter_date=letter_date,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
        )

    # -- splits that arrived before their letter --
    def park_split(self, account_id: str, letter_id: str, document_id: str, envelope_json: str) -> None:
        key = and_(
            pending_splits.c.account_id == account_id,
            pending_splits.c.letter_id == letter_id,
            pending_splits.c.document_id == document_id,
        )
        self.conn.execute(delete(pending_splits).where(key))
        self.conn.execute(
            insert(pending_splits).values(
                account_id=account_id,
                letter_id=letter_id,
                document_id=document_id,
                envelope=envelope_json,
                received_at=datetime.now(UTC),
            )
        )

    def take_pending_splits(self, account_id: str, letter_id: str) -> list[str]:
        key = and_(pending_splits.c.account_id == account_id, pending_splits.c.letter_id == letter_id)
        rows = self.conn.execute(select(pending_splits.c.envelope).where(key).order_by(pending_splits.c.received_at))
        envelopes = [str(r[0]) for r in rows]
        self.conn.execute(delete(pending_splits).where(key))
        return envelopes

    # -- documents and parts --
    def save_document(
        self,
        account_id: str,
        letter_id: str,
        document_id: str,
        parts: list[SplitPart],
        warnings: list[AssignmentWarning],
    ) -> int:
        key = and_(
            documents.c.account_id == account_id,
            documents.c.letter_id == letter_id,
            documents.c.document_id == document_id,
        )
        parts_json = json.dumps([p.model_dump(mode="json") for p in parts])
        warnings_json = json.dumps([w.model_dump(mode="json") for w in warnings])
        row = self.conn.execute(select(documents.c.revision).where(key)).first()
        now = datetime.now(UTC)
        if row is None:
            self.conn.execute(
                insert(documents).values(
                    account_id=account_id,
                    letter_id=letter_id,
                    document_id=document_id,
                    parts=parts_json,
                    warnings=warnings_json,
                    revision=1,
                    updated_at=now,
                )
            )
            return 1
        revision = int(row[0]) + 1
        self.conn.execute(
            update(documents)
            .where(key)
            .values(parts=parts_json, warnings=warnings_json, revision=revision, updated_at=now)
        )
        return revision

    def document(self, account_id: str, letter_id: str, document_id: str) -> StoredDocument | None:
        row = self.conn.execute(
            select(documents).where(
                and_(
                    documents.c.account_id == account_id,
                    documents.c.letter_id == letter_id,
                    documents.c.document_id == document_id,
                )
            )
        ).first()
        return _document(row) if row else None

    def documents_of_letter(self, account_id: str, letter_id: str) -> list[StoredDocument]:
        rows = self.conn.execute(
            select(documents)
            .where(and_(documents.c.account_id == account_id, documents.c.letter_id == letter_id))
            .order_by(documents.c.document_id)
        )
        return [_document(r) for r in rows]

    def parts(self, account_id: str, letter_id: str, document_id: str) -> dict[str, StoredPart]:
        rows = self.conn.execute(
            select(part_assignments)
            .where(
                and_(
                    part_assignments.c.account_id == account_id,
                    part_assignments.c.letter_id == letter_id,
                    part_assignments.c.document_id == document_id,
                )
            )
            .order_by(part_assignments.c.part_index)
        )
        result: dict[str, StoredPart] = {}
        for r in rows:
            data = r._mapping  # noqa: SLF001
            result[data["part_id"]] = StoredPart(
                assignment=PartAssignment.model_validate_json(data["assignment"]),
                confirmed=bool(data["confirmed"]),
                confirmed_by=data["confirmed_by"],
                index=int(data["part_index"]),
            )
        return result

    def part(self, account_id: str, letter_id: str, document_id: str, part_id: str) -> StoredPart | None:
        row = self.conn.execute(
            select(part_assignments).where(
                and_(
                    part_assignments.c.account_id == account_id,
                    part_assignments.c.letter_id == letter_id,
                    part_assignments.c.document_id == document_id,
                    part_assignments.c.part_id == part_id,
                )
            )
        ).first()
        if row is None:
            return None
        data = row._mapping  # noqa: SLF001
        return StoredPart(
            assignment=PartAssignment.model_validate_json(data["assignment"]),
            confirmed=bool(data["confirmed"]),
            confirmed_by=data["confirmed_by"],
            index=int(data["part_index"]),
        )

    def assigned_parts(self, account_id: str, letter_id: str, document_id: str) -> list[tuple[str, str, str | None]]:
        """(part id, contact id, unit id) of every assigned part of the document, in document order (columns only)."""
        rows = self.conn.execute(
            select(part_assignments.c.part_id, part_assignments.c.contact_id, part_assignments.c.unit_id)
            .where(
                and_(
                    part_assignments.c.account_id == account_id,
                    part_assignments.c.letter_id == letter_id,
                    part_assignments.c.document_id == document_id,
                    part_assignments.c.status == AssignmentStatus.ASSIGNED.value,
                    part_assignments.c.contact_id.is_not(None),
                    part_assignments.c.contact_id != "",
                )
            )
            .order_by(part_assignments.c.part_index)
        )
        return [(str(part_id), str(contact_id), unit_id) for part_id, contact_id, unit_id in rows]

    def document_warnings_json(self, account_id: str, letter_id: str, document_id: str) -> list[dict[str, Any]] | None:
        """The document's stored warnings as JSON objects (no model validation: a correction keeps most as they are)."""
        key = _document_key(account_id, letter_id, document_id)
        row = self.conn.execute(select(documents.c.warnings).where(key)).first()
        return None if row is None else list(json.loads(row[0] or "[]"))

    def save_document_warnings(
        self, account_id: str, letter_id: str, document_id: str, warnings: list[dict[str, Any]]
    ) -> int:
        """Replace only the warnings of a stored document (its parts stay as the split left them)."""
        key = _document_key(account_id, letter_id, document_id)
        row = self.conn.execute(select(documents.c.revision).where(key)).first()
        if row is None:
            raise LookupError(document_id)
        revision = int(row[0]) + 1
        self.conn.execute(
            update(documents)
            .where(key)
            .values(warnings=json.dumps(warnings), revision=revision, updated_at=datetime.now(UTC))
        )
        return revision

    def insert_parts(
        self, account_id: str, letter_id: str, document_id: str, parts: list[tuple[int, PartAssignment]]
    ) -> None:
        """Store the assignments of parts that have none yet, in one statement (a 4,000-letter split)."""
        if not parts:
            return
        self.conn.execute(
            insert(part_assignments),
            [
                {
                    "account_id": account_id,
                    "letter_id": letter_id,
                    "document_id": document_id,
                    "part_id": assignment.part_id,
                    **_part_values(index, assignment, confirmed=False, confirmed_by=None),
                }
                for index, assignment in parts
            ],
        )

    def save_part(
        self,
        account_id: str,
        letter_id: str,
        document_id: str,
        index: int,
        assignment: PartAssignment,
        *,
        confirmed: bool = False,
        confirmed_by: str | None = None,
    ) -> None:
        key = and_(
            part_assignments.c.account_id == account_id,
            part_assignments.c.letter_id == letter_id,
            part_assignments.c.document_id == document_id,
            part_assignments.c.part_id == assignment.part_id,
        )
        values = _part_values(index, assignment, confirmed=confirmed, confirmed_by=confirmed_by)
        if self.conn.execute(select(part_assignments.c.part_id).where(key)).first() is None:
            self.conn.execute(
                insert(part_assignments).values(
                    account_id=account_id,
                    letter_id=letter_id,
                    document_id=document_id,
                    part_id=assignment.part_id,
                    **values,
                )
            )
        else:
            self.conn.execute(update(part_assignments).where(key).values(**values))


def _part_values(
    index: int, assignment: PartAssignment, *, confirmed: bool, confirmed_by: str | None
) -> dict[str, Any]:
    return {
        "part_index": index,
        "status": assignment.status.value,
        "contact_id": assignment.contact_id,
        "property_id": assignment.property_id,
        "unit_id": assignment.unit_id,
        "method": assignment.method.value if assignment.method else None,
        "score": assignment.score,
        "assignment": assignment.model_dump_json(),
        "confirmed": confirmed,
        "confirmed_by": confirmed_by,
    }


def _document_key(account_id: str, letter_id: str, document_id: str) -> Any:
    return and_(
        documents.c.account_id == account_id,
        documents.c.letter_id == letter_id,
        documents.c.document_id == document_id,
    )


def _document(row: Any) -> StoredDocument:
    data = row._mapping  # noqa: SLF001
    return StoredDocument(
        letter_id=data["letter_id"],
        document_id=data["document_id"],
        parts=[SplitPart.model_validate(p) for p in json.loads(data["parts"])],
        warnings=[AssignmentWarning.model_validate(w) for w in json.loads(data["warnings"])],
        revision=int(data["revision"]),
    )


def delete_parts_except(conn: Connection, account_id: str, letter_id: str, document_id: str, keep: set[str]) -> None:
    """A re-split replaced the document's parts: forget assignments of parts that no longer exist."""
    rows = conn.execute(
        select(part_assignments.c.part_id).where(
            and_(
                part_assignments.c.account_id == account_id,
                part_assignments.c.letter_id == letter_id,
                part_assignments.c.document_id == document_id,
            )
        )
    )
    gone = [str(r[0]) for r in rows if str(r[0]) not in keep]
    if gone:
        conn.execute(
            delete(part_assignments).where(
                and_(
                    part_assignments.c.account_id == account_id,
                    part_assignments.c.letter_id == letter_id,
                    part_assignments.c.document_id == document_id,
                    part_assignments.c.part_id.in_(gone),
                )
            )
        )
