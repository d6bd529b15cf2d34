"""The portal publisher's own tables (SQLite by default, PostgreSQL by URL) and the queries on them.

Every table carries ``account_id`` and every query filters by it. Secrets (session tokens, invitation codes) are
stored only as SHA-256 hashes, passwords only as scrypt hashes.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
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
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from smartpost_portal_publisher.domain import (
    AccessWindow,
    ContractPeriod,
    CoUserRights,
    PortalDocument,
    Principal,
    PrincipalKind,
)
from smartpost_shared.masterdata import contracts as md_contracts

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

portal_metadata = MetaData()

documents = Table(
    "portal_documents",
    portal_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("item_id", String(128), nullable=False),
    Column("letter_id", String(128), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("property_id", String(128)),
    Column("unit_id", String(128)),
    Column("title", String(300), nullable=False),
    Column("folder", Text, nullable=False),  # JSON list of folder names (document type path)
    Column("document_type_id", String(128), nullable=False),
    Column("letter_date", Date, nullable=False),
    Column("storage_key", String(1000), nullable=False),
    Column("page_count", Integer, nullable=False),
    Column("notify_by_email", Boolean, nullable=False),
    Column("correlation_id", String(36), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoke_reason", String(500)),
    Column("first_viewed_at", DateTime(timezone=True)),
    UniqueConstraint("account_id", "item_id", name="uq_portal_documents_item"),
    Index("ix_portal_documents_contact", "account_id", "contact_id"),
    Index("ix_portal_documents_letter", "account_id", "letter_id"),
)

# Item ids revoked before (or without) being published here: a later release of them publishes nothing.
# The billing period of a published letter (LetterReleased.period_start/end, since 2026-11): a table of its own so
# that databases created before need no migration (create_all adds it); a document without a row has no period.
document_periods = Table(
    "portal_document_periods",
    portal_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
)

revoked_items = Table(
    "portal_revoked_items",
    portal_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("item_id", String(128), primary_key=True),
    Column("letter_id", String(128), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
)

views = Table(
    "portal_document_views",
    portal_metadata,
    Column("view_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("principal_kind", String(20), nullable=False),
    Column("viewed_at", DateTime(timezone=True), nullable=False),
    Index("ix_portal_views_document", "account_id", "document_id"),
)

principals = Table(
    "portal_principals",
    portal_metadata,
    Column("principal_id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("rights", String(20)),
    Column("unit_id", String(128)),
    Column("login", String(320), nullable=False),
    Column("password_hash", String(300), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    UniqueConstraint("account_id", "login", name="uq_portal_principals_login"),
    Index("ix_portal_principals_contact", "account_id", "contact_id"),
)

invitations = Table(
    "portal_invitations",
    portal_metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("rights", String(20)),
    Column("unit_id", String(128)),
    Column("invited_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True)),
    Column("withdrawn_at", DateTime(timezone=True)),
    Index("ix_portal_invitations_contact", "account_id", "contact_id"),
)

sessions = Table(
    "portal_sessions",
    portal_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("principal_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)

login_failures = Table(
    "portal_login_failures",
    portal_metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("login", String(320), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Index("ix_portal_login_failures_login", "account_id", "login", "failed_at"),
)

password_resets = Table(
    "portal_password_resets",
    portal_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_portal_password_resets_principal", "account_id", "principal_id"),
)

access_windows = Table(
    "portal_access_windows",
    portal_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("days_before_start", Integer, nullable=False),
    Column("days_after_end", Integer, nullable=False),
)

# Staff changes to what recipients may see (access window), with the verified actor: an auditor's trail.
staff_audit = Table(
    "portal_staff_audit",
    portal_metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(100), nullable=False),
    Column("detail", Text, nullable=False),
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything here is stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _document(row: Any) -> PortalDocument:
    m = row._mapping  # noqa: SLF001 - SQLAlchemy's documented row mapping accessor
    published_at = aware(m["published_at"])
    assert published_at is not None
    return PortalDocument(
        account_id=m["account_id"],
        document_id=m["document_id"],
        item_id=m["item_id"],
        letter_id=m["letter_id"],
        contact_id=m["contact_id"],
        property_id=m["property_id"],
        unit_id=m["unit_id"],
        title=m["title"],
        folder=tuple(json.loads(m["folder"])),
        letter_date=m["letter_date"],
        storage_key=m["storage_key"],
        page_count=m["page_count"],
        published_at=published_at,
        revoked_at=aware(m["revoked_at"]),
        first_viewed_at=aware(m["first_viewed_at"]),
        period_start=m.get("period_start"),
        period_end=m.get("period_end"),
    )


def _documents_with_period() -> Any:
    """SELECT documents with their billing period (NULL without one)."""
    joined = documents.outerjoin(
        document_periods,
        and_(
            document_periods.c.account_id == documents.c.account_id,
            document_periods.c.document_id == documents.c.document_id,
        ),
    )
    return select(documents, document_periods.c.period_start, document_periods.c.period_end).select_from(joined)


def _principal(row: Any) -> Principal:
    m = row._mapping  # noqa: SLF001
    return Principal(
        principal_id=m["principal_id"],
        account_id=m["account_id"],
        contact_id=m["contact_id"],
        kind=PrincipalKind(m["kind"]),
        rights=CoUserRights(m["rights"]) if m["rights"] else None,
        unit_id=m["unit_id"],
    )


class PortalRepository:
    """Queries on the portal tables within one connection/transaction; all scoped by account."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # documents ------------------------------------------------------------------------------------------------
    def document(self, account_id: str, document_id: str) -> PortalDocument | None:
        row = self.conn.execute(
            _documents_with_period().where(
                and_(documents.c.account_id == account_id, documents.c.document_id == document_id)
            )
        ).first()
        return _document(row) if row else None

    def document_by_item(self, account_id: str, item_id: str) -> PortalDocument | None:
        row = self.conn.execute(
            _documents_with_period().where(and_(documents.c.account_id == account_id, documents.c.item_id == item_id))
        ).first()
        return _document(row) if row else None

    def published_contacts(self, account_id: str, item_ids: list[str]) -> dict[str, str]:
        """Item id -> contact id of those items that are already published (one query per 500 ids)."""
        found: dict[str, str] = {}
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            query = select(documents.c.item_id, documents.c.contact_id).where(
                and_(documents.c.account_id == account_id, documents.c.item_id.in_(chunk))
            )
            found.update({r.item_id: r.contact_id for r in self.conn.execute(query)})
        return found

    def revoked_item_ids(self, account_id: str, item_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            query = select(revoked_items.c.item_id).where(
                and_(revoked_items.c.account_id == account_id, revoked_items.c.item_id.in_(chunk))
            )
            found.update(r.item_id for r in self.conn.execute(query))
        return found

    def documents_of_contact(self, account_id: str, contact_id: str) -> list[PortalDocument]:
        query = (
            _documents_with_period()
            .where(and_(documents.c.account_id == account_id, documents.c.contact_id == contact_id))
            .order_by(documents.c.letter_date.desc(), documents.c.published_at.desc(), documents.c.document_id)
        )
        return [_document(r) for r in self.conn.execute(query)]

    def documents_of_letter(self, account_id: str, letter_id: str) -> list[PortalDocument]:
        query = (
            _documents_with_period()
            .where(and_(documents.c.account_id == account_id, documents.c.letter_id == letter_id))
            .order_by(documents.c.item_id)
        )
        return [_document(r) for r in self.conn.execute(query)]

    def insert_document(
        self,
        document: PortalDocument,
        *,
        document_type_id: str,
        notify_by_email: bool,
        correlation_id: str,
    ) -> None:
        self.conn.execute(
            insert(documents).values(
                account_id=document.account_id,
                document_id=document.document_id,
                item_id=document.item_id,
                letter_id=document.letter_id,
                contact_id=document.contact_id,
                property_id=document.property_id,
                unit_id=document.unit_id,
                title=document.title,
                folder=json.dumps(list(document.folder), ensure_ascii=False),
                document_type_id=document_type_id,
                letter_date=document.letter_date,
                storage_key=document.storage_key,
                page_count=document.page_count,
                notify_by_email=notify_by_email,
                correlation_id=correlation_id,
                published_at=document.published_at,
            )
        )
        if document.period_start is not None and document.period_end is not None:
            self.conn.execute(
                insert(document_periods).values(
                    account_id=document.account_id,
                    document_id=document.document_id,
                    period_start=document.period_start,
                    period_end=document.period_end,
                )
            )

    def mark_revoked(self, account_id: str, document_id: str, at: datetime, reason: str) -> bool:
        """Revoke once; False if it already was (so the revoked event is not emitted twice)."""
        result = self.conn.execute(
            update(documents)
            .where(
                and_(
                    documents.c.account_id == account_id,
                    documents.c.document_id == document_id,
                    documents.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=at, revoke_reason=reason[:500])
        )
        return result.rowcount == 1

    def remember_revoked_item(self, account_id: str, item_id: str, letter_id: str, at: datetime) -> None:
        exists = self.conn.execute(
            select(revoked_items.c.item_id).where(
                and_(revoked_items.c.account_id == account_id, revoked_items.c.item_id == item_id)
            )
        ).first()
        if exists is None:
            self.conn.execute(
                insert(revoked_items).values(account_id=account_id, item_id=item_id, letter_id=letter_id, revoked_at=at)
            )

    def item_revoked(self, account_id: str, item_id: str) -> bool:
        row = self.conn.execute(
            select(revoked_items.c.item_id).where(
                and_(revoked_items.c.account_id == account_id, revoked_items.c.item_id == item_id)
            )
        ).first()
        return row is not None

    def correlation_of(self, account_id: str, document_id: str) -> str | None:
        return self.conn.execute(
            select(documents.c.correlation_id).where(
                and_(documents.c.account_id == account_id, documents.c.document_id == document_id)
            )
        ).scalar()

    def record_view(self, principal: Principal, document_id: str, at: datetime) -> bool:
        """Record a download; True if it was the first one (``first_viewed_at`` was set now)."""
        self.conn.execute(
            insert(views).values(
                account_id=principal.account_id,
                document_id=document_id,
                principal_id=principal.principal_id,
                principal_kind=principal.kind.value,
                viewed_at=at,
            )
        )
        result = self.conn.execute(
            update(documents)
            .where(
                and_(
                    documents.c.account_id == principal.account_id,
                    documents.c.document_id == document_id,
                    documents.c.first_viewed_at.is_(None),
                )
            )
            .values(first_viewed_at=at)
        )
        return result.rowcount == 1

    def portal_access(self, account_id: str, contact_ids: set[str], now: datetime) -> dict[str, dict[str, Any]]:
        """Per contact: has a login (``login``) and the open invitation's dates (``invited_at``, ``expires_at``)."""
        found: dict[str, dict[str, Any]] = {
            c: {"login": False, "invited_at": None, "expires_at": None} for c in contact_ids
        }
        if not contact_ids:
            return found
        ids = sorted(contact_ids)
        logins = self.conn.execute(
            select(principals.c.contact_id).where(
                and_(
                    principals.c.account_id == account_id,
                    principals.c.contact_id.in_(ids),
                    principals.c.kind == PrincipalKind.CONTACT.value,
                    principals.c.password_hash != "",
                    principals.c.disabled_at.is_(None),
                )
            )
        )
        for (contact_id,) in logins:
            found[contact_id]["login"] = True
        open_invitations = self.conn.execute(
            select(invitations.c.contact_id, invitations.c.created_at, invitations.c.expires_at)
            .where(
                and_(
                    invitations.c.account_id == account_id,
                    invitations.c.contact_id.in_(ids),
                    invitations.c.kind == PrincipalKind.CONTACT.value,
                    invitations.c.redeemed_at.is_(None),
                    invitations.c.withdrawn_at.is_(None),
                    invitations.c.expires_at > now,
                )
            )
            .order_by(invitations.c.created_at)
        )
        for contact_id, created_at, expires_at in open_invitations:
            found[contact_id]["invited_at"] = aware(created_at)
            found[contact_id]["expires_at"] = aware(expires_at)
        return found

    def views_of_letter(self, account_id: str, letter_id: str) -> dict[str, list[dict[str, Any]]]:
        query = (
            select(views.c.document_id, views.c.principal_id, views.c.principal_kind, views.c.viewed_at)
            .join(
                documents,
                and_(documents.c.account_id == views.c.account_id, documents.c.document_id == views.c.document_id),
            )
            .where(and_(documents.c.account_id == account_id, documents.c.letter_id == letter_id))
            .order_by(views.c.view_id)
        )
        result: dict[str, list[dict[str, Any]]] = {}
        for r in self.conn.execute(query):
            result.setdefault(r.document_id, []).append(
                {"principal_id": r.principal_id, "principal_kind": r.principal_kind, "viewed_at": aware(r.viewed_at)}
            )
        return result

    # master data the rules need ----------------------------------------------------------------------------
    def contract_periods(self, account_id: str, contact_id: str) -> list[ContractPeriod]:
        query = select(md_contracts).where(
            and_(md_contracts.c.account_id == account_id, md_contracts.c.contact_id == contact_id)
        )
        return [
            ContractPeriod(
                contact_id=r.contact_id, property_id=r.property_id, unit_id=r.unit_id, start=r.start, end=r.end
            )
            for r in self.conn.execute(query)
        ]

    def access_window(self, account_id: str, default: AccessWindow) -> AccessWindow:
        row = self.conn.execute(select(access_windows).where(access_windows.c.account_id == account_id)).first()
        if row is None:
            return default
        return AccessWindow(days_before_start=row.days_before_start, days_after_end=row.days_after_end)

    def record_staff_action(
        self, account_id: str, actor: str, action: str, detail: dict[str, Any], at: datetime
    ) -> None:
        self.conn.execute(
            insert(staff_audit).values(
                account_id=account_id, at=at, actor=actor, action=action, detail=json.dumps(detail, sort_keys=True)
            )
        )

    def staff_actions(self, account_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(staff_audit).where(staff_audit.c.account_id == account_id).order_by(staff_audit.c.audit_id)
        ).mappings()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def set_access_window(self, account_id: str, window: AccessWindow) -> None:
        values = {"days_before_start": window.days_before_start, "days_after_end": window.days_after_end}
        result = self.conn.execute(
            update(access_windows).where(access_windows.c.account_id == account_id).values(**values)
        )
        if result.rowcount == 0:
            self.conn.execute(insert(access_windows).values(account_id=account_id, **values))

    # principals, invitations, sessions --------------------------------------------------------------------
    def principal(self, principal_id: str) -> Principal | None:
        row = self.conn.execute(
            select(principals).where(
                and_(principals.c.principal_id == principal_id, principals.c.disabled_at.is_(None))
            )
        ).first()
        return _principal(row) if row else None

    def principal_by_login(self, account_id: str, login: str) -> tuple[Principal, str] | None:
        row = self.conn.execute(
            select(principals).where(
                and_(
                    principals.c.account_id == account_id,
                    principals.c.login == login,
                    principals.c.disabled_at.is_(None),
                )
            )
        ).first()
        return (_principal(row), row.password_hash) if row else None

    def login_taken(self, account_id: str, login: str, *, except_principal: str | None = None) -> bool:
        query = select(principals.c.principal_id).where(
            and_(principals.c.account_id == account_id, principals.c.login == login)
        )
        if except_principal is not None:
            query = query.where(principals.c.principal_id != except_principal)
        return self.conn.execute(query).first() is not None

    def contact_principal_id(self, account_id: str, contact_id: str) -> str | None:
        return self.conn.execute(
            select(principals.c.principal_id).where(
                and_(
                    principals.c.account_id == account_id,
                    principals.c.contact_id == contact_id,
                    principals.c.kind == PrincipalKind.CONTACT.value,
                )
            )
        ).scalar()

    def insert_principal(self, principal: Principal, login: str, password_hash: str, at: datetime) -> None:
        self.conn.execute(
            insert(principals).values(
                principal_id=principal.principal_id,
                account_id=principal.account_id,
                contact_id=principal.contact_id,
                kind=principal.kind.value,
                rights=principal.rights.value if principal.rights else None,
                unit_id=principal.unit_id,
                login=login,
                password_hash=password_hash,
                created_at=at,
            )
        )

    def has_credentials(self, principal_id: str) -> bool:
        row = self.conn.execute(
            select(principals.c.password_hash, principals.c.disabled_at).where(
                principals.c.principal_id == principal_id
            )
        ).first()
        return row is not None and bool(row.password_hash) and row.disabled_at is None

    def update_credentials(self, principal_id: str, login: str, password_hash: str) -> None:
        self.conn.execute(
            update(principals)
            .where(principals.c.principal_id == principal_id)
            .values(login=login, password_hash=password_hash, disabled_at=None)
        )

    def disable_principal(self, account_id: str, principal_id: str, at: datetime) -> bool:
        result = self.conn.execute(
            update(principals)
            .where(and_(principals.c.account_id == account_id, principals.c.principal_id == principal_id))
            .values(disabled_at=at)
        )
        self.conn.execute(
            update(sessions)
            .where(and_(sessions.c.principal_id == principal_id, sessions.c.ended_at.is_(None)))
            .values(ended_at=at)
        )
        return result.rowcount == 1

    def co_users_of(self, account_id: str, contact_id: str) -> list[dict[str, Any]]:
        query = select(principals).where(
            and_(
                principals.c.account_id == account_id,
                principals.c.contact_id == contact_id,
                principals.c.kind == PrincipalKind.CO_USER.value,
                principals.c.disabled_at.is_(None),
            )
        )
        return [
            {"principal_id": r.principal_id, "login": r.login, "rights": r.rights, "unit_id": r.unit_id}
            for r in self.conn.execute(query)
        ]

    def insert_invitation(  # noqa: PLR0913 - one column each
        self,
        *,
        code_hash: str,
        account_id: str,
        contact_id: str,
        kind: PrincipalKind,
        rights: CoUserRights | None,
        unit_id: str | None,
        invited_by: str,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        self.conn.execute(
            insert(invitations).values(
                code_hash=code_hash,
                account_id=account_id,
                contact_id=contact_id,
                kind=kind.value,
                rights=rights.value if rights else None,
                unit_id=unit_id,
                invited_by=invited_by,
                created_at=at,
                expires_at=expires_at,
            )
        )

    def withdraw_open_contact_invitations(self, account_id: str, contact_id: str, at: datetime) -> None:
        """A new (re-activated) code replaces the contact's open ones: only one valid key at a time."""
        self.conn.execute(
            update(invitations)
            .where(
                and_(
                    invitations.c.account_id == account_id,
                    invitations.c.contact_id == contact_id,
                    invitations.c.kind == PrincipalKind.CONTACT.value,
                    invitations.c.redeemed_at.is_(None),
                    invitations.c.withdrawn_at.is_(None),
                )
            )
            .values(withdrawn_at=at)
        )

    def invitation(self, code_hash: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(invitations).where(invitations.c.code_hash == code_hash)).first()
        if row is None:
            return None
        data = dict(row._mapping)  # noqa: SLF001
        for key in ("created_at", "expires_at", "redeemed_at", "withdrawn_at"):
            data[key] = aware(data[key])
        return data

    def withdraw_invitation(self, code_hash: str, at: datetime) -> None:
        self.conn.execute(
            update(invitations)
            .where(and_(invitations.c.code_hash == code_hash, invitations.c.withdrawn_at.is_(None)))
            .values(withdrawn_at=at)
        )

    def mark_invitation_redeemed(self, code_hash: str, at: datetime) -> bool:
        """Single use even under concurrent redemption: only the first update matches."""
        result = self.conn.execute(
            update(invitations)
            .where(and_(invitations.c.code_hash == code_hash, invitations.c.redeemed_at.is_(None)))
            .values(redeemed_at=at)
        )
        return result.rowcount == 1

    def record_login_failure(self, account_id: str, login: str, at: datetime) -> None:
        self.conn.execute(insert(login_failures).values(account_id=account_id, login=login, failed_at=at))

    def lock_login(self, account_id: str, login: str) -> None:
        """Serialise attempts on one login until the transaction ends (SQLite: BEGIN IMMEDIATE holds the lock)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{account_id}/{login}"})

    def reserve_login_attempt(self, account_id: str, login: str, at: datetime) -> int:
        """Count the attempt as a failure until it is known to have succeeded (parallel guesses all count)."""
        result = self.conn.execute(insert(login_failures).values(account_id=account_id, login=login, failed_at=at))
        key = result.inserted_primary_key
        assert key is not None  # an autoincrement insert always has one
        return int(key[0])

    def forget_login_attempt(self, failure_id: int) -> None:
        self.conn.execute(delete(login_failures).where(login_failures.c.failure_id == failure_id))

    def login_failures_since(self, account_id: str, login: str, since: datetime) -> int:
        count = self.conn.execute(
            select(func.count())
            .select_from(login_failures)
            .where(
                and_(
                    login_failures.c.account_id == account_id,
                    login_failures.c.login == login,
                    login_failures.c.failed_at >= since,
                )
            )
        ).scalar()
        return int(count or 0)

    def insert_session(self, token_hash: str, principal: Principal, at: datetime, expires_at: datetime) -> None:
        self.conn.execute(
            insert(sessions).values(
                token_hash=token_hash,
                principal_id=principal.principal_id,
                account_id=principal.account_id,
                created_at=at,
                expires_at=expires_at,
            )
        )

    def session_principal(self, token_hash: str, now: datetime) -> Principal | None:
        row = self.conn.execute(
            select(sessions.c.principal_id, sessions.c.expires_at, sessions.c.ended_at).where(
                sessions.c.token_hash == token_hash
            )
        ).first()
        if row is None or row.ended_at is not None:
            return None
        expires_at = aware(row.expires_at)
        if expires_at is None or expires_at <= now:
            return None
        return self.principal(row.principal_id)

    def end_sessions_of(self, principal_id: str, at: datetime) -> None:
        self.conn.execute(
            update(sessions)
            .where(and_(sessions.c.principal_id == principal_id, sessions.c.ended_at.is_(None)))
            .values(ended_at=at)
        )

    def set_password_hash(self, principal_id: str, password_hash: str) -> None:
        self.conn.execute(
            update(principals).where(principals.c.principal_id == principal_id).values(password_hash=password_hash)
        )

    def insert_password_reset(self, token_hash: str, principal: Principal, at: datetime, expires_at: datetime) -> None:
        # One open reset per principal: a new request withdraws the older links.
        self.conn.execute(
            update(password_resets)
            .where(and_(password_resets.c.principal_id == principal.principal_id, password_resets.c.used_at.is_(None)))
            .values(used_at=at)
        )
        self.conn.execute(
            insert(password_resets).values(
                token_hash=token_hash,
                account_id=principal.account_id,
                principal_id=principal.principal_id,
                created_at=at,
                expires_at=expires_at,
            )
        )

    def forget_password_reset(self, token_hash: str) -> None:
        self.conn.execute(delete(password_resets).where(password_resets.c.token_hash == token_hash))

    def password_resets_since(self, principal_id: str, since: datetime) -> int:
        count = self.conn.execute(
            select(func.count())
            .select_from(password_resets)
            .where(and_(password_resets.c.principal_id == principal_id, password_resets.c.created_at >= since))
        ).scalar()
        return int(count or 0)

    def password_reset(self, token_hash: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(password_resets).where(password_resets.c.token_hash == token_hash)).first()
        if row is None:
            return None
        found = dict(row._asdict())
        found["expires_at"] = aware(found["expires_at"])
        found["used_at"] = aware(found["used_at"])
        return found

    def mark_password_reset_used(self, token_hash: str, at: datetime) -> bool:
        result = self.conn.execute(
            update(password_resets)
            .where(and_(password_resets.c.token_hash == token_hash, password_resets.c.used_at.is_(None)))
            .values(used_at=at)
        )
        return result.rowcount == 1

    def end_session(self, token_hash: str, at: datetime) -> None:
        self.conn.execute(
            update(sessions)
            .where(and_(sessions.c.token_hash == token_hash, sessions.c.ended_at.is_(None)))
            .values(ended_at=at)
        )


def today_in(now: datetime, tz: Any) -> date:
    return now.astimezone(tz).date()
