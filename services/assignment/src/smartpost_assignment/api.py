"""HTTP API for the staff gateway: contacts, properties, a letter's assignments, re-matching, imports.

Every data route is scoped by the account of the verified caller claims (``smartpost_shared.identity``); nothing
crosses accounts. Commands check the caller's roles from the same claims (``smartpost_shared.roles``): re-matching
needs ``prepare``, a master-data import ``import`` or ``admin``; otherwise 403.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from smartpost_assignment.adapters.imports import import_status
from smartpost_assignment.adapters.masterdata_queries import count_contacts, search_contacts, units_of_property
from smartpost_assignment.application import letter_view
from smartpost_assignment.consumers import CONSUMER
from smartpost_assignment.domain.importing import ImportFormatError
from smartpost_shared.identity import verified_account, verified_actor
from smartpost_shared.masterdata import Contact, MasterDataReader
from smartpost_shared.roles import ADMIN, IMPORT, PREPARE, requires

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from sqlalchemy.engine import Engine

    from smartpost_assignment.application import AssignmentService
    from smartpost_assignment.settings import Settings
    from smartpost_shared.messaging import OutboxRelay

# Account and actor come from the caller's signed claims (smartpost_shared.identity), never from plain headers.
AccountHeader = Annotated[str | None, Depends(verified_account)]
ActorHeader = Annotated[str | None, Depends(verified_actor)]


def _account(value: str | None) -> str:
    if not value or not value.strip() or len(value) > 64:
        raise HTTPException(status_code=400, detail="verified caller has no account")
    return value.strip()


def _actor(value: str | None) -> str:
    if not value or not value.strip():
        raise HTTPException(status_code=400, detail="verified caller has no actor")
    return value.strip()


def contact_summary(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.contact_id,
        "reference_id": contact.reference_id,
        "display_name": contact.display_name,
        "salutation": contact.salutation,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company": contact.company,
        "postal_lines": contact.postal_lines(),
        "email": contact.email,
        "channel_preference": contact.channel_preference,
        "portal_registered": contact.portal_registered,
        "archived": contact.archived,
    }


def build_router(  # noqa: C901, PLR0915 - one closure per route
    engine: Engine,
    service: AssignmentService,
    settings: Settings,
    broker: KafkaBroker,
    relay: OutboxRelay | None = None,
) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        problems: dict[str, str] = {}
        startup = getattr(request.app.state, "startup", None)
        if startup is not None and not startup.done:
            problems["startup"] = startup.check()
        try:
            await asyncio.to_thread(_ping_database, engine)
        except Exception as exc:  # noqa: BLE001 - report any failure as not ready
            problems["database"] = str(exc)
        try:
            if not await broker.ping(timeout=2.0):
                problems["kafka"] = "broker not reachable"
        except Exception as exc:  # noqa: BLE001
            problems["kafka"] = str(exc)
        if relay is not None and relay.health.stuck:
            problems["outbox"] = relay.health.check()
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/outbox/status")
    async def outbox_status(account: AccountHeader = None) -> dict[str, Any]:
        """Whether a PagesAssigned cannot be published (the gateway shows the letter's error state from it)."""
        if relay is None:
            return {"stuck": False, "failures": 0, "letter_id": None, "event_type": None}
        return relay.health.status(_account(account))

    @router.get("/contacts")
    async def list_contacts(
        account: AccountHeader = None,
        q: str = "",
        property_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """One page of the matching contacts (``offset``/``limit``) and how many match in all (``total``)."""
        account_id = _account(account)

        def run() -> tuple[list[Contact], int]:
            with engine.connect() as conn:
                found = search_contacts(conn, account_id, q, property_id=property_id, limit=limit, offset=offset)
                return found, count_contacts(conn, account_id, q, property_id=property_id)

        found, total = await asyncio.to_thread(run)
        return {
            "contacts": [contact_summary(c) for c in found],
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + len(found) if offset + len(found) < total else None,
        }

    @router.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str, account: AccountHeader = None) -> dict[str, Any]:
        account_id = _account(account)

        def run() -> dict[str, Any] | None:
            with engine.connect() as conn:
                reader = MasterDataReader(conn)
                contact = reader.contact(account_id, contact_id)
                if contact is None:
                    return None
                contracts = []
                for c in reader.contracts_of_contact(account_id, contact_id):
                    unit = reader.unit(account_id, c.unit_id)
                    prop = reader.property(account_id, c.property_id)
                    contracts.append(
                        {
                            "contract_id": c.contract_id,
                            "role": c.role,
                            "start": c.start.isoformat(),
                            "end": c.end.isoformat() if c.end else None,
                            "contract_number": c.contract_number,
                            "property": {"property_id": c.property_id, "reference": prop.reference, "name": prop.name}
                            if prop
                            else {"property_id": c.property_id},
                            "unit": {"unit_id": c.unit_id, "number": unit.number, "position": unit.position}
                            if unit
                            else {"unit_id": c.unit_id},
                        }
                    )
                data = contact_summary(contact)
                data["address"] = {
                    "street": contact.street,
                    "postal_code": contact.postal_code,
                    "city": contact.city,
                    "country": contact.country,
                    "extra_lines": contact.extra_lines,
                }
                data["contracts"] = contracts
                return data

        found = await asyncio.to_thread(run)
        if found is None:
            raise HTTPException(status_code=404, detail="contact not found")
        return found

    @router.get("/properties")
    async def list_properties(account: AccountHeader = None) -> dict[str, Any]:
        account_id = _account(account)

        def run() -> list[dict[str, Any]]:
            with engine.connect() as conn:
                return [
                    {
                        "property_id": p.property_id,
                        "reference": p.reference,
                        "name": p.name,
                        "street": p.street,
                        "postal_code": p.postal_code,
                        "city": p.city,
                    }
                    for p in MasterDataReader(conn).properties(account_id)
                ]

        return {"properties": await asyncio.to_thread(run)}

    @router.get("/properties/{property_id}/units")
    async def list_units(property_id: str, account: AccountHeader = None) -> dict[str, Any]:
        account_id = _account(account)

        def run() -> list[dict[str, Any]] | None:
            with engine.connect() as conn:
                if MasterDataReader(conn).property(account_id, property_id) is None:
                    return None
                return [
                    {"unit_id": u.unit_id, "number": u.number, "position": u.position}
                    for u in units_of_property(conn, account_id, property_id)
                ]

        found = await asyncio.to_thread(run)
        if found is None:
            raise HTTPException(status_code=404, detail="property not found")
        return {"property_id": property_id, "units": found}

    @router.get("/letters/{letter_id}/assignments")
    async def get_assignments(letter_id: str, account: AccountHeader = None) -> dict[str, Any]:
        account_id = _account(account)

        def run() -> dict[str, Any] | None:
            with engine.connect() as conn:
                return letter_view(conn, account_id, letter_id)

        found = await asyncio.to_thread(run)
        if found is None:
            raise HTTPException(status_code=404, detail="letter not known to the assignment service")
        return found

    # Roles from the verified claims (smartpost_shared.roles): re-matching is preparing a letter (as in the
    # gateway); a master-data import needs the importer's narrow role or administration.
    @router.post("/letters/{letter_id}/rematch", dependencies=[requires(PREPARE)])
    async def rematch(letter_id: str, account: AccountHeader = None, actor: ActorHeader = None) -> dict[str, Any]:
        account_id, actor_name = _account(account), _actor(actor)

        def run() -> dict[str, Any]:
            with engine.begin() as conn:
                outcomes = service.rematch_letter(conn, account_id, letter_id, actor_name)
            return {
                "letter_id": letter_id,
                "documents": [
                    {
                        "document_id": o.document_id,
                        "assigned": sum(1 for a in o.assignments if a.status.value == "assigned"),
                        "parts": len(o.assignments),
                    }
                    for o in outcomes
                ],
            }

        try:
            return await asyncio.to_thread(run)
        except LookupError:
            raise HTTPException(status_code=404, detail="letter not known to the assignment service") from None

    @router.post("/imports", dependencies=[requires(IMPORT, ADMIN)])
    async def import_masterdata(
        request: Request, account: AccountHeader = None, actor: ActorHeader = None
    ) -> JSONResponse:
        account_id, actor_name = _account(account), _actor(actor)
        raw, filename = await _upload(request, settings.max_import_bytes)

        def run() -> JSONResponse:
            with engine.begin() as conn:
                try:
                    result, import_id = service.import_masterdata(conn, account_id, raw, filename, actor_name)
                except ImportFormatError as exc:
                    import_id = hashlib.sha256(account_id.encode() + b"\0" + raw).hexdigest()[:32]
                    return JSONResponse(
                        {"status": "rejected", "import_id": import_id, "errors": [{"row": "", "message": str(exc)}]},
                        422,
                    )
            if not result.ok:
                return JSONResponse(
                    {
                        "status": "rejected",
                        "import_id": import_id,
                        "message": "nothing was imported: fix the rows below and upload the file again",
                        "errors": [
                            {"row": e.row, "record_type": e.record_type, "record_id": e.record_id, "message": e.message}
                            for e in result.errors
                        ],
                    },
                    status_code=422,
                )
            return JSONResponse({"status": "accepted", "import_id": import_id, "counts": result.counts}, 202)

        return await asyncio.to_thread(run)

    @router.get("/imports/{import_id}")
    async def import_progress(import_id: str, account: AccountHeader = None) -> dict[str, Any]:
        """Status (received, applied, rejected with the row errors) and progress (events published, applied)."""
        account_id = _account(account)

        def run() -> dict[str, Any] | None:
            with engine.connect() as conn:
                return import_status(conn, account_id=account_id, import_id=import_id, consumer=CONSUMER)

        found = await asyncio.to_thread(run)
        if found is None:
            raise HTTPException(status_code=404, detail="import not found")
        return found

    return router


async def _upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The uploaded file: multipart field ``file``, or the raw body (CSV or JSON by content type)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(status_code=400, detail="multipart upload needs a 'file' field")
        raw = await upload.read(max_bytes + 1)
        filename = upload.filename or ""
    else:
        raw = await request.body()
        filename = "upload.json" if "json" in content_type else ("upload.csv" if "csv" in content_type else "")
    if len(raw) > max_bytes:
        raise HTTPException(status_code=413, detail=f"file larger than {max_bytes} bytes")
    if not raw:
        raise HTTPException(status_code=400, detail="empty upload")
    return raw, filename


def _ping_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
