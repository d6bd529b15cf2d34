"""The recipients' web portal (German, server-rendered): ``/kundenportal/<account>/...``.

A thin face over :class:`~smartpost_portal_publisher.application.PortalService`, the same use cases as the JSON
API: the session is the API's session token, kept in an HttpOnly cookie scoped to the account's path; downloads go
through the API's signed, short-lived links (access is checked again when the link is used, every download is
recorded). Every form carries a CSRF token (HMAC of a random cookie; a POST without the matching pair is refused).
Everything a recipient reads is German; technical reasons go to the log with a support number the page shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, unquote, urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from smartpost_portal_publisher.adapters.mail import MailNotSentError, OutgoingMail
from smartpost_portal_publisher.application import (
    AuthenticationError,
    DocumentView,
    IssuedSession,
    MailedInvitation,
    PortalError,
    PortalService,
)
from smartpost_portal_publisher.domain import Principal, parse_folder
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from smartpost_portal_publisher.adapters.mail import MailSender
    from smartpost_portal_publisher.settings import Settings

log = get_logger(__name__)

PREFIX = "/kundenportal"
SESSION_COOKIE = "sp_portal_session"
CSRF_COOKIE = "sp_portal_csrf"
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BERLIN = ZoneInfo("Europe/Berlin")

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# Short notes after a redirect (?hinweis=...): fixed texts, nothing from the URL is shown.
NOTES = {
    "abgemeldet": "Sie haben sich abgemeldet.",
    "passwort-geaendert": "Ihr neues Passwort ist gespeichert. Sie sind angemeldet.",
    "willkommen": "Willkommen in Ihrem Kundenportal. Ihr Zugang ist eingerichtet.",
    "sitzung-abgelaufen": "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.",
}


def german_date(value: date | datetime | None) -> str:
    """02.03.2026, or for a moment '30.11.2026 um 16:48 Uhr' in German local time (Babel)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return str(format_datetime(value, "dd.MM.yyyy 'um' HH:mm 'Uhr'", tzinfo=_BERLIN, locale="de_DE"))
    return str(format_date(value, "dd.MM.yyyy", locale="de_DE"))


def german_long_date(value: date) -> str:
    """2. März 2026."""
    return str(format_date(value, "long", locale="de_DE"))


templates.env.filters["datum"] = german_date
templates.env.filters["datum_lang"] = german_long_date


@dataclass(frozen=True)
class Branding:
    account_id: str
    name: str
    logo_url: str | None
    contact_line: str | None

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.account_id}"


@dataclass(frozen=True)
class FolderEntry:
    path: str
    name: str
    depth: int
    total: int
    unread: int


def folder_entries(views: list[DocumentView]) -> list[FolderEntry]:
    """Every folder (and parent folder) of the documents, sorted as a tree, with totals and unread counts."""
    totals: dict[tuple[str, ...], list[int]] = {}
    for view in views:
        folder = view.document.folder
        for depth in range(1, len(folder) + 1):
            counts = totals.setdefault(folder[:depth], [0, 0])
            counts[0] += 1
            counts[1] += 0 if view.viewed else 1
    return [
        FolderEntry("/".join(path), path[-1], len(path) - 1, counts[0], counts[1])
        for path, counts in sorted(totals.items())
    ]


class WebPortal:
    """Per-app state of the web portal: service, branding, CSRF secret, mailer."""

    def __init__(self, service: PortalService, settings: Settings, mailer: MailSender, csrf_secret: bytes) -> None:
        self.service = service
        self.settings = settings
        self.mailer = mailer
        self.csrf_secret = csrf_secret

    def branding(self, account_id: str) -> Branding:
        found = self.settings.accounts.get(account_id)
        if found is None:
            return Branding(account_id, self.settings.default_account_name, None, None)
        return Branding(account_id, found.name, found.logo_url, found.contact_line)

    def csrf_token(self, cookie_value: str) -> str:
        return hmac.new(self.csrf_secret, f"csrf|{cookie_value}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: str) -> bool:
        cookie_value = request.cookies.get(CSRF_COOKIE)
        if not cookie_value or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(cookie_value), submitted)


def _portal(request: Request) -> WebPortal:
    web: WebPortal = request.app.state.web_portal
    return web


def _support_id() -> str:
    return uuid.uuid4().hex[:10]


def render(
    request: Request,
    template: str,
    branding: Branding,
    *,
    status: int = 200,
    principal: Principal | None = None,
    **context: Any,
) -> HTMLResponse:
    web = _portal(request)
    cookie_value = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "brand": branding,
            "principal": principal,
            "csrf_token": web.csrf_token(cookie_value),
            **context,
        },
        status_code=status,
    )
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE,
            cookie_value,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=web.settings.secure_cookies,
        )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def message_page(
    request: Request,
    branding: Branding,
    *,
    title: str,
    text: str,
    status: int,
    principal: Principal | None = None,
    support_id: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "portal/meldung.html",
        branding,
        status=status,
        principal=principal,
        title=title,
        text=text,
        support_id=support_id,
    )


def _safe_next(branding: Branding, target: str | None) -> str:
    """Only paths inside this account's portal are followed after login (no open redirect)."""
    # Browsers resolve "%2e%2e" like "..": the decoded form must not leave the account's portal either.
    checked = (target or "") + " " + unquote((target or "").split("?", 1)[0])
    if target and target.startswith(branding.base + "/") and not any(s in checked for s in ("//", "\\", "..")):
        return target
    return f"{branding.base}/posteingang"


def _set_session(response: Response, web: WebPortal, account_id: str, session: IssuedSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        path=f"{PREFIX}/{account_id}",
        httponly=True,
        samesite="lax",
        secure=web.settings.secure_cookies,
        expires=session.expires_at,
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


router = APIRouter(prefix=PREFIX, include_in_schema=False)


class _RefusedError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _branding_or_404(request: Request, account_id: str) -> Branding:
    web = _portal(request)
    if not _ACCOUNT_RE.match(account_id):
        branding = Branding("unbekannt", web.settings.default_account_name, None, None)
        raise _RefusedError(
            message_page(
                request,
                branding,
                title="Seite nicht gefunden",
                text="Diese Adresse gibt es im Kundenportal nicht. Bitte prüfen Sie den Link.",
                status=404,
            )
        )
    return web.branding(account_id)


async def _principal(request: Request, branding: Branding) -> Principal:
    """The logged-in principal of this account, or a redirect to the login page (with the page to return to)."""
    token = request.cookies.get(SESSION_COOKIE)
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login_url = f"{branding.base}/anmelden?" + urlencode({"weiter": back})
    if not token:
        raise _RefusedError(_redirect(login_url))
    try:
        principal = await asyncio.to_thread(_portal(request).service.authenticate, token)
    except AuthenticationError:
        raise _RefusedError(_redirect(login_url + "&hinweis=sitzung-abgelaufen")) from None
    if principal.account_id != branding.account_id:
        raise _RefusedError(_redirect(login_url))
    return principal


def _csrf_refusal(request: Request, branding: Branding) -> HTMLResponse:
    log.warning("portal_web.csrf_refused", path=request.url.path)
    return message_page(
        request,
        branding,
        title="Formular abgelaufen",
        text="Das Formular war veraltet oder wurde nicht von dieser Seite abgeschickt. Bitte laden Sie die Seite "
        "neu und versuchen Sie es noch einmal.",
        status=403,
    )


def _checked_form(request: Request, account_id: str, csrf_token: str) -> tuple[WebPortal, Branding]:
    """The portal and the account's branding for a submitted form; 404 or a stale form as :class:`_RefusedError`."""
    branding = _branding_or_404(request, account_id)
    web = _portal(request)
    if not web.csrf_ok(request, csrf_token):
        raise _RefusedError(_csrf_refusal(request, branding))
    return web, branding


def _error_page(request: Request, branding: Branding, exc: PortalError, principal: Principal | None) -> HTMLResponse:
    support = _support_id()
    log.info("portal_web.refused", support_id=support, status=exc.status, reason=str(exc), path=request.url.path)
    titles = {
        404: "Dokument nicht gefunden",
        410: "Dokument zurückgezogen",
        403: "Kein Zugriff",
        401: "Anmeldung nötig",
        503: "Gerade nicht verfügbar",
    }
    return message_page(
        request,
        branding,
        title=titles.get(exc.status, "Das hat nicht geklappt"),
        text=exc.german,
        status=exc.status,
        principal=principal,
        support_id=support,
    )


@router.get("/{account_id}")
@router.get("/{account_id}/")
async def home(request: Request, account_id: str) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
    except _RefusedError as refused:
        return refused.response
    return _redirect(f"{branding.base}/posteingang")


@router.get("/{account_id}/anmelden")
async def login_form(
    request: Request, account_id: str, weiter: str | None = None, hinweis: str | None = None
) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
    except _RefusedError as refused:
        return refused.response
    return render(
        request,
        "portal/anmelden.html",
        branding,
        weiter=_safe_next(branding, weiter),
        note=NOTES.get(hinweis or ""),
        login="",
        error=None,
    )


@router.post("/{account_id}/anmelden")
async def login_submit(
    request: Request,
    account_id: str,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    weiter: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        web, branding = _checked_form(request, account_id, csrf_token)
    except _RefusedError as refused:
        return refused.response
    if not login.strip() or not password:
        return render(
            request,
            "portal/anmelden.html",
            branding,
            status=422,
            weiter=_safe_next(branding, weiter),
            note=None,
            login=login,
            error="Bitte geben Sie Benutzername und Passwort ein.",
        )
    try:
        session = await asyncio.to_thread(web.service.login, account_id, login, password)
    except PortalError as exc:
        log.info("portal_web.login_refused", status=exc.status, reason=str(exc))
        return render(
            request,
            "portal/anmelden.html",
            branding,
            status=exc.status,
            weiter=_safe_next(branding, weiter),
            note=None,
            login=login,
            error=exc.german,
        )
    response = _redirect(_safe_next(branding, weiter))
    _set_session(response, web, account_id, session)
    return response


@router.post("/{account_id}/abmelden")
async def logout(request: Request, account_id: str, csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        web, branding = _checked_form(request, account_id, csrf_token)
    except _RefusedError as refused:
        return refused.response
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await asyncio.to_thread(web.service.logout, token)
    response = _redirect(f"{branding.base}/anmelden?hinweis=abgemeldet")
    response.delete_cookie(SESSION_COOKIE, path=branding.base)
    return response


@router.get("/{account_id}/einladung")
async def redeem_form(
    request: Request, account_id: str, code: str | None = None, weiter: str | None = None
) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
    except _RefusedError as refused:
        return refused.response
    return render(
        request,
        "portal/einladung.html",
        branding,
        code=code or "",
        login="",
        error=None,
        weiter=_safe_next(branding, weiter),
    )


@router.post("/{account_id}/einladung")
async def redeem_submit(
    request: Request,
    account_id: str,
    code: Annotated[str, Form()] = "",
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_repeat: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    weiter: Annotated[str, Form()] = "",
) -> Response:
    try:
        web, branding = _checked_form(request, account_id, csrf_token)
    except _RefusedError as refused:
        return refused.response

    def again(error: str, status: int) -> HTMLResponse:
        return render(
            request,
            "portal/einladung.html",
            branding,
            status=status,
            code=code,
            login=login,
            error=error,
            weiter=_safe_next(branding, weiter),
        )

    if not code.strip():
        return again("Bitte geben Sie Ihren Einladungscode ein.", 422)
    if password != password_repeat:
        return again("Die beiden Passwörter stimmen nicht überein.", 422)
    try:
        session = await asyncio.to_thread(web.service.redeem_invitation, code, login, password)
    except PortalError as exc:
        log.info("portal_web.redeem_refused", status=exc.status, reason=str(exc))
        return again(exc.german, exc.status)
    # The code decides the account (a code of another management company leads to that company's portal).
    target = web.branding(session.principal.account_id)
    after = _safe_next(target, weiter)
    if after == f"{target.base}/posteingang":
        after += "?hinweis=willkommen"
    response = _redirect(after)
    _set_session(response, web, target.account_id, session)
    return response


@router.get("/{account_id}/passwort-vergessen")
async def forgot_form(request: Request, account_id: str) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
    except _RefusedError as refused:
        return refused.response
    return render(request, "portal/passwort_vergessen.html", branding, sent=False, login="", error=None)


@router.post("/{account_id}/passwort-vergessen")
async def forgot_submit(
    request: Request, account_id: str, login: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    try:
        web, branding = _checked_form(request, account_id, csrf_token)
    except _RefusedError as refused:
        return refused.response
    if not login.strip():
        return render(
            request,
            "portal/passwort_vergessen.html",
            branding,
            status=422,
            sent=False,
            login=login,
            error="Bitte geben Sie Ihren Benutzernamen ein.",
        )
    reset = await asyncio.to_thread(web.service.request_password_reset, account_id, login)
    if reset is not None:
        base = (web.settings.public_base_url or str(request.base_url)).rstrip("/")
        link = f"{base}{branding.base}/passwort-neu?" + urlencode({"t": reset.token})
        minutes = web.settings.password_reset_ttl_minutes
        greeting = f"Guten Tag {reset.recipient_name}," if reset.recipient_name else "Guten Tag,"
        text = (
            f"{greeting}\n\nSie haben für Ihr Kundenportal von {branding.name} ein neues Passwort angefordert.\n"
            f"Über diesen Link legen Sie es fest (er gilt {minutes} Minuten und nur einmal):\n\n{link}\n\n"
            "Wenn Sie das nicht waren, können Sie diese E-Mail ignorieren; Ihr bisheriges Passwort bleibt gültig.\n\n"
            f"Mit freundlichen Grüßen\n{branding.name}\n"
        )
        mail = OutgoingMail(
            reset.email, reset.recipient_name, branding.name, "Neues Passwort für Ihr Kundenportal", text
        )
        try:
            await asyncio.to_thread(web.mailer.send, mail)
        except MailNotSentError:
            await asyncio.to_thread(web.service.withdraw_password_reset, reset.token)
            support = _support_id()
            log.warning("portal_web.reset_mail_failed", support_id=support)
            return message_page(
                request,
                branding,
                title="E-Mail konnte nicht gesendet werden",
                text="Gerade können wir keine E-Mail versenden. Bitte versuchen Sie es in einigen Minuten erneut.",
                status=503,
                support_id=support,
            )
    # The same answer whether the login exists or not.
    return render(request, "portal/passwort_vergessen.html", branding, sent=True, login="", error=None)


@router.get("/{account_id}/passwort-neu")
async def reset_form(request: Request, account_id: str, t: str = "") -> Response:
    try:
        branding = _branding_or_404(request, account_id)
    except _RefusedError as refused:
        return refused.response
    try:
        await asyncio.to_thread(_portal(request).service.check_password_reset, account_id, t)
    except PortalError as exc:
        return _reset_link_problem(request, branding, exc)
    return render(request, "portal/passwort_neu.html", branding, token=t, error=None)


def _reset_link_problem(request: Request, branding: Branding, exc: PortalError) -> HTMLResponse:
    log.info("portal_web.reset_link_refused", reason=str(exc))
    return render(
        request,
        "portal/meldung.html",
        branding,
        status=exc.status,
        title="Link nicht mehr gültig",
        text=exc.german,
        support_id=None,
        action_url=f"{branding.base}/passwort-vergessen",
        action_label="Neuen Link anfordern",
    )


@router.post("/{account_id}/passwort-neu")
async def reset_submit(
    request: Request,
    account_id: str,
    t: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_repeat: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        web, branding = _checked_form(request, account_id, csrf_token)
    except _RefusedError as refused:
        return refused.response
    if password != password_repeat:
        return render(
            request,
            "portal/passwort_neu.html",
            branding,
            status=422,
            token=t,
            error="Die beiden Passwörter stimmen nicht überein.",
        )
    try:
        session = await asyncio.to_thread(web.service.reset_password, account_id, t, password)
    except AuthenticationError as exc:
        return _reset_link_problem(request, branding, exc)
    except PortalError as exc:
        return render(request, "portal/passwort_neu.html", branding, status=exc.status, token=t, error=exc.german)
    response = _redirect(f"{branding.base}/posteingang?hinweis=passwort-geaendert")
    _set_session(response, web, account_id, session)
    return response


@router.get("/{account_id}/posteingang")
async def inbox(request: Request, account_id: str, ordner: str | None = None, hinweis: str | None = None) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
        principal = await _principal(request, branding)
    except _RefusedError as refused:
        return refused.response
    service = _portal(request).service
    views = await asyncio.to_thread(service.list_documents, principal)
    folder = parse_folder(ordner)
    shown = [v for v in views if v.document.folder[: len(folder)] == folder]
    return render(
        request,
        "portal/posteingang.html",
        branding,
        principal=principal,
        documents=shown,
        folders=folder_entries(views),
        current_folder="/".join(folder),
        total=len(views),
        unread=sum(1 for v in views if not v.viewed),
        note=NOTES.get(hinweis or ""),
        quote=quote,
    )


@router.get("/{account_id}/dokumente/{document_id}")
async def document_page(request: Request, account_id: str, document_id: str) -> Response:
    try:
        branding = _branding_or_404(request, account_id)
        principal = await _principal(request, branding)
    except _RefusedError as refused:
        return refused.response
    service = _portal(request).service
    try:
        view = await asyncio.to_thread(service.document, principal, document_id)
    except PortalError as exc:
        return _error_page(request, branding, exc, principal)
    return render(request, "portal/dokument.html", branding, principal=principal, view=view)


@router.get("/{account_id}/dokumente/{document_id}/herunterladen")
async def download(request: Request, account_id: str, document_id: str) -> Response:
    """A fresh signed link for this recipient, followed at once (the link re-checks access and records the view)."""
    try:
        branding = _branding_or_404(request, account_id)
        principal = await _principal(request, branding)
    except _RefusedError as refused:
        return refused.response
    service = _portal(request).service
    try:
        link = await asyncio.to_thread(service.download_link, principal, document_id)
    except PortalError as exc:
        return _error_page(request, branding, exc, principal)
    return _redirect(link.path)


def invitation_mail(web: WebPortal, account_id: str, invitation: MailedInvitation, base_url: str) -> OutgoingMail:
    """The invitation e-mail a staff member sends from the gateway: the code and a link that fills it in."""
    branding = web.branding(account_id)
    base = (web.settings.public_base_url or base_url).rstrip("/")
    code = invitation.code or ""
    link = f"{base}{branding.base}/einladung?" + urlencode({"code": code})
    greeting = f"Guten Tag {invitation.contact_name}," if invitation.contact_name else "Guten Tag,"
    until = german_date(invitation.expires_at.date()) if invitation.expires_at else ""
    text = (
        f"{greeting}\n\n{branding.name} lädt Sie in das Kundenportal ein. Dort finden Sie die Dokumente, die wir "
        "Ihnen bereitstellen (zum Beispiel Abrechnungen und Einladungen), jederzeit online.\n\n"
        f"Über diesen Link richten Sie Ihren Zugang ein (Benutzername und Passwort wählen Sie selbst):\n\n{link}\n\n"
        f"Ihr Einladungscode: {code}\nEr gilt bis zum {until} und nur einmal.\n\n"
        "Wenn Sie diese E-Mail nicht erwartet haben, können Sie sie ignorieren.\n\n"
        f"Mit freundlichen Grüßen\n{branding.name}\n"
    )
    return OutgoingMail(
        invitation.email or "",
        invitation.contact_name,
        branding.name,
        f"Einladung in das Kundenportal von {branding.name}",
        text,
    )


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def html_refusal(request: Request, exc: PortalError, account_id: str | None) -> HTMLResponse:
    """A portal API refusal for a browser (e.g. an expired download link opened from the address bar)."""
    web = _portal(request)
    branding = web.branding(account_id) if account_id and _ACCOUNT_RE.match(account_id) else web.branding("")
    action_url = f"{branding.base}/posteingang" if account_id else None
    support = _support_id()
    log.info("portal_web.api_refused", support_id=support, status=exc.status, reason=str(exc), path=request.url.path)
    titles = {403: "Link nicht mehr gültig", 404: "Dokument nicht gefunden", 410: "Dokument zurückgezogen"}
    return render(
        request,
        "portal/meldung.html",
        branding,
        status=exc.status,
        title=titles.get(exc.status, "Das hat nicht geklappt"),
        text=exc.german,
        support_id=support,
        action_url=action_url,
        action_label="Zum Posteingang",
    )


def not_found_page(request: Request) -> HTMLResponse:
    parts = request.url.path.split("/")
    account_id = parts[2] if len(parts) > 2 and parts[1] == PREFIX.strip("/") else ""
    web = _portal(request)
    branding = web.branding(account_id) if account_id and _ACCOUNT_RE.match(account_id) else web.branding("")
    return message_page(
        request,
        branding,
        title="Seite nicht gefunden",
        text="Diese Adresse gibt es im Kundenportal nicht. Bitte prüfen Sie den Link.",
        status=404,
    )


def problem_page(request: Request, status: int, reason: str, exc: Exception | None = None) -> HTMLResponse:
    """A request the portal cannot answer (wrong method, incomplete form, unexpected error): German, support number."""
    parts = request.url.path.split("/")
    account_id = parts[2] if len(parts) > 2 and parts[1] == PREFIX.strip("/") else ""
    web = _portal(request)
    branding = web.branding(account_id) if account_id and _ACCOUNT_RE.match(account_id) else web.branding("")
    support = _support_id()
    if status >= 500:
        log.error("portal_web.unexpected_error", support_id=support, path=request.url.path, exc_info=exc)
        title, text = (
            "Ein Fehler ist aufgetreten",
            "Das hat leider nicht geklappt. Bitte versuchen Sie es in einigen Minuten erneut.",
        )
    else:
        log.info("portal_web.request_refused", support_id=support, status=status, reason=reason, path=request.url.path)
        title, text = (
            "Diese Anfrage ist so nicht möglich",
            "Bitte öffnen Sie die Seite noch einmal über den Posteingang oder den Link in Ihrer E-Mail.",
        )
    return message_page(request, branding, title=title, text=text, status=status, support_id=support)


def install_web(app: FastAPI, web: WebPortal) -> None:
    from fastapi.staticfiles import StaticFiles  # noqa: PLC0415 - only the web portal serves files

    app.state.web_portal = web
    app.include_router(router)
    app.mount(f"{PREFIX}-static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="portal-static")
