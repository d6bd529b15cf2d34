"""Retention job of the portal publisher: removes portal documents whose retention period ended, with their files.

Runs in one replica at a time (lease ``portal-retention``, :func:`smartpost_shared.lease.periodic_work`) every
``retention_interval_seconds``. A document's period follows its document type (the folder path the letters service
published it under; :mod:`smartpost_shared.retention`, overrides in ``retention_years``) and its letter date. Each
removal deletes the storage object, the document row and its view log (personal data), and is audited per letter in
``portal_retention_audit`` (who: ``system:retention``; what: account, letter, document type, period; when; counts).
The clock is injected (tests move it by years).
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select

from smartpost_portal_publisher.adapters.db import documents, views
from smartpost_shared.logging import get_logger
from smartpost_shared.retention import is_due, oldest_undue_letter_date, retention_ends, retention_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

ACTOR = "system:retention"

retention_metadata = MetaData()

retention_audit = Table(
    "portal_retention_audit",
    retention_metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("run_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("account_id", String(64), nullable=False, index=True),
    Column("letter_id", String(128), nullable=False),
    Column("document_type_id", String(128), nullable=False),
    Column("document_type_path", Text, nullable=False),
    Column("retention_years", Integer, nullable=False),
    Column("retention_source", String(200), nullable=False),
    Column("retention_ended", String(10), nullable=False),
    Column("documents_deleted", Integer, nullable=False),
    Column("objects_deleted", Integer, nullable=False),
    Column("views_deleted", Integer, nullable=False),
)


def create_retention_tables(engine: Engine) -> None:
    retention_metadata.create_all(engine)


@dataclass(frozen=True)
class RetentionResult:
    documents_deleted: int = 0
    objects_deleted: int = 0
    letters: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PortalRetentionJob:
    engine: Engine
    store: ObjectStore
    overrides: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow
    batch_size: int = 500

    def run_once(self) -> RetentionResult:
        """Remove every document whose period has ended (as of ``clock()``); idempotent."""
        now = self.clock()
        today = now.date()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    documents.c.account_id,
                    documents.c.document_id,
                    documents.c.letter_id,
                    documents.c.document_type_id,
                    documents.c.folder,
                    documents.c.letter_date,
                    documents.c.storage_key,
                ).where(documents.c.letter_date < oldest_undue_letter_date(today))
            ).all()
        due: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        for row in rows:
            path = [str(p) for p in json.loads(row.folder)]
            retention = retention_for(path, self.overrides, type_id=row.document_type_id)
            letter_date: date = row.letter_date
            if is_due(letter_date, retention.years, today):
                due[(row.account_id, row.letter_id, row.document_type_id)].append((row, path, retention))
        total_docs = total_objects = 0
        for (account_id, letter_id, document_type_id), items in due.items():
            objects = 0
            for row, _, _ in items:
                # The file first: a crash after this leaves a row whose file is gone, removed again next run.
                with contextlib.suppress(Exception):
                    if self.store.exists(row.storage_key):
                        self.store.delete(row.storage_key)
                        objects += 1
            ids = [row.document_id for row, _, _ in items]
            _, path, retention = items[0]
            with self.engine.begin() as conn:
                viewed = conn.execute(
                    delete(views).where(views.c.account_id == account_id, views.c.document_id.in_(ids))
                ).rowcount
                removed = conn.execute(
                    delete(documents).where(documents.c.account_id == account_id, documents.c.document_id.in_(ids))
                ).rowcount
                conn.execute(
                    insert(retention_audit).values(
                        run_at=now,
                        actor=ACTOR,
                        account_id=account_id,
                        letter_id=letter_id,
                        document_type_id=document_type_id,
                        document_type_path=json.dumps(path, ensure_ascii=False),
                        retention_years=retention.years,
                        retention_source=retention.source,
                        retention_ended=retention_ends(items[0][0].letter_date, retention.years).isoformat(),
                        documents_deleted=removed,
                        objects_deleted=objects,
                        views_deleted=viewed,
                    )
                )
            log.info(
                "portal.retention_removed",
                account_id=account_id,
                letter_id=letter_id,
                documents=removed,
                objects=objects,
                years=retention.years,
            )
            total_docs += removed
            total_objects += objects
        return RetentionResult(total_docs, total_objects, len(due))
