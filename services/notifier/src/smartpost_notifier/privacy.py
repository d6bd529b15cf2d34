"""GDPR for the notifier: a contact's erasure and the export of what is stored about them.

Erased: the contact's documents known for mails and digests, every mail row of the contact (queued mails are never
sent; sent ones lose address, message id and error), their document links, and the master-data copy (name, e-mail
address). A mail in the very moment of sending (``sending``, claimed by the sender) keeps its row until it is
finished but loses the stored address. The hand-over journal holds mail ids only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select, update

from smartpost_notifier.adapters.db import documents, mail_documents, mails
from smartpost_notifier.domain import MailStatus
from smartpost_shared.privacy import (
    contact_masterdata_export,
    erase_contact_masterdata,
    erasure_subject,
    export_rows,
    iso,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from smartpost_shared.contracts.envelope import Envelope

SERVICE = "notifier"


def erase_contact(conn: Connection, envelope: Envelope) -> dict[str, int]:
    account, contact = erasure_subject(envelope)
    of_contact = and_(mails.c.account_id == account, mails.c.contact_id == contact)
    rows = conn.execute(select(mails.c.mail_id, mails.c.status).where(of_contact)).all()
    queued = sum(1 for r in rows if r.status == MailStatus.PENDING.value)
    removable = [r.mail_id for r in rows if r.status != MailStatus.SENDING.value]
    in_flight = [r.mail_id for r in rows if r.status == MailStatus.SENDING.value]
    if removable:
        conn.execute(delete(mail_documents).where(mail_documents.c.mail_id.in_(removable)))
        conn.execute(delete(mails).where(mails.c.mail_id.in_(removable)))
    if in_flight:
        conn.execute(update(mails).where(mails.c.mail_id.in_(in_flight)).values(recipient=None, last_error=None))
    removed_docs = conn.execute(
        delete(documents).where(and_(documents.c.account_id == account, documents.c.contact_id == contact))
    ).rowcount
    return {
        **erase_contact_masterdata(conn, account, contact),
        "mails": len(removable),
        "mails_nicht_mehr_versendet": queued,
        "mails_im_versand": len(in_flight),
        "dokumente": int(removed_docs or 0),
    }


def export_contact(conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
    data = contact_masterdata_export(conn, account_id, contact_id)
    export_rows(
        conn,
        data,
        "E-Mails",
        mails,
        account_id,
        contact_id,
        lambda r: {
            "Art": r.kind,
            "Status": r.status,
            "Empfänger": r.recipient,
            "Serienbrief": r.letter_id,
            "Angelegt": iso(r.created_at),
            "Versendet": iso(r.sent_at),
            "Nachrichten-ID": r.message_id,
        },
        order_by=mails.c.created_at,
    )
    export_rows(
        conn,
        data,
        "Benachrichtigte Dokumente",
        documents,
        account_id,
        contact_id,
        lambda d: {"Dokument": d.document_id, "Titel": d.title, "Veröffentlicht": iso(d.published_at)},
    )
    return data
