"""GDPR building blocks every service shares: erasure of one contact (Art. 17) and the export (Art. 15).

- ``ContactErasureRequested`` (on ``masterdata.events``) is handled inside the master-data subscription of every
  service that holds personal data: :func:`erasure_aware_batch` / :func:`erasure_aware_handler` cut the batch at
  the erasure (upserts before it are applied first), run the service's own ``erase`` function and record the
  erasure with its counts in ``privacy_erasures`` - in the same transaction as the processed-event ledger, so a
  redelivery erases nothing twice and the audit record exists exactly when the data is gone.
- :func:`personal_data_router` serves ``GET /internal/contacts/{contact_id}/personal-data`` (what this service
  stores about the contact, German labels) and ``GET /internal/contacts/{contact_id}/erasures`` (the audit
  records), both scoped to the account of the verified caller claims.
- :func:`erase_contact_masterdata` / :func:`contact_masterdata_export` do both for the shared master-data read
  model (``smartpost_shared.masterdata``) that four services keep.
- Small pieces of every service's own ``erase`` and ``export``: :func:`erasure_subject` (account and contact of an
  erasure), :func:`delete_objects` (stored files, a missing one is no error), :func:`export_rows` (one labelled
  section of the export from the contact's rows of a table) and :func:`iso`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, and_, delete, select
from sqlalchemy.engine import Engine as SqlEngine

from smartpost_shared.contracts.masterdata import ContactErasureRequested
from smartpost_shared.identity import CallerClaims, VerifiedCaller  # noqa: TC001 - FastAPI resolves it at runtime
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import _bump_revision, contacts, contracts, units
from smartpost_shared.storage import ObjectNotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection, Engine, Row

    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

# The role in the caller's signed claims that may read (and erase) a contact's personal data.
PRIVACY_ROLE = "admin"
ERASED = "[gelöscht]"  # placeholder shown where erased personal data stood

privacy_metadata = MetaData()

erasures = Table(
    "privacy_erasures",
    privacy_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("erasure_id", String(64), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("contact_id", String(128), nullable=False, index=True),
    Column("requested_by", String(320), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("counts", Text, nullable=False, default="{}"),
    Column("event_id", String(36), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

Counts = dict[str, int]


def create_privacy_tables(engine_or_conn: Any) -> None:
    privacy_metadata.create_all(engine_or_conn)


def record_erasure(conn: Connection, service: str, envelope: Envelope, counts: Counts) -> None:
    payload = envelope.payload
    assert isinstance(payload, ContactErasureRequested)
    conn.execute(
        erasures.insert().values(
            account_id=envelope.account_id,
            erasure_id=payload.erasure_id,
            service=service,
            contact_id=payload.contact_id,
            requested_by=payload.requested_by,
            reason=payload.reason,
            counts=json.dumps(counts, sort_keys=True),
            event_id=str(envelope.event_id),
            erased_at=datetime.now(UTC),
        )
    )
    log.info(
        "privacy.contact_erased",
        service=service,
        erasure_id=payload.erasure_id,
        contact_id=payload.contact_id,
        requested_by=payload.requested_by,
        counts=counts,
    )


def erasures_of(conn: Connection, account_id: str, contact_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(erasures)
        .where(and_(erasures.c.account_id == account_id, erasures.c.contact_id == contact_id))
        .order_by(erasures.c.erased_at)
    )
    return [
        {
            "erasure_id": r.erasure_id,
            "service": r.service,
            "contact_id": r.contact_id,
            "requested_by": r.requested_by,
            "reason": r.reason,
            "counts": json.loads(r.counts),
            "erased_at": r.erased_at.isoformat() if r.erased_at else None,
        }
        for r in rows
    ]


def erasure_aware_batch(
    apply_batch: Callable[[Connection, list[Envelope]], None],
    erase: Callable[[Connection, Envelope], Counts],
    service: str,
) -> Callable[[Connection, list[Envelope]], None]:
    """A master-data batch handler that also erases: events before an erasure are applied first, in order."""

    def apply(conn: Connection, envelopes: list[Envelope]) -> None:
        run: list[Envelope] = []
        for envelope in envelopes:
            if isinstance(envelope.payload, ContactErasureRequested):
                if run:
                    apply_batch(conn, run)
                    run = []
                record_erasure(conn, service, envelope, erase(conn, envelope))
            else:
                run.append(envelope)
        if run:
            apply_batch(conn, run)

    return apply


def erasure_aware_handler(
    handler: Callable[[Envelope, Connection], None],
    erase: Callable[[Connection, Envelope], Counts],
    service: str,
) -> Callable[[Envelope, Connection], None]:
    """The one-event form of :func:`erasure_aware_batch` (used when a batch is applied one by one)."""

    def run(envelope: Envelope, conn: Connection) -> None:
        if isinstance(envelope.payload, ContactErasureRequested):
            record_erasure(conn, service, envelope, erase(conn, envelope))
        else:
            handler(envelope, conn)

    return run


def erasure_subject(envelope: Envelope) -> tuple[str, str]:
    """(account id, contact id) of a ``ContactErasureRequested`` envelope."""
    payload = envelope.payload
    assert isinstance(payload, ContactErasureRequested)
    return envelope.account_id, payload.contact_id


def delete_objects(store: ObjectStore | None, keys: Iterable[str | None]) -> int:
    """Delete the stored objects under ``keys`` (empty keys skipped); how many existed. ``store`` None deletes none."""
    if store is None:
        return 0
    deleted = 0
    for key in keys:
        if not key:
            continue
        try:
            store.delete(key)
            deleted += 1
        except ObjectNotFoundError:
            pass
    return deleted


def iso(value: Any) -> str | None:
    """A date or timestamp of the export as ISO text (None stays None)."""
    return value.isoformat() if value is not None else None


def export_rows(
    conn: Connection,
    data: dict[str, Any],
    label: str,
    table: Table,
    account_id: str,
    contact_id: str,
    describe: Callable[[Row[Any]], dict[str, Any]],
    *,
    order_by: ColumnElement[Any] | None = None,
) -> None:
    """Add the section ``label`` to an export: ``describe`` of every row of ``table`` of the contact, if there are any.

    ``table`` has ``account_id`` and ``contact_id`` columns.
    """
    query = select(table).where(and_(table.c.account_id == account_id, table.c.contact_id == contact_id))
    if order_by is not None:
        query = query.order_by(order_by)
    rows = conn.execute(query).all()
    if rows:
        data[label] = [describe(row) for row in rows]


def erase_contact_masterdata(conn: Connection, account_id: str, contact_id: str) -> Counts:
    """Delete the contact and its contracts from the master-data read model (properties and units stay)."""
    removed_contracts = conn.execute(
        delete(contracts).where(and_(contracts.c.account_id == account_id, contracts.c.contact_id == contact_id))
    ).rowcount
    removed_contact = conn.execute(
        delete(contacts).where(and_(contacts.c.account_id == account_id, contacts.c.contact_id == contact_id))
    ).rowcount
    _bump_revision(conn, account_id)
    return {"stammdaten_kontakt": int(removed_contact or 0), "stammdaten_vertraege": int(removed_contracts or 0)}


def contact_masterdata_export(conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
    """The contact's master data with German labels (empty when none is stored)."""
    row = conn.execute(
        select(contacts).where(and_(contacts.c.account_id == account_id, contacts.c.contact_id == contact_id))
    ).first()
    if row is None:
        return {}
    rows = conn.execute(
        select(contracts, units.c.number)
        .outerjoin(units, and_(units.c.account_id == contracts.c.account_id, units.c.unit_id == contracts.c.unit_id))
        .where(and_(contracts.c.account_id == account_id, contracts.c.contact_id == contact_id))
        .order_by(contracts.c.start)
    )
    return {
        "Kontakt": {
            "Kontakt-ID": row.contact_id,
            "Referenz": row.reference_id,
            "Anrede": row.salutation,
            "Vorname": row.first_name,
            "Nachname": row.last_name,
            "Firma": row.company,
            "Straße": row.street,
            "PLZ": row.postal_code,
            "Ort": row.city,
            "Land": row.country,
            "Adresszusätze": json.loads(row.extra_lines or "[]"),
            "E-Mail": row.email,
            "Versandweg": row.channel_preference,
            "Portal registriert": bool(row.portal_registered),
            "Archiviert": bool(row.archived),
        },
        "Verträge": [
            {
                "Vertrag": r.contract_id,
                "Liegenschaft": r.property_id,
                "Einheit": r.unit_id,
                "Einheit Nr.": r.number,
                "Rolle": r.role,
                "Beginn": r.start.isoformat(),
                "Ende": r.end.isoformat() if r.end else None,
                "Vertragsnummer": r.contract_number,
            }
            for r in rows
        ],
    }


def personal_data_router(
    service: str,
    engine: Engine | Callable[[Request], Engine],
    export: Callable[[Connection, str, str], dict[str, Any]],
) -> APIRouter:
    """``/internal/contacts/{contact_id}/personal-data`` and ``.../erasures`` of one service (verified caller).

    ``engine`` may be a function of the request (services that create their engine in the lifespan).
    """
    router = APIRouter(tags=["privacy"])

    def engine_of(request: Request) -> Engine:
        return engine if isinstance(engine, SqlEngine) else engine(request)

    def admin_only(caller: CallerClaims) -> None:
        # Like the erasure: a contact's whole record (in letters also the letters' contents) only for an admin.
        if PRIVACY_ROLE not in caller.roles:
            log.warning("privacy.refused_without_admin", service=service, actor=caller.actor)
            raise HTTPException(403, "Nur Administratoren dürfen personenbezogene Daten einsehen.")

    @router.get("/internal/contacts/{contact_id}/personal-data")
    async def personal_data(contact_id: str, caller: VerifiedCaller, request: Request) -> dict[str, Any]:
        admin_only(caller)
        db = engine_of(request)

        def run() -> dict[str, Any]:
            with db.connect() as conn:
                data = export(conn, caller.account_id, contact_id)
                done = erasures_of(conn, caller.account_id, contact_id)
            return {"Dienst": service, "Kontakt-ID": contact_id, "Daten": data, "Löschungen": done}

        result = await asyncio.to_thread(run)
        log.info("privacy.export_served", service=service, contact_id=contact_id, actor=caller.actor)
        return result

    @router.get("/internal/contacts/{contact_id}/erasures")
    async def erasure_records(contact_id: str, caller: VerifiedCaller, request: Request) -> dict[str, Any]:
        admin_only(caller)
        db = engine_of(request)

        def run() -> list[dict[str, Any]]:
            with db.connect() as conn:
                return erasures_of(conn, caller.account_id, contact_id)

        return {"service": service, "contact_id": contact_id, "erasures": await asyncio.to_thread(run)}

    return router
