"""Data protection for admins (role ``admin``): erase a contact's personal data (Art. 17) and export it (Art. 15).

- ``POST /admin/privacy/contacts/{contact_id}/erasure`` (CSRF header, body ``{"reason": …}``) asks the assignment
  service, which owns master data, to publish ``ContactErasureRequested``; every service erases and records it.
- ``GET /admin/privacy/contacts/{contact_id}/erasure`` shows per service whether it erased and what (counts).
- ``GET /admin/privacy/contacts/{contact_id}/export`` collects ``/internal/contacts/{id}/personal-data`` of every
  service into one JSON document with German labels (``?download=1``: as a file; ``?format=zip``: a ZIP with
  ``auskunft.json`` and the PDF of every individual letter of the contact).
- ``GET /admin/privacy/audit``: who asked for which erasure or export, when (the gateway's own record).

Every call to a service carries the admin's verified claims; services answer only for the caller's account, so a
contact of another account is "not found" (erasure) or empty (export).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select

from smartpost_gateway.adapters.http import Caller, ServiceClient, ServiceError
from smartpost_gateway.settings import Role, Settings
from smartpost_gateway.web import ForbiddenError, PostSessionDep, SessionDep
from smartpost_shared.identity import CallerTokenIssuer
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from smartpost_gateway.auth import StaffSession

log = get_logger(__name__)

router = APIRouter(prefix="/admin/privacy", tags=["admin"])

# Every service that keeps personal data, with its label in the export.
SERVICES: dict[str, str] = {
    "assignment": "Stammdaten und Zuordnung",
    "letters": "Serienbriefe",
    "portal-publisher": "Kundenportal",
    "notifier": "E-Mail-Benachrichtigungen",
    "print-dispatch": "Briefversand",
}

MAX_ZIP_LETTERS = 500  # serial letters whose PDFs go into one ZIP export

audit_metadata = MetaData()
privacy_audit = Table(
    "gateway_privacy_audit",
    audit_metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(50), nullable=False),  # erasure_requested | export
    Column("contact_id", String(128), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
)


class ErasureRequest(BaseModel):
    reason: str = Field(default="", max_length=500)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100] or "kontakt"


def _admin(session: StaffSession) -> Caller:
    if not session.can(Role.ADMIN):
        raise ForbiddenError("Ihnen fehlt die Rolle „Administration“ für diese Aktion.")
    return Caller(account_id=session.account_id, actor=session.login, roles=frozenset(session.roles))


def _clients(request: Request) -> dict[str, ServiceClient]:
    clients: dict[str, ServiceClient] | None = getattr(request.app.state, "privacy_clients", None)
    if clients is None:
        settings: Settings = request.app.state.settings
        issuer = CallerTokenIssuer.from_settings(settings.identity)
        urls = {
            "assignment": settings.assignment_url,
            "letters": settings.letters_url,
            "portal-publisher": settings.portal_url,
            "notifier": settings.notifier_url,
            "print-dispatch": settings.print_url,
        }
        clients = {}
        for name, url in urls.items():
            client = ServiceClient(url, issuer=issuer, timeout=settings.service_timeout_seconds)
            client.service = name  # the audience of the caller token
            clients[name] = client
        request.app.state.privacy_clients = clients
    return clients


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.sessions.engine
    return engine


def _audit(engine: Engine, caller: Caller, action: str, contact_id: str, detail: dict[str, Any]) -> None:
    audit_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(privacy_audit).values(
                account_id=caller.account_id,
                at=datetime.now(UTC),
                actor=caller.actor,
                action=action,
                contact_id=contact_id,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )
    log.info("privacy.audit", action=action, contact_id=contact_id, actor=caller.actor, **detail)


async def _gather(request: Request, caller: Caller, path: str) -> dict[str, tuple[Any, str | None]]:
    """``path`` of every service: (answer, None) or (None, German problem)."""
    clients = _clients(request)

    async def one(name: str) -> tuple[str, Any, str | None]:
        try:
            return name, await clients[name].json("GET", path, caller), None
        except ServiceError as exc:
            log.warning("privacy.service_failed", service=name, status=exc.status, detail=exc.detail)
            return name, None, f"nicht erreichbar oder Fehler ({exc.status})"

    results = await asyncio.gather(*(one(name) for name in SERVICES))
    return {name: (answer, problem) for name, answer, problem in results}


@router.post("/contacts/{contact_id}/erasure", status_code=202)
async def request_erasure(
    request: Request, session: PostSessionDep, contact_id: str, body: ErasureRequest
) -> dict[str, Any]:
    caller = _admin(session)
    try:
        answer = await _clients(request)["assignment"].json(
            "POST", f"/internal/contacts/{contact_id}/erasure", caller, json={"reason": body.reason}
        )
    except ServiceError as exc:
        if exc.status == 404:
            raise HTTPException(404, "Diesen Kontakt gibt es in Ihrem Konto nicht.") from exc
        raise HTTPException(
            502, "Die Löschung konnte nicht angefordert werden; bitte später erneut versuchen."
        ) from exc
    await asyncio.to_thread(
        _audit, _engine(request), caller, "erasure_requested", contact_id,
        {"erasure_id": answer["erasure_id"], "reason": body.reason},
    )  # fmt: skip
    return {"erasure_id": answer["erasure_id"], "contact_id": contact_id, "status": "angefordert"}


@router.get("/contacts/{contact_id}/erasure")
async def erasure_status(
    request: Request, session: SessionDep, contact_id: str, erasure_id: str | None = None
) -> dict[str, Any]:
    caller = _admin(session)
    answers = await _gather(request, caller, f"/internal/contacts/{contact_id}/erasures")
    services: dict[str, Any] = {}
    for name, (answer, problem) in answers.items():
        records = [
            r for r in (answer or {}).get("erasures", []) if erasure_id is None or r.get("erasure_id") == erasure_id
        ]
        if problem is not None:
            services[name] = {"status": "unbekannt", "hinweis": problem}
        elif records:
            last = records[-1]
            services[name] = {"status": "gelöscht", "gelöscht_am": last["erased_at"], "anzahl": last["counts"]}
        else:
            services[name] = {"status": "ausstehend"}
    done = all(s["status"] == "gelöscht" for s in services.values())
    return {"contact_id": contact_id, "erasure_id": erasure_id, "abgeschlossen": done, "dienste": services}


async def _letter_pdfs(request: Request, caller: Caller, letters: Any) -> list[tuple[str, bytes]]:
    """(file name, PDF) of every individual letter of the contact that the letters service lists."""
    client = _clients(request)["letters"]
    files: list[tuple[str, bytes]] = []
    for letter in (letters or {}).get("Serienbriefe", [])[:MAX_ZIP_LETTERS]:
        for part in letter.get("Einzelbriefe", []):
            path = f"/v1/letters/{letter['Serienbrief']}/parts/{part['Einzelbrief']}/pdf"
            try:
                response = await client.request("GET", path, caller)
            except ServiceError as exc:
                log.warning("privacy.export_pdf_missing", path=path, status=exc.status)
                continue
            name = f"briefe/{_safe(str(letter.get('Titel', 'Brief')))}-{_safe(str(part['Einzelbrief']))}.pdf"
            files.append((name, response.content))
    return files


@router.get("/contacts/{contact_id}/export", response_model=None)
async def export_personal_data(
    request: Request,
    session: SessionDep,
    contact_id: str,
    download: bool = False,
    output: Annotated[str, Query(alias="format", pattern="^(json|zip)$")] = "json",
) -> dict[str, Any] | Response:
    """One document of everything stored about the contact; ``format=zip``: the JSON plus the letters' PDFs."""
    caller = _admin(session)
    answers = await _gather(request, caller, f"/internal/contacts/{contact_id}/personal-data")
    data: dict[str, Any] = {}
    erasures: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for name, (answer, problem) in answers.items():
        if problem is not None:
            problems[SERVICES[name]] = problem
            continue
        if answer and answer.get("Daten"):
            data[SERVICES[name]] = answer["Daten"]
        erasures += [{"Dienst": SERVICES[name], **e} for e in (answer or {}).get("Löschungen", [])]
    document = {
        "Auskunft nach Art. 15 DSGVO": {
            "Kontakt-ID": contact_id,
            "Konto": caller.account_id,
            "Erstellt am": datetime.now(UTC).isoformat(),
            "Erstellt von": caller.actor,
        },
        "Gespeicherte Daten": data,
        "Durchgeführte Löschungen": erasures,
        "Nicht erreichbare Dienste": problems,
    }
    files = await _letter_pdfs(request, caller, data.get(SERVICES["letters"])) if output == "zip" else []
    await asyncio.to_thread(
        _audit, _engine(request), caller, "export", contact_id,
        {"services": sorted(data), "incomplete": sorted(problems), "format": output, "pdfs": len(files)},
    )  # fmt: skip
    if output == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("auskunft.json", json.dumps(document, ensure_ascii=False, indent=2))
            for name, content in files:
                archive.writestr(name, content)
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="auskunft-{_safe(contact_id)}.zip"'},
        )
    if download:
        return JSONResponse(
            document,
            headers={"Content-Disposition": f'attachment; filename="auskunft-{_safe(contact_id)}.json"'},
        )
    return document


@router.get("/audit")
async def privacy_audit_log(request: Request, session: SessionDep) -> dict[str, Any]:
    caller = _admin(session)
    engine = _engine(request)

    def run() -> list[dict[str, Any]]:
        audit_metadata.create_all(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                select(privacy_audit)
                .where(privacy_audit.c.account_id == caller.account_id)
                .order_by(privacy_audit.c.audit_id)
            )
            return [
                {
                    "at": r.at.isoformat(),
                    "actor": r.actor,
                    "action": r.action,
                    "contact_id": r.contact_id,
                    "detail": json.loads(r.detail),
                }
                for r in rows
            ]

    return {"entries": await asyncio.to_thread(run)}
