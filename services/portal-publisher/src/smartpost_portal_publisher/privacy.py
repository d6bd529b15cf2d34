"""GDPR for the portal: what a contact's erasure deletes here, and the export of what is stored about them.

Erased: the contact's portal documents (rows, views, and the stored PDF of each document), every login of the
contact (owner and co-users: principals, sessions, password resets, failed-login records of those logins), the
contact's invitations and the master-data copy. Kept: ``revoked_items`` (item ids only) and the staff audit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select

from smartpost_portal_publisher.adapters.db import (
    documents,
    invitations,
    login_failures,
    password_resets,
    principals,
    sessions,
    views,
)
from smartpost_shared.logging import get_logger
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

    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

SERVICE = "portal-publisher"


def make_erase(store: ObjectStore | None) -> Callable[[Connection, Envelope], dict[str, int]]:
    """The erasure of one contact; ``store`` None (tests without storage) keeps the objects."""

    def erase(conn: Connection, envelope: Envelope) -> dict[str, int]:
        account, contact = erasure_subject(envelope)
        docs = conn.execute(
            select(documents.c.document_id, documents.c.storage_key).where(
                and_(documents.c.account_id == account, documents.c.contact_id == contact)
            )
        ).all()
        doc_ids = [d.document_id for d in docs]
        objects = delete_objects(store, sorted({d.storage_key for d in docs}))
        removed_views = 0
        if doc_ids:
            removed_views = conn.execute(
                delete(views).where(and_(views.c.account_id == account, views.c.document_id.in_(doc_ids)))
            ).rowcount
        removed_docs = conn.execute(
            delete(documents).where(and_(documents.c.account_id == account, documents.c.contact_id == contact))
        ).rowcount
        logins = conn.execute(
            select(principals.c.principal_id, principals.c.login).where(
                and_(principals.c.account_id == account, principals.c.contact_id == contact)
            )
        ).all()
        principal_ids = [p.principal_id for p in logins]
        if principal_ids:
            conn.execute(delete(sessions).where(sessions.c.principal_id.in_(principal_ids)))
            conn.execute(delete(password_resets).where(password_resets.c.principal_id.in_(principal_ids)))
            conn.execute(
                delete(login_failures).where(
                    and_(login_failures.c.account_id == account, login_failures.c.login.in_([p.login for p in logins]))
                )
            )
            conn.execute(delete(principals).where(principals.c.principal_id.in_(principal_ids)))
        removed_invitations = conn.execute(
            delete(invitations).where(and_(invitations.c.account_id == account, invitations.c.contact_id == contact))
        ).rowcount
        return {
            **erase_contact_masterdata(conn, account, contact),
            "portal_dokumente": int(removed_docs or 0),
            "portal_ansichten": int(removed_views or 0),
            "portal_zugaenge": len(principal_ids),
            "portal_einladungen": int(removed_invitations or 0),
            "speicherobjekte": objects,
        }

    return erase


def export_contact(conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
    data = contact_masterdata_export(conn, account_id, contact_id)
    export_rows(
        conn,
        data,
        "Portal-Dokumente",
        documents,
        account_id,
        contact_id,
        lambda d: {
            "Dokument": d.document_id,
            "Titel": d.title,
            "Ordner": json.loads(d.folder),
            "Briefdatum": iso(d.letter_date),
            "Veröffentlicht": iso(d.published_at),
            "Zurückgezogen": iso(d.revoked_at),
            "Erstmals angesehen": iso(d.first_viewed_at),
            "Liegenschaft": d.property_id,
            "Einheit": d.unit_id,
            "Speicherort": d.storage_key,
        },
        order_by=documents.c.published_at,
    )
    export_rows(
        conn,
        data,
        "Portal-Zugänge",
        principals,
        account_id,
        contact_id,
        lambda p: {
            "Anmeldename": p.login,
            "Art": p.kind,
            "Rechte": p.rights,
            "Einheit": p.unit_id,
            "Angelegt": iso(p.created_at),
            "Gesperrt": iso(p.disabled_at),
        },
    )
    export_rows(
        conn,
        data,
        "Einladungen",
        invitations,
        account_id,
        contact_id,
        lambda i: {
            "Art": i.kind,
            "Eingeladen von": i.invited_by,
            "Angelegt": iso(i.created_at),
            "Gültig bis": iso(i.expires_at),
            "Eingelöst": iso(i.redeemed_at),
        },
    )
    return data
