"""GDPR for the assignment service: the erasure request (admin only), its erasure here and the export.

The assignment service owns master data, so an erasure starts here: ``POST /internal/contacts/{id}/erasure``
(caller with the ``admin`` role; the contact must exist in the caller's account) queues a
``ContactErasureRequested`` in the outbox; it travels on ``masterdata.events`` to every service (this one too),
which erase in their master-data subscription (``smartpost_shared.privacy``).

Erased here: the contact and its contracts (read model), and in the review data of every letter the evidence
read from the pages of the contact's parts (address lines, identifiers, evidence texts of the assignment and of
candidates naming the contact). The assignment rows keep ids (contact, part, property, unit) and scores.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select, update

from smartpost_assignment.adapters.db import documents, part_assignments
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested
from smartpost_shared.db import add_to_outbox
from smartpost_shared.identity import VerifiedCaller  # noqa: TC001 - FastAPI resolves it at runtime
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import MasterDataReader
from smartpost_shared.privacy import (
    ERASED,
    contact_masterdata_export,
    erase_contact_masterdata,
    erasure_subject,
    erasures_of,
    export_rows,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from smartpost_shared.contracts.envelope import Envelope

log = get_logger(__name__)

SERVICE = "assignment"
ADMIN_ROLE = "admin"  # the staff role in the caller's signed claims that may erase
ERASURE_PRODUCER = "assignment"


class ErasureBody(BaseModel):
    reason: str = Field(default="", max_length=500)


def _scrub_assignment(data: dict[str, Any], contact_id: str) -> bool:
    changed = False
    if data.get("contact_id") == contact_id and data.get("evidence"):
        data["evidence"] = [ERASED]
        changed = True
    for candidate in data.get("candidates") or []:
        if candidate.get("contact_id") == contact_id and candidate.get("evidence"):
            candidate["evidence"] = [ERASED]
            changed = True
    return changed


def erase_contact(conn: Connection, envelope: Envelope) -> dict[str, int]:
    account, contact = erasure_subject(envelope)
    counts = erase_contact_masterdata(conn, account, contact)
    rows = conn.execute(
        select(part_assignments).where(
            and_(
                part_assignments.c.account_id == account,
                or_(
                    part_assignments.c.contact_id == contact,
                    part_assignments.c.assignment.contains(f'"contact_id": "{contact}"'),
                    part_assignments.c.assignment.contains(f'"contact_id":"{contact}"'),
                ),
            )
        )
    ).all()
    own_parts: dict[tuple[str, str], set[str]] = {}
    scrubbed = 0
    for row in rows:
        data = json.loads(row.assignment)
        if row.contact_id == contact:
            own_parts.setdefault((row.letter_id, row.document_id), set()).add(row.part_id)
        if _scrub_assignment(data, contact):
            scrubbed += 1
            conn.execute(
                update(part_assignments)
                .where(
                    and_(
                        part_assignments.c.account_id == account,
                        part_assignments.c.letter_id == row.letter_id,
                        part_assignments.c.document_id == row.document_id,
                        part_assignments.c.part_id == row.part_id,
                    )
                )
                .values(assignment=json.dumps(data))
            )
    pages = 0
    for (letter_id, document_id), part_ids in own_parts.items():
        key = and_(
            documents.c.account_id == account,
            documents.c.letter_id == letter_id,
            documents.c.document_id == document_id,
        )
        found = conn.execute(select(documents.c.parts).where(key)).first()
        if found is None:
            continue
        parts = json.loads(found.parts)
        for part in parts:
            if part.get("part_id") in part_ids:
                part["address_lines"] = [ERASED] if part.get("address_lines") else []
                part["identifiers"] = []
                # The first page's lines outside the address window (salutation, subject) name the person too.
                if part.get("context_lines"):
                    part["context_lines"] = [ERASED]
                pages += 1
        conn.execute(update(documents).where(key).values(parts=json.dumps(parts)))
    warnings = _scrub_warnings(conn, account, contact, own_parts)
    return {**counts, "zuordnungen_bereinigt": scrubbed, "seitenauszuege_bereinigt": pages, "warnungen": warnings}


def _scrub_warnings(conn: Connection, account: str, contact: str, own_parts: dict[tuple[str, str], set[str]]) -> int:
    """Warnings name people ("… hat keinen Brief erhalten") and quote evidence: erase those about the contact."""
    part_ids = {p for ids in own_parts.values() for p in ids}
    naming = conn.execute(
        select(documents.c.letter_id, documents.c.document_id).where(
            and_(documents.c.account_id == account, documents.c.warnings.contains(contact))
        )
    ).all()
    changed = 0
    for letter_id, document_id in {*own_parts, *((r.letter_id, r.document_id) for r in naming)}:
        key = and_(
            documents.c.account_id == account,
            documents.c.letter_id == letter_id,
            documents.c.document_id == document_id,
        )
        row = conn.execute(select(documents.c.warnings).where(key)).first()
        if row is None:
            continue
        warnings = json.loads(row.warnings or "[]")
        hit = False
        for warning in warnings:
            if warning.get("contact_id") == contact or warning.get("part_id") in part_ids:
                warning["message"] = ERASED
                hit = True
                changed += 1
        if hit:
            conn.execute(update(documents).where(key).values(warnings=json.dumps(warnings)))
    return changed


def export_contact(conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
    data = contact_masterdata_export(conn, account_id, contact_id)
    export_rows(
        conn,
        data,
        "Zuordnungen",
        part_assignments,
        account_id,
        contact_id,
        lambda r: {
            "Serienbrief": r.letter_id,
            "Einzelbrief": r.part_id,
            "Status": r.status,
            "Liegenschaft": r.property_id,
            "Einheit": r.unit_id,
            "Verfahren": r.method,
            "Belege": json.loads(r.assignment).get("evidence", []),
        },
    )
    return data


def erasure_request_router(engine: Engine) -> APIRouter:
    router = APIRouter(tags=["privacy"])

    @router.post("/internal/contacts/{contact_id}/erasure", status_code=202)
    async def request_erasure(
        contact_id: str,
        body: ErasureBody,
        caller: VerifiedCaller,
    ) -> dict[str, Any]:
        """Queue the erasure of one contact of the caller's account in every service (admin role only)."""
        if ADMIN_ROLE not in caller.roles:
            raise HTTPException(403, "Nur Administratoren dürfen personenbezogene Daten löschen.")

        def run() -> dict[str, Any] | None:
            with engine.begin() as conn:
                if MasterDataReader(conn).contact(caller.account_id, contact_id) is None:
                    return None
                erasure_id = uuid.uuid4().hex
                payload = ContactErasureRequested(
                    erasure_id=erasure_id, contact_id=contact_id, requested_by=caller.actor, reason=body.reason
                )
                envelope = make_envelope(payload, account_id=caller.account_id, producer=ERASURE_PRODUCER)
                add_to_outbox(conn, envelope)
            log.info("privacy.erasure_requested", erasure_id=erasure_id, contact_id=contact_id, actor=caller.actor)
            return {"erasure_id": erasure_id, "contact_id": contact_id, "status": "angefordert"}

        queued = await asyncio.to_thread(run)
        if queued is None:
            # Another account's contact is indistinguishable from an unknown one.
            raise HTTPException(404, "Kontakt nicht gefunden.")
        return queued

    @router.get("/internal/erasures")
    async def all_erasures(
        caller: VerifiedCaller,
    ) -> dict[str, Any]:
        """Every erasure this service performed for the caller's account (the audit list of the gateway)."""
        from smartpost_shared.privacy import erasures  # noqa: PLC0415

        def run() -> list[dict[str, Any]]:
            with engine.connect() as conn:
                ids = conn.execute(
                    select(erasures.c.contact_id).where(erasures.c.account_id == caller.account_id).distinct()
                ).scalars()
                return [e for cid in ids for e in erasures_of(conn, caller.account_id, cid)]

        return {"erasures": await asyncio.to_thread(run)}

    return router
