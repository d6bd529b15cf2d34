"""HTTP face: the portal API (recipients: /portal/...) and the internal staff API (/internal/..., per account).

Refusals never reveal whether another contact's document exists: "not yours" and "does not exist" are both 404.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from smartpost_portal_publisher.adapters.mail import MailNotSentError
from smartpost_portal_publisher.application import (
    AuthenticationError,
    DocumentView,
    ForbiddenError,
    InvitationOutcome,
    IssuedInvitation,
    IssuedSession,
    OpenedDownload,
    PortalError,
    PortalService,
)
from smartpost_portal_publisher.domain import AccessWindow, CoUserRights, FolderNode, Principal, parse_folder
from smartpost_portal_publisher.security import DownloadGrant
from smartpost_portal_publisher.web import (
    WebPortal,
    html_refusal,
    invitation_mail,
    not_found_page,
    problem_page,
    wants_html,
)
from smartpost_shared.identity import VerifiedCaller, verified_account
from smartpost_shared.logging import get_logger
from smartpost_shared.roles import PREPARE, RELEASE, requires

log = get_logger(__name__)

_bearer = HTTPBearer(auto_error=False)


# --- request / response bodies -----------------------------------------------------------------------------------


class RedeemRequest(BaseModel):
    code: str = Field(min_length=1, max_length=64, description="invitation code as printed, e.g. 7K3M-...")
    login: str = Field(min_length=1, max_length=320, description="login name chosen by the recipient (e-mail)")
    password: str = Field(min_length=1, max_length=256)


class LoginRequest(BaseModel):
    account_id: str = Field(min_length=1, max_length=64)
    login: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class PrincipalOut(BaseModel):
    principal_id: str
    account_id: str
    contact_id: str
    kind: str
    rights: str | None
    unit_id: str | None


class SessionOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type name, not a secret
    expires_at: datetime
    principal: PrincipalOut


class DocumentOut(BaseModel):
    document_id: str
    title: str
    folder: list[str]
    letter_date: date
    published_at: datetime
    page_count: int
    property_id: str | None
    property_name: str | None
    unit_id: str | None
    unit_number: str | None
    viewed: bool


class FolderOut(BaseModel):
    name: str
    path: list[str]
    documents: int
    total: int
    children: list[FolderOut]


class LinkOut(BaseModel):
    url: str
    expires_at: datetime


class InvitationRequest(BaseModel):
    contact_id: str = Field(min_length=1, max_length=128)
    issued_by: str = Field(default="staff", min_length=1, max_length=200)


class ContactRequest(BaseModel):
    contact_id: str = Field(min_length=1, max_length=128)


class CoUserInvitationRequest(BaseModel):
    unit_id: str = Field(min_length=1, max_length=128)
    rights: CoUserRights


class InvitationOut(BaseModel):
    code: str
    contact_id: str
    kind: str
    rights: str | None
    unit_id: str | None
    expires_at: datetime


class WindowBody(BaseModel):
    days_before_start: int = Field(ge=0, le=3650)
    days_after_end: int = Field(ge=0, le=3650)


class ViewOut(BaseModel):
    principal_id: str
    principal_kind: str
    viewed_at: datetime


class DeliveryOut(BaseModel):
    item_id: str
    document_id: str
    contact_id: str
    property_id: str | None
    unit_id: str | None
    published_at: datetime
    first_viewed_at: datetime | None
    revoked_at: datetime | None
    views: list[ViewOut]
    portal_login: bool = False
    invited_at: datetime | None = None
    invitation_expires_at: datetime | None = None


# --- mapping helpers ---------------------------------------------------------------------------------------------


def _principal_out(p: Principal) -> PrincipalOut:
    return PrincipalOut(
        principal_id=p.principal_id,
        account_id=p.account_id,
        contact_id=p.contact_id,
        kind=p.kind.value,
        rights=p.rights.value if p.rights else None,
        unit_id=p.unit_id,
    )


def _session_out(s: IssuedSession) -> SessionOut:
    return SessionOut(token=s.token, expires_at=s.expires_at, principal=_principal_out(s.principal))


def _document_out(v: DocumentView) -> DocumentOut:
    d = v.document
    return DocumentOut(
        document_id=d.document_id,
        title=d.title,
        folder=list(d.folder),
        letter_date=d.letter_date,
        published_at=d.published_at,
        page_count=d.page_count,
        property_id=d.property_id,
        property_name=v.property_name,
        unit_id=d.unit_id,
        unit_number=v.unit_number,
        viewed=v.viewed,
    )


def _folder_out(node: FolderNode) -> FolderOut:
    return FolderOut(
        name=node.name,
        path=list(node.path),
        documents=node.documents,
        total=node.total,
        children=[_folder_out(c) for c in (node.children or {}).values()],
    )


def _invitation_out(i: IssuedInvitation) -> InvitationOut:
    return InvitationOut(
        code=i.code,
        contact_id=i.contact_id,
        kind=i.kind.value,
        rights=i.rights.value if i.rights else None,
        unit_id=i.unit_id,
        expires_at=i.expires_at,
    )


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]+")


def _stream_pdf(opened: OpenedDownload) -> StreamingResponse:
    d = opened.document
    base = f"{d.letter_date.isoformat()} {d.title}"[:150]
    ascii_name = (_UNSAFE_FILENAME.sub("_", base).strip() or "dokument") + ".pdf"
    headers = {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base + '.pdf')}",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if opened.size is not None:
        headers["Content-Length"] = str(opened.size)
    return StreamingResponse(opened.chunks, media_type="application/pdf", headers=headers)


# --- dependencies ------------------------------------------------------------------------------------------------


def _service(request: Request) -> PortalService:
    service: PortalService = request.app.state.portal
    return service


Service = Annotated[PortalService, Depends(_service)]


def _token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("bearer token required")
    return credentials.credentials


Token = Annotated[str, Depends(_token)]


def _current_principal(service: Service, token: Token) -> Principal:
    return service.authenticate(token)


CurrentPrincipal = Annotated[Principal, Depends(_current_principal)]


ADMIN_ROLE = "admin"
# Internal (staff) routes: the account comes from the caller's signed claims (smartpost_shared.identity).
Account = Annotated[str, Depends(verified_account)]


# --- routes ------------------------------------------------------------------------------------------------------

portal = APIRouter(prefix="/portal", tags=["portal"])
internal = APIRouter(prefix="/internal", tags=["internal"])


@portal.post("/invitations/redeem", response_model=SessionOut, status_code=201)
def redeem_invitation(body: RedeemRequest, request: Request, service: Service) -> SessionOut:
    """Register with an invitation code and get a session (throttled per source address: codes are not guessed)."""
    source = request.client.host if request.client else "unknown"
    return _session_out(service.redeem_invitation(body.code, body.login, body.password, source=source))


@portal.post("/sessions", response_model=SessionOut, status_code=201)
def login(body: LoginRequest, service: Service) -> SessionOut:
    return _session_out(service.login(body.account_id, body.login, body.password))


@portal.delete("/sessions/current", status_code=204)
def logout(service: Service, token: Token) -> None:
    service.logout(token)


@portal.get("/me", response_model=PrincipalOut)
def me(principal: CurrentPrincipal) -> PrincipalOut:
    return _principal_out(principal)


@portal.get("/folders", response_model=FolderOut)
def folders(principal: CurrentPrincipal, service: Service) -> FolderOut:
    """The recipient's folder tree (document types) with document counts."""
    return _folder_out(service.folders(principal))


@portal.get("/documents", response_model=list[DocumentOut])
def list_documents(
    principal: CurrentPrincipal,
    service: Service,
    folder: Annotated[str | None, Query(max_length=1000, description="e.g. Abrechnung/Heizkosten")] = None,
    recursive: bool = True,
) -> list[DocumentOut]:
    views = service.list_documents(principal, parse_folder(folder), recursive=recursive)
    return [_document_out(v) for v in views]


@portal.get("/documents/{document_id}", response_model=DocumentOut)
def get_document(document_id: str, principal: CurrentPrincipal, service: Service) -> DocumentOut:
    return _document_out(service.document(principal, document_id))


@portal.post("/documents/{document_id}/download-link", response_model=LinkOut)
def download_link(document_id: str, request: Request, principal: CurrentPrincipal, service: Service) -> LinkOut:
    """A short-lived signed link; access is checked again when it is used."""
    link = service.download_link(principal, document_id)
    base = request.app.state.public_base_url or str(request.base_url)
    return LinkOut(url=base.rstrip("/") + link.path, expires_at=link.expires_at)


@portal.get("/documents/{document_id}/content")
def document_content(document_id: str, principal: CurrentPrincipal, service: Service) -> StreamingResponse:
    """Stream the PDF directly (for apps that hold the bearer token)."""
    return _stream_pdf(service.open_download(principal, document_id))


@portal.get("/downloads/{document_id}")
def signed_download(
    document_id: str,
    service: Service,
    a: Annotated[str, Query(min_length=1, max_length=64)],
    p: Annotated[str, Query(min_length=1, max_length=64)],
    e: Annotated[int, Query(ge=0)],
    s: Annotated[str, Query(min_length=1, max_length=128)],
) -> StreamingResponse:
    """Download through a signed link (no bearer token needed: works as a plain browser link)."""
    grant = DownloadGrant(account_id=a, document_id=document_id, principal_id=p, expires=e)
    return _stream_pdf(service.open_signed_download(grant, s))


@portal.post("/co-users", response_model=InvitationOut, status_code=201)
def invite_co_user(body: CoUserInvitationRequest, principal: CurrentPrincipal, service: Service) -> InvitationOut:
    """Invite a co-user for one of your units: ``admin`` sees personal documents, ``user`` does not."""
    return _invitation_out(service.invite_co_user(principal, body.unit_id, body.rights))


@portal.get("/co-users")
def list_co_users(principal: CurrentPrincipal, service: Service) -> list[dict[str, Any]]:
    return service.co_users(principal)


@portal.delete("/co-users/{co_user_id}", status_code=204)
def remove_co_user(co_user_id: str, principal: CurrentPrincipal, service: Service) -> None:
    service.remove_co_user(principal, co_user_id)


# Inviting a contact needs "prepare" or "release" (as the gateway's button), from the verified claims.
@internal.post("/invitations", response_model=InvitationOut, status_code=201, dependencies=[requires(PREPARE, RELEASE)])
def issue_invitation(body: InvitationRequest, caller: VerifiedCaller, service: Service) -> InvitationOut:
    """Create (or re-activate) a contact's invitation code; staff hand it over on paper or by e-mail.

    ``issued_by`` in the audit trail is the verified actor; the body's field is ignored (kept for old clients).
    """
    return _invitation_out(service.issue_contact_invitation(caller.account_id, body.contact_id, issued_by=caller.actor))


@internal.post("/invitations/email", dependencies=[requires(PREPARE, RELEASE)])
async def email_invitation(
    body: ContactRequest, request: Request, caller: VerifiedCaller, service: Service
) -> JSONResponse:
    """Staff send a contact an invitation by e-mail (gateway button "Zum Portal einladen"); audited in any outcome.

    ``status`` is ``sent`` (201, the code went only into the mail), ``already_registered`` (200: the contact has a
    login, nothing changed: an invitation never resets a login) or ``no_email`` (200: no address in the master
    data). An unknown contact is 404; a mail that cannot be sent is 503 (``code: mail_not_sent``, the code is
    withdrawn).
    """
    prepared = await asyncio.to_thread(
        service.prepare_mailed_invitation, caller.account_id, body.contact_id, issued_by=caller.actor
    )
    answer: dict[str, Any] = {
        "status": prepared.outcome.value,
        "contact_id": prepared.contact_id,
        "contact_name": prepared.contact_name,
    }
    if prepared.outcome is not InvitationOutcome.SENT:
        return JSONResponse(answer, status_code=200)
    web: WebPortal = request.app.state.web_portal
    mail = invitation_mail(web, caller.account_id, prepared, str(request.base_url))
    try:
        await asyncio.to_thread(web.mailer.send, mail)
    except MailNotSentError:
        await asyncio.to_thread(service.withdraw_invitation, caller.account_id, prepared.code or "", actor=caller.actor)
        return JSONResponse({"detail": "invitation mail could not be sent", "code": "mail_not_sent"}, status_code=503)
    answer |= {"email": prepared.email, "expires_at": prepared.expires_at.isoformat() if prepared.expires_at else None}
    return JSONResponse(answer, status_code=201)


@internal.get("/letters/{letter_id}/deliveries", response_model=list[DeliveryOut])
def deliveries(letter_id: str, account: Account, service: Service) -> list[DeliveryOut]:
    """Proof of delivery per individual letter: published, first viewed, revoked, every download."""
    return [DeliveryOut.model_validate(d) for d in service.deliveries(account, letter_id)]


@internal.get("/access-window", response_model=WindowBody)
def get_access_window(account: Account, service: Service) -> WindowBody:
    w = service.access_window(account)
    return WindowBody(days_before_start=w.days_before_start, days_after_end=w.days_after_end)


@internal.put("/access-window", response_model=WindowBody)
def put_access_window(body: WindowBody, caller: VerifiedCaller, service: Service) -> WindowBody:
    """Only a caller with the ``admin`` role (signed by its issuer) changes what recipients may see; audited."""
    if ADMIN_ROLE not in caller.roles:
        raise ForbiddenError("Nur Administratoren dürfen das Zugriffsfenster ändern.")
    window = AccessWindow(body.days_before_start, body.days_after_end)
    service.set_access_window(caller.account_id, window, actor=caller.actor)
    return body


@internal.get("/staff-audit")
def staff_audit(account: Account, service: Service) -> list[dict[str, Any]]:
    """Who changed what recipients may see, and when (oldest first)."""
    return service.staff_actions(account)


def install_routes(app: FastAPI) -> None:  # noqa: C901 - one handler per kind of error
    app.include_router(portal)
    app.include_router(internal)

    @app.exception_handler(PortalError)
    async def _portal_error(request: Request, exc: PortalError) -> Response:
        # A browser that opens an API link (a signed download link from the address bar, a bookmark) gets the
        # German explanation as a page; apps get JSON.
        if hasattr(request.app.state, "web_portal") and wants_html(request):
            return html_refusal(request, exc, request.query_params.get("a"))
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    def for_browser(request: Request) -> bool:
        return hasattr(request.app.state, "web_portal") and wants_html(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and for_browser(request):
            return not_found_page(request)
        if for_browser(request):
            return problem_page(request, exc.status_code, f"HTTP {exc.status_code}: {exc.detail}")
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if for_browser(request):
            return problem_page(request, 422, str(exc.errors()))
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Recipients see a German page with a support number; the technical reason goes to the log under it.
        if for_browser(request):
            return problem_page(request, 500, repr(exc), exc=exc)
        log.error("portal.unexpected_error", path=request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
