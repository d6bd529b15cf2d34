"""The notifier's own database: published documents, the mail outbox and its document links, digest runs.

Master data (contacts, properties, units) lives in the shared read model tables (``md_*``) in the same database;
the processed-events ledger and the event outbox are the platform tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from smartpost_notifier.domain import MailKind, MailStatus
from smartpost_shared.db import create_platform_tables
from smartpost_shared.masterdata import create_masterdata_tables

if TYPE_CHECKING:
    from datetime import date, datetime

    from sqlalchemy.engine import Connection, Engine

notifier_metadata = MetaData()

documents = Table(
    "nt_documents",
    notifier_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("letter_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("property_id", String(128)),
    Column("unit_id", String(128)),
    Column("title", String(500), nullable=False),
    Column("folder", Text, nullable=False),
    Column("letter_date", Date, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    # Local calendar day of publication in the account's time zone: the digest day.
    Column("publish_day", Date, nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    # The digest that lists this document (NULL until a digest run picks it up).
    Column("digest_mail_id", String(36)),
    Index("ix_nt_documents_digest", "account_id", "digest_mail_id", "publish_day"),
)

mails = Table(
    "nt_mails",
    notifier_metadata,
    # Deterministic (domain.immediate_mail_id / digest_mail_id): the primary key IS the exactly-once key.
    Column("mail_id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("letter_id", String(128)),
    Column("digest_day", Date),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True)),
    Column("handed_over_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    # False when the relay's reply after the final dot never arrived (crash or connection loss).
    Column("confirmed", Boolean),
    Column("recipient", String(320)),
    Column("message_id", String(400)),
    Index("ix_nt_mails_due", "status", "next_attempt_at"),
    Index("ix_nt_mails_account", "account_id", "contact_id"),
)

mail_documents = Table(
    "nt_mail_documents",
    notifier_metadata,
    Column("mail_id", String(36), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Index("ix_nt_mail_documents_doc", "account_id", "document_id"),
)

digest_runs = Table(
    "nt_digest_runs",
    notifier_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("mails", Integer, nullable=False),
)


def create_tables(engine: Engine) -> None:
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    notifier_metadata.create_all(engine)


@dataclass(frozen=True)
class MailRow:
    mail_id: str
    account_id: str
    contact_id: str
    kind: MailKind
    letter_id: str | None
    digest_day: date | None
    status: MailStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> MailRow:
        m = row._mapping  # noqa: SLF001 - SQLAlchemy's documented row mapping accessor
        return cls(
            mail_id=m["mail_id"],
            account_id=m["account_id"],
            contact_id=m["contact_id"],
            kind=MailKind(m["kind"]),
            letter_id=m["letter_id"],
            digest_day=m["digest_day"],
            status=MailStatus(m["status"]),
            attempts=m["attempts"],
            next_attempt_at=_aware(m["next_attempt_at"]),
            created_at=_aware(m["created_at"]),
            last_error=m["last_error"],
        )


@dataclass(frozen=True)
class DocumentRow:
    account_id: str
    document_id: str
    letter_id: str
    contact_id: str
    property_id: str | None
    unit_id: str | None
    title: str
    folder: list[str]
    letter_date: date
    published_at: datetime
    publish_day: date

    @classmethod
    def from_row(cls, row: Any) -> DocumentRow:
        m = row._mapping  # noqa: SLF001
        return cls(
            account_id=m["account_id"],
            document_id=m["document_id"],
            letter_id=m["letter_id"],
            contact_id=m["contact_id"],
            property_id=m["property_id"],
            unit_id=m["unit_id"],
            title=m["title"],
            folder=json.loads(m["folder"]),
            letter_date=m["letter_date"],
            published_at=_aware(m["published_at"]),
            publish_day=m["publish_day"],
        )


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone columns; everything stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class NotifierRepository:
    """Queries and updates on one connection (the caller owns the transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- documents -------------------------------------------------------------------------------------------
    def document(self, account_id: str, document_id: str) -> DocumentRow | None:
        row = self.conn.execute(
            select(documents).where(and_(documents.c.account_id == account_id, documents.c.document_id == document_id))
        ).first()
        return DocumentRow.from_row(row) if row else None

    def add_document(self, values: dict[str, Any]) -> bool:
        """Insert a published document; False if it is already known (same document published again)."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(documents).values(**values))
        except IntegrityError:
            return False
        return True

    def revoke_document(self, account_id: str, document_id: str, at: datetime) -> bool:
        result = self.conn.execute(
            update(documents)
            .where(and_(documents.c.account_id == account_id, documents.c.document_id == document_id))
            .where(documents.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount)

    def documents_of_mail(self, mail_id: str) -> list[DocumentRow]:
        query = (
            select(documents)
            .join(
                mail_documents,
                and_(
                    mail_documents.c.account_id == documents.c.account_id,
                    mail_documents.c.document_id == documents.c.document_id,
                ),
            )
            .where(mail_documents.c.mail_id == mail_id)
            .where(documents.c.revoked_at.is_(None))
        )
        return [DocumentRow.from_row(r) for r in self.conn.execute(query)]

    def linked_document_ids(self, mail_id: str) -> list[str]:
        query = select(mail_documents.c.document_id).where(mail_documents.c.mail_id == mail_id)
        return sorted(r[0] for r in self.conn.execute(query))

    def undigested_documents(self, account_id: str, up_to_day: date) -> list[DocumentRow]:
        query = (
            select(documents)
            .where(documents.c.account_id == account_id)
            .where(documents.c.digest_mail_id.is_(None))
            .where(documents.c.revoked_at.is_(None))
            .where(documents.c.publish_day <= up_to_day)
            .order_by(documents.c.contact_id, documents.c.published_at)
        )
        return [DocumentRow.from_row(r) for r in self.conn.execute(query)]

    def accounts_with_undigested_documents(self) -> list[str]:
        query = (
            select(documents.c.account_id)
            .where(documents.c.digest_mail_id.is_(None))
            .where(documents.c.revoked_at.is_(None))
            .distinct()
        )
        return sorted(r[0] for r in self.conn.execute(query))

    def assign_to_digest(self, account_id: str, document_ids: list[str], mail_id: str) -> None:
        self.conn.execute(
            update(documents)
            .where(and_(documents.c.account_id == account_id, documents.c.document_id.in_(document_ids)))
            .values(digest_mail_id=mail_id)
        )

    # --- mails -----------------------------------------------------------------------------------------------
    def mail(self, mail_id: str) -> MailRow | None:
        row = self.conn.execute(select(mails).where(mails.c.mail_id == mail_id)).first()
        return MailRow.from_row(row) if row else None

    def add_mail(self, values: dict[str, Any]) -> bool:
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(mails).values(**values))
        except IntegrityError:
            return False
        return True

    def link(self, mail_id: str, account_id: str, document_id: str) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(mail_documents).values(mail_id=mail_id, account_id=account_id, document_id=document_id)
                )
        except IntegrityError:
            return

    def pending_mails_of_document(self, account_id: str, document_id: str) -> list[MailRow]:
        query = (
            select(mails)
            .join(mail_documents, mail_documents.c.mail_id == mails.c.mail_id)
            .where(mail_documents.c.account_id == account_id)
            .where(mail_documents.c.document_id == document_id)
            .where(mails.c.status == MailStatus.PENDING.value)
        )
        return [MailRow.from_row(r) for r in self.conn.execute(query)]

    def unlink(self, mail_id: str, document_id: str) -> int:
        self.conn.execute(
            delete(mail_documents).where(
                and_(mail_documents.c.mail_id == mail_id, mail_documents.c.document_id == document_id)
            )
        )
        remaining = self.conn.execute(
            select(func.count()).select_from(mail_documents).where(mail_documents.c.mail_id == mail_id)
        ).scalar_one()
        return int(remaining)

    def set_mail(self, mail_id: str, *, expect: MailStatus | None = None, **values: Any) -> bool:
        """Update a mail row; with ``expect`` only if it is still in that status (compare-and-set)."""
        query = update(mails).where(mails.c.mail_id == mail_id)
        if expect is not None:
            query = query.where(mails.c.status == expect.value)
        if "status" in values and isinstance(values["status"], MailStatus):
            values["status"] = values["status"].value
        return bool(self.conn.execute(query.values(**values)).rowcount)

    def due_mail_ids(self, now: datetime, limit: int) -> list[str]:
        query = (
            select(mails.c.mail_id)
            .where(mails.c.status == MailStatus.PENDING.value)
            .where(mails.c.next_attempt_at <= now)
            .order_by(mails.c.next_attempt_at, mails.c.created_at)
            .limit(limit)
        )
        return [r[0] for r in self.conn.execute(query)]

    def mails_in_status(self, status: MailStatus, account_id: str | None = None) -> list[MailRow]:
        query = select(mails).where(mails.c.status == status.value)
        if account_id is not None:
            query = query.where(mails.c.account_id == account_id).order_by(mails.c.created_at, mails.c.mail_id)
        return [MailRow.from_row(r) for r in self.conn.execute(query)]

    def document_titles(self, account_id: str, mail_ids: list[str]) -> dict[str, list[str]]:
        """Titles of the documents linked to each mail (the account's own documents only), sorted."""
        if not mail_ids:
            return {}
        query = (
            select(mail_documents.c.mail_id, documents.c.title)
            .join(
                documents,
                (documents.c.account_id == mail_documents.c.account_id)
                & (documents.c.document_id == mail_documents.c.document_id),
            )
            .where(mail_documents.c.account_id == account_id)
            .where(mail_documents.c.mail_id.in_(mail_ids))
        )
        titles: dict[str, list[str]] = {}
        for mail_id, title in self.conn.execute(query):
            titles.setdefault(mail_id, []).append(title)
        return {mail_id: sorted(set(found)) for mail_id, found in titles.items()}

    def mail_counts(self, account_id: str) -> dict[str, dict[str, int]]:
        query = (
            select(mails.c.kind, mails.c.status, func.count())
            .where(mails.c.account_id == account_id)
            .group_by(mails.c.kind, mails.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for kind, status, count in self.conn.execute(query):
            counts.setdefault(kind, {})[status] = int(count)
        return counts

    # --- digest runs -----------------------------------------------------------------------------------------
    def digest_run_days(self, account_id: str, since: date) -> set[date]:
        query = select(digest_runs.c.day).where(
            and_(digest_runs.c.account_id == account_id, digest_runs.c.day >= since)
        )
        return {r[0] for r in self.conn.execute(query)}

    def record_digest_run(self, account_id: str, day: date, at: datetime, mails_created: int) -> None:
        condition = and_(digest_runs.c.account_id == account_id, digest_runs.c.day == day)
        if self.conn.execute(select(digest_runs.c.day).where(condition)).first() is None:
            self.conn.execute(
                insert(digest_runs).values(account_id=account_id, day=day, ran_at=at, mails=mails_created)
            )
        else:
            self.conn.execute(
                update(digest_runs).where(condition).values(ran_at=at, mails=digest_runs.c.mails + mails_created)
            )
