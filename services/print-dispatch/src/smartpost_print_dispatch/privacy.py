"""GDPR for print dispatch: a contact's erasure and the export of what is stored about them.

Erased: the master-data copy (postal address), the address lines and check findings stored on every mailpiece of
the contact, and the print files (PDF with the address cover page) in storage. Mailpieces not yet handed to the
provider (``planned``, ``ready``, or ``action_required``) are cancelled first (published as
``PrintJobStatusChanged``, so the letter shows it). Mailpieces the provider already has keep what proves and bills
the dispatch (commercial/tax records, § 257 HGB, § 147 AO): contact id, provider reference, tracking number, sheets,
postage, status history - no name and no address.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from smartpost_print_dispatch.adapters.db import mailpieces
from smartpost_shared.contracts.printing import MailpieceStatus
from smartpost_shared.privacy import (
    contact_masterdata_export,
    delete_objects,
    erase_contact_masterdata,
    erasure_subject,
    export_rows,
    iso,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from smartpost_print_dispatch.application import PrintDispatch
    from smartpost_shared.contracts.envelope import Envelope

SERVICE = "print-dispatch"
ERASURE_REASON = "Daten des Empfängers gelöscht (DSGVO)"


def _not_submitted(row: Any) -> bool:
    return row.stage in ("planned", "ready") or (
        row.stage == "final" and row.status == MailpieceStatus.ACTION_REQUIRED.value
    )


def make_erase(dispatch: PrintDispatch) -> Callable[[Connection, Envelope], dict[str, int]]:
    def erase(conn: Connection, envelope: Envelope) -> dict[str, int]:
        account, contact = erasure_subject(envelope)
        of_contact = and_(mailpieces.c.account_id == account, mailpieces.c.contact_id == contact)
        rows = conn.execute(select(mailpieces).where(of_contact)).all()
        cancelled = 0
        for row in rows:
            if _not_submitted(row):
                dispatch._transition(  # noqa: SLF001 - the service's own state machine and outbox
                    conn, account, row.mailpiece_id, MailpieceStatus.CANCELLED, reason=ERASURE_REASON, stage="final"
                )
                cancelled += 1
        files = delete_objects(dispatch.store, [row.print_key for row in rows])
        conn.execute(update(mailpieces).where(of_contact).values(address_lines="[]", findings="[]", print_key=None))
        return {
            **erase_contact_masterdata(conn, account, contact),
            "sendungen": len(rows),
            "sendungen_storniert": cancelled,
            "druckdateien": files,
        }

    return erase


def export_contact(conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
    data = contact_masterdata_export(conn, account_id, contact_id)
    export_rows(
        conn,
        data,
        "Briefsendungen",
        mailpieces,
        account_id,
        contact_id,
        lambda r: {
            "Sendung": r.mailpiece_id,
            "Serienbrief": r.letter_id,
            "Status": r.status,
            "Dienstleister": r.provider,
            "Referenz": r.provider_ref,
            "Sendungsnummer": r.tracking_number,
            "Anschrift": json.loads(r.address_lines or "[]"),
            "Blätter": r.sheets,
            "Porto (Cent)": r.cost_cents,
            "Angelegt": iso(r.created_at),
        },
        order_by=mailpieces.c.created_at,
    )
    return data
