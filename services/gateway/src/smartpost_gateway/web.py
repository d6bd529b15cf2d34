"""Staff web pages (server-rendered, German, htmx for partial updates). Every action is forwarded to a service.

What the gateway itself decides is only who may do what: the logged-in user's account (every service call carries
it), the roles ``prepare`` / ``release`` and, where the account asks for it, the four-eyes release.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from smartpost_gateway import texts, views
from smartpost_gateway.adapters.http import Caller, ServiceError
from smartpost_gateway.adapters.sessions import SessionStore, ThrottleLimits
from smartpost_gateway.auth import StaffSession, authenticate, csrf_ok, session_for
from smartpost_gateway.settings import Role, Settings
from smartpost_shared.http import content_disposition
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from smartpost_gateway.adapters.assignment import AssignmentClient
    from smartpost_gateway.adapters.letters import LettersClient
    from smartpost_gateway.adapters.notifier import NotifierClient
    from smartpost_gateway.adapters.portal import PortalClient
    from smartpost_gateway.adapters.print_dispatch import PrintClient
    from smartpost_gateway.adapters.splitter import SplitterClient

log = get_logger(__name__)
SESSION_COOKIE = "smartpost_session"
CSRF_HEADER = "X-CSRF-Token"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals.update(
    texts=texts,
    views=views,
    euro=texts.euro,
    de_datetime=texts.de_datetime,
    rule_help={k: v[1] for k, v in texts.SPLIT_STRATEGIES.items()},
)

router = APIRouter()
Json = dict[str, Any]


# ------------------------------------------------------------------------------------------------- plumbing


class LoginRequiredError(Exception):
    """No valid session: browsers are sent to the login page."""


class ForbiddenError(Exception):
    """The user lacks the role for an action, or the CSRF token is missing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def current_session(request: Request) -> StaffSession:
    stored = sessions(request).find(request.cookies.get(SESSION_COOKIE))
    if stored is None:
        raise LoginRequiredError
    session = session_for(
        stored.login, stored.csrf_token, int(stored.issued_at.timestamp()), _settings(request).staff_users
    )
    if session is None:
        raise LoginRequiredError
    return session


SessionDep = Annotated[StaffSession, Depends(current_session)]


async def checked_session(request: Request, session: SessionDep) -> StaffSession:
    """The session of a state-changing request whose CSRF token (form field or header) matches."""
    token = request.headers.get(CSRF_HEADER)
    if not token:
        form = await request.form()
        value = form.get("csrf_token")
        token = value if isinstance(value, str) else None
    if not csrf_ok(session, token):
        raise ForbiddenError("Sicherheitstoken fehlt oder ist abgelaufen. Bitte die Seite neu laden.")
    return session


PostSessionDep = Annotated[StaffSession, Depends(checked_session)]


def require(session: StaffSession, role: Role) -> None:
    if not session.can(role):
        label = "Vorbereiten" if role == Role.PREPARE else "Freigeben"
        raise ForbiddenError(f"Ihnen fehlt die Rolle „{label}“ für diese Aktion.")


def caller(session: StaffSession) -> Caller:
    return Caller(account_id=session.account_id, actor=session.login, roles=frozenset(session.roles))


def letters(request: Request) -> LettersClient:
    return cast("LettersClient", request.app.state.letters)


def assignment(request: Request) -> AssignmentClient:
    return cast("AssignmentClient", request.app.state.assignment)


def portal(request: Request) -> PortalClient:
    return cast("PortalClient", request.app.state.portal)


def printing(request: Request) -> PrintClient:
    return cast("PrintClient", request.app.state.print)


def splitter(request: Request) -> SplitterClient:
    return cast("SplitterClient", request.app.state.splitter)


def notifier(request: Request) -> NotifierClient:
    client: NotifierClient = request.app.state.notifier
    return client


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    session = context.get("session")
    settings = _settings(request)
    base = {
        "request": request,
        "session": session,
        "csrf_token": session.csrf_token if isinstance(session, StaffSession) else "",
        "account": settings.account(session.account_id) if isinstance(session, StaffSession) else None,
        "Role": Role,
    }
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def redirect(request: Request, url: str) -> Response:
    """A redirect after a successful POST; htmx requests get ``HX-Redirect`` so the whole page changes."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_fragment(request: Request, error: texts.UiError, status_code: int = 422) -> HTMLResponse:
    return render(request, "_error.html", {"error": error}, status_code=status_code)


# ------------------------------------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", {"error": None, "login": ""})


def _cross_site(request: Request) -> bool:
    """A browser's request from another site: ``Sec-Fetch-Site: cross-site`` or an ``Origin`` of another host."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        # Sent by every current browser and not changed by the referrer policy: only the own page may post.
        return fetch_site not in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not sent by browsers for same-origin form posts in every case; scripts send none
    return urlsplit(origin).netloc.casefold() != request.headers.get("host", "").casefold()


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, login: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    settings = _settings(request)
    if _cross_site(request):
        # Login CSRF: another site must not log a staff member into someone else's account (whose uploads would
        # then land there). The login form has no session to bind a token to, so the browser's Origin decides.
        log.warning("gateway.login_cross_site", origin=request.headers.get("origin", "")[:200])
        error = texts.UiError("Die Anmeldung ist nur über die Anmeldeseite von SmartPost möglich.")
        return render(request, "login.html", {"error": error, "login": ""}, status_code=403)
    store = sessions(request)
    key = login.strip().casefold()[:320]
    address = request.client.host if request.client else "unknown"
    limits = ThrottleLimits(
        per_login=settings.login_max_failures_per_login,
        per_address=settings.login_max_failures_per_address,
        window=timedelta(seconds=settings.login_throttle_seconds),
    )
    attempt = await asyncio.to_thread(store.reserve_attempt, key, address, limits)
    if attempt is None:
        log.warning("gateway.login_throttled", address=address)
        minutes = max(1, settings.login_throttle_seconds // 60)
        error = texts.UiError(
            f"Zu viele fehlgeschlagene Anmeldeversuche. Bitte versuchen Sie es in {minutes} Minuten erneut."
        )
        return render(request, "login.html", {"error": error, "login": login}, status_code=429)
    # scrypt takes ~50 ms of CPU: off the event loop, so one slow login does not stall every other request.
    session = await asyncio.to_thread(authenticate, settings.staff_users, login, password)
    await asyncio.to_thread(store.settle, attempt, succeeded=session is not None, login=key)
    if session is None:
        error = texts.UiError("Anmeldung fehlgeschlagen: E-Mail-Adresse oder Passwort ist falsch.")
        return render(request, "login.html", {"error": error, "login": login}, status_code=401)
    ttl = timedelta(seconds=settings.session_max_age_seconds)
    token = await asyncio.to_thread(store.open, session.login, session.csrf_token, ttl)
    response = RedirectResponse("/serienbriefe", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.post("/logout")
async def logout(request: Request, _session: PostSessionDep) -> Response:
    # Ends the session server-side: the old cookie is worthless at once, also if someone copied it.
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await asyncio.to_thread(sessions(request).end, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/serienbriefe", status_code=303)


# ------------------------------------------------------------------------------------------------- overview


@router.get("/serienbriefe", response_class=HTMLResponse)
async def overview(request: Request, session: SessionDep) -> HTMLResponse:
    who = caller(session)
    error = None
    rows: list[Json] = []
    stuck: list[Json] = []
    try:
        rows = await letters(request).list_letters(who)
        stuck = await letters(request).stuck_letters(who)
    except ServiceError as exc:
        error = texts.translate(exc)
    master = await views.load_master_data(assignment(request), who)
    context = {"session": session, "letters": rows, "stuck": stuck, "master": master, "error": error}
    return render(request, "overview.html", context)


@router.post("/serienbriefe/{letter_id}/erneut-anstossen", response_class=HTMLResponse)
async def nudge(request: Request, session: PostSessionDep, letter_id: str) -> Response:
    """A letter stuck waiting for another service: send the open request again (idempotently)."""
    require(session, Role.PREPARE)
    who = caller(session)
    try:
        letter = await letters(request).resend(who, letter_id)
        if letter.get("status") == "assigning":
            await assignment(request).rematch(who, letter_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "dokumente", error=texts.translate(exc), status_code=422)
    return redirect(request, "/serienbriefe")


# ------------------------------------------------------------------------------------------------- new letter


async def _new_letter_context(request: Request, session: StaffSession) -> dict[str, Any]:
    who = caller(session)
    document_types: list[Json] = []
    properties: list[Json] = []
    problems: list[texts.UiError] = []
    try:
        document_types = await letters(request).document_types(who)
    except ServiceError as exc:
        problems.append(texts.translate(exc))
    try:
        properties = await assignment(request).properties(who)
    except ServiceError as exc:
        problems.append(texts.translate(exc))
    return {"session": session, "document_types": document_types, "properties": properties, "problems": problems}


@router.get("/serienbriefe/neu", response_class=HTMLResponse)
async def new_letter_page(request: Request, session: SessionDep) -> HTMLResponse:
    require(session, Role.PREPARE)
    context = await _new_letter_context(request, session)
    return render(request, "new_letter.html", {**context, "form": {"groups": ["owners"]}, "error": None})


@router.post("/serienbriefe/neu", response_class=HTMLResponse)
async def create_letter(  # noqa: PLR0913, PLR0917 - the form's fields
    request: Request,
    session: PostSessionDep,
    title: Annotated[str, Form()] = "",
    document_type_id: Annotated[str, Form()] = "",
    new_document_type: Annotated[str, Form()] = "",
    new_document_type_parent: Annotated[str, Form()] = "",
    groups: Annotated[list[str] | None, Form()] = None,
    custom_group: Annotated[str, Form()] = "",
    property_id: Annotated[str, Form()] = "",
    cross_property: Annotated[str, Form()] = "",
    letter_date: Annotated[str, Form()] = "",
    period_start: Annotated[str, Form()] = "",
    period_end: Annotated[str, Form()] = "",
    form_id: Annotated[str, Form()] = "",
) -> Response:
    require(session, Role.PREPARE)
    who = caller(session)
    recipient_groups = [g for g in (groups or []) if g] + ([custom_group.strip()] if custom_group.strip() else [])
    cross = bool(cross_property)
    form = {
        "title": title,
        "document_type_id": document_type_id,
        "groups": recipient_groups,
        "property_id": property_id,
        "cross_property": cross,
        "letter_date": letter_date,
        "period_start": period_start,
        "period_end": period_end,
        "new_document_type": new_document_type,
        "new_document_type_parent": new_document_type_parent,
    }
    client = letters(request)
    try:
        if new_document_type.strip():
            # Any level: a sub-type goes below the chosen document type (at most five levels, the service checks).
            tree = await client.add_document_type(
                who, new_document_type.strip(), parent_id=new_document_type_parent or None
            )
            document_type_id = str(tree.get("created_id") or "")
            # Created now: if the letter itself is refused, the form offers the new type as selected.
            form["document_type_id"] = document_type_id
            form["new_document_type"] = ""
        payload: Json = {
            "title": title.strip(),
            "document_type_id": document_type_id,
            "recipient_groups": recipient_groups,
            "scope": "cross_property" if cross else "property",
            "property_id": None if cross else (property_id or None),
        }
        if letter_date:
            payload["letter_date"] = letter_date
        if period_start or period_end:
            # Both or neither: the letters service refuses half a period with a message (translated below).
            payload["period_start"] = period_start or None
            payload["period_end"] = period_end or None
        letter = await client.create_letter(who, payload, command_id=form_id or None)
    except ServiceError as exc:
        context = await _new_letter_context(request, session)
        return render(
            request, "new_letter.html", {**context, "form": form, "error": texts.translate(exc)}, status_code=422
        )
    return redirect(request, f"/serienbriefe/{letter['letter_id']}/dokumente")


# ------------------------------------------------------------------------------------------------- one letter


TABS = ["dokumente", "pruefung", "einzelbriefe", "versand", "verlauf"]


def default_tab(letter: Json) -> str:
    status = letter["status"]
    if status in {"draft", "splitting", "assigning"}:
        return "dokumente"
    if status in {"in_review", "reviewed"}:
        return "pruefung"
    return "einzelbriefe"


async def _letter_page(
    request: Request,
    session: StaffSession,
    letter_id: str,
    tab: str,
    *,
    error: texts.UiError | None = None,
    status_code: int = 200,
    extra: dict[str, Any] | None = None,
) -> HTMLResponse:
    who = caller(session)
    page: Json | None = None
    query = views.review_query(request.query_params)
    try:
        if tab == "pruefung":
            # The review list is paged: a 4,000-letter serial letter is never loaded (or rendered) at once.
            letter = await letters(request).get_letter(who, letter_id, with_parts=False)
            page = await letters(request).parts_page(
                who,
                letter_id,
                part_filter=query.part_filter,
                property_id=query.property_id,
                offset=query.offset,
                limit=views.REVIEW_PAGE_SIZE,
            )
        else:
            letter = await letters(request).get_letter(who, letter_id)
    except ServiceError as exc:
        return render(
            request,
            "error_page.html",
            {"session": session, "error": texts.translate(exc)},
            status_code=exc.status if exc.status in {404, 503} else 502,
        )
    shown = (
        {**letter, "documents": [{**d, "parts": page["parts"]} for d in letter["documents"][:1]]} if page else letter
    )
    master = await views.load_master_data(
        assignment(request),
        who,
        contact_ids=views.letter_contact_ids(shown),
        property_ids=views.letter_property_ids(shown) | views.page_property_ids(page),
    )
    context: dict[str, Any] = {
        "session": session,
        "letter": letter,
        "tab": tab,
        "master": master,
        "error": error,
        "parts": page["parts"] if page else views.all_parts(letter),
        "page": page,
        "review_query": query,
        "REVIEW_FILTERS": views.REVIEW_FILTERS,
        "BULK_LABELS": texts.BULK_ACTIONS,
        "letter_warnings": views.letter_warnings(letter),
        "four_eyes": _settings(request).account(session.account_id).four_eyes_release,
        "staff_name": views.staff_namer(_settings(request).staff_users),
    }
    if tab == "einzelbriefe" and letter.get("items"):
        try:
            context["deliveries"] = {d["item_id"]: d for d in await portal(request).deliveries(who, letter_id)}
        except ServiceError as exc:
            context["deliveries"] = {}
            context["deliveries_error"] = texts.translate(exc)
    if tab == "verlauf":
        try:
            context["audit"] = await letters(request).audit(who, letter_id)
        except ServiceError as exc:
            context["audit"] = []
            context["error"] = error or texts.translate(exc)
        await views.add_audit_master_data(master, assignment(request), who, context["audit"])
        context["audit_names"] = views.audit_names(master, context["parts"], _settings(request).staff_users)
    context.update(extra or {})
    return render(request, "letter.html", context, status_code=status_code)


@router.get("/serienbriefe/{letter_id}")
async def letter_home(request: Request, session: SessionDep, letter_id: str) -> Response:
    try:
        letter = await letters(request).get_letter(caller(session), letter_id, with_parts=False)
    except ServiceError as exc:
        return render(request, "error_page.html", {"session": session, "error": texts.translate(exc)}, 404)
    return RedirectResponse(f"/serienbriefe/{letter_id}/{default_tab(letter)}", status_code=303)


@router.get("/serienbriefe/{letter_id}/{tab}", response_class=HTMLResponse)
async def letter_tab(request: Request, session: SessionDep, letter_id: str, tab: str) -> HTMLResponse:
    if tab not in TABS:
        return render(
            request, "error_page.html", {"session": session, "error": texts.UiError("Seite nicht gefunden.")}, 404
        )
    return await _letter_page(request, session, letter_id, tab)


@router.get("/serienbriefe/{letter_id}/fortschritt/status", response_class=HTMLResponse)
async def progress(request: Request, session: SessionDep, letter_id: str) -> Response:
    """Polled by htmx while splitting and assigning; sends the browser on to the review when done."""
    try:
        letter = await letters(request).get_letter(caller(session), letter_id, with_parts=False)
    except ServiceError as exc:
        return error_fragment(request, texts.translate(exc), status_code=200)
    if letter["status"] in {"in_review", "reviewed"}:
        return Response(status_code=200, headers={"HX-Redirect": f"/serienbriefe/{letter_id}/pruefung"})
    if letter["status"] == "draft" and any(d["status"] == "failed" for d in letter["documents"]):
        return Response(status_code=200, headers={"HX-Redirect": f"/serienbriefe/{letter_id}/dokumente"})
    stuck = bool(letter.get("publish_problem"))
    if not stuck and letter["status"] == "assigning":
        try:
            status = await assignment(request).outbox_status(caller(session))
            stuck = bool(status.get("stuck")) and status.get("letter_id") == letter_id
        except ServiceError:
            stuck = False  # the assignment service being down is not this letter's error; polling goes on
    return render(request, "_progress.html", {"session": session, "letter": letter, "stuck": stuck})


# ------------------------------------------------------------------------------------------------- documents


def _rule_from_form(form: Any) -> Json | None:
    strategy = str(form.get("strategy") or "address_block")
    rule: Json = {"strategy": strategy}
    if strategy == "first_page":
        if form.get("first_page_text"):
            rule["first_page_text"] = str(form["first_page_text"])
        if form.get("sample_page"):
            rule["sample_page"] = int(str(form["sample_page"]))
    elif strategy == "identifier" and form.get("identifier_pattern"):
        rule["identifier_pattern"] = str(form["identifier_pattern"])
    elif strategy == "keyword" and form.get("keyword"):
        rule["keyword"] = str(form["keyword"])
    elif strategy == "fixed_pages" and form.get("pages_per_letter"):
        rule["pages_per_letter"] = int(str(form["pages_per_letter"]))
    if form.get("address_form") in {"A", "B"}:
        rule["address_form"] = str(form["address_form"])
    return rule


@router.post("/serienbriefe/{letter_id}/dokumente", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: PostSessionDep,
    letter_id: str,
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    require(session, Role.PREPARE)
    who = caller(session)
    form = await request.form()
    try:
        rule = _rule_from_form(form)
    except ValueError:
        return await _letter_page(
            request,
            session,
            letter_id,
            "dokumente",
            status_code=422,
            error=texts.UiError("Die Angaben zur Trennregel sind ungültig."),
        )
    uploads = [f for f in (files or []) if f.filename]
    if not uploads:
        return await _letter_page(
            request,
            session,
            letter_id,
            "dokumente",
            status_code=422,
            error=texts.UiError("Bitte mindestens eine PDF-Datei auswählen."),
        )
    limit = _settings(request).max_upload_bytes
    client = letters(request)
    errors: list[str] = []
    proposals: list[str] = []
    for upload_file in uploads:
        name = upload_file.filename or "dokument.pdf"
        content = await upload_file.read(limit + 1)
        if len(content) > limit:
            errors.append(f"„{name}“: Die Datei ist zu groß (höchstens {limit // (1024 * 1024)} MB).")
            continue
        file_rule = rule
        if rule is not None and rule["strategy"] == "auto":
            file_rule, explanation = await _proposed_rule(request, who, content, rule)
            proposals.append(f"„{name}“: {explanation}")
        try:
            # Every file goes up as a document to be split; staff mark attachments afterwards.
            await client.upload_document(
                who,
                letter_id,
                filename=name,
                content=content,
                role="split",
                rule=file_rule,
                command_id=str(uuid.uuid4()),
            )
        except ServiceError as exc:
            ui = texts.translate(exc)
            # The letters service's upload checks already name the file.
            errors.append(ui.message if exc.code == "upload_rejected" else f"„{name}“: {ui.message}")
    if errors:
        error = texts.UiError(
            " ".join(errors), "Die übrigen Dateien wurden hochgeladen." if len(errors) < len(uploads) else ""
        )
        return await _letter_page(
            request, session, letter_id, "dokumente", error=error, status_code=422, extra={"proposals": proposals}
        )
    if proposals:
        # The proposal and its reasons are shown once, right after the upload (they are not stored).
        return await _letter_page(request, session, letter_id, "dokumente", extra={"proposals": proposals})
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


async def _proposed_rule(request: Request, who: Caller, content: bytes, asked: Json) -> tuple[Json, str]:
    """The splitter's most consistent rule for this PDF and why (German); Anschriftfeld if no proposal is possible."""
    fallback: Json = {
        "strategy": "address_block",
        **({"address_form": asked["address_form"]} if "address_form" in asked else {}),
    }
    try:
        answer = await splitter(request).propose_split(who, content)
    except ServiceError as exc:
        log.warning("gateway.split_proposal_failed", status=exc.status, detail=exc.detail[:200])
        return fallback, (
            "Kein Vorschlag möglich (die Datei ließ sich nicht probeweise trennen); es gilt „Anschriftfeld“. "
            "Bitte die Trennregel prüfen."
        )
    proposal = answer.get("proposal")
    if not proposal:
        return fallback, "Keine Regel ergab Briefe; es gilt „Anschriftfeld“. Bitte die Trennregel prüfen."
    return dict(proposal["rule"]), (
        str(answer.get("explanation") or "") + " Übernommen – ändern unter „Trennregel ändern“."
    )


@router.post("/serienbriefe/{letter_id}/dokumente/reihenfolge", response_class=HTMLResponse)
async def reorder(
    request: Request, session: PostSessionDep, letter_id: str, order: Annotated[str, Form()] = ""
) -> Response:
    require(session, Role.PREPARE)
    ids = [i for i in order.split(",") if i]
    try:
        await letters(request).reorder_documents(caller(session), letter_id, ids)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "dokumente", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


@router.post("/serienbriefe/{letter_id}/dokumente/{document_id}/regel", response_class=HTMLResponse)
async def change_rule(request: Request, session: PostSessionDep, letter_id: str, document_id: str) -> Response:
    require(session, Role.PREPARE)
    form = await request.form()
    role = "attachment" if form.get("role") == "attachment" else "split"
    proposals: list[str] = []
    try:
        rule = _rule_from_form(form) if role == "split" else None
        if rule is not None and rule["strategy"] == "auto":
            content = await _document_bytes(request, caller(session), letter_id, document_id)
            rule, explanation = await _proposed_rule(request, caller(session), content, rule)
            proposals.append(explanation)
        await letters(request).change_document(caller(session), letter_id, document_id, role=role, rule=rule)
    except ValueError:
        return await _letter_page(
            request,
            session,
            letter_id,
            "dokumente",
            status_code=422,
            error=texts.UiError("Die Angaben zur Trennregel sind ungültig."),
        )
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "dokumente", error=texts.translate(exc), status_code=422)
    if proposals:
        return await _letter_page(request, session, letter_id, "dokumente", extra={"proposals": proposals})
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


async def _document_bytes(request: Request, who: Caller, letter_id: str, document_id: str) -> bytes:
    """An uploaded document's PDF, read into memory up to the upload limit (for a proposal on an existing file)."""
    limit = _settings(request).max_upload_bytes
    _response, body = await letters(request).document_pdf(who, letter_id, document_id)
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/serienbriefe/{letter_id}/dokumente/{document_id}/entfernen", response_class=HTMLResponse)
async def remove_document(request: Request, session: PostSessionDep, letter_id: str, document_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).remove_document(caller(session), letter_id, document_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "dokumente", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


async def _stream(opened: Any, media_type: str, filename: str | None = None) -> StreamingResponse:
    response, body = opened
    headers = {"Cache-Control": "private, no-store"}
    if filename:
        headers["Content-Disposition"] = content_disposition("attachment", filename)
    return StreamingResponse(body, media_type=response.headers.get("content-type", media_type), headers=headers)


@router.get("/serienbriefe/{letter_id}/dokumente/{document_id}/pdf")
async def document_pdf(request: Request, session: SessionDep, letter_id: str, document_id: str) -> Response:
    try:
        opened = await letters(request).document_pdf(caller(session), letter_id, document_id)
    except ServiceError as exc:
        return render(request, "error_page.html", {"session": session, "error": texts.translate(exc)}, 404)
    return await _stream(opened, "application/pdf")


@router.post("/serienbriefe/{letter_id}/aufteilen", response_class=HTMLResponse)
async def start_split(request: Request, session: PostSessionDep, letter_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).start_split(caller(session), letter_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "dokumente", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


@router.post("/serienbriefe/{letter_id}/bearbeiten", response_class=HTMLResponse)
async def reopen(request: Request, session: PostSessionDep, letter_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).reopen(caller(session), letter_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/dokumente")


# ------------------------------------------------------------------------------------------------- review


@router.get("/serienbriefe/{letter_id}/teile/{part_id}/pdf")
async def part_pdf(request: Request, session: SessionDep, letter_id: str, part_id: str) -> Response:
    try:
        opened = await letters(request).part_pdf(caller(session), letter_id, part_id)
    except ServiceError as exc:
        return render(request, "error_page.html", {"session": session, "error": texts.translate(exc)}, 404)
    return await _stream(opened, "application/pdf", filename=f"einzelbrief-{part_id}.pdf")


@router.get("/serienbriefe/{letter_id}/teile/{part_id}/vorschau")
async def part_thumbnail(request: Request, session: SessionDep, letter_id: str, part_id: str) -> Response:
    try:
        opened = await letters(request).part_thumbnail(caller(session), letter_id, part_id)
    except ServiceError:
        # No thumbnail (deleted by a data erasure or the retention period, or not made): a German placeholder
        # image instead of a broken one; the part PDF may still be there.
        return Response(THUMBNAIL_PLACEHOLDER, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
    return await _stream(opened, "image/png")


THUMBNAIL_PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="210" height="297" viewBox="0 0 210 297" role="img" '
    'aria-label="Keine Vorschau verfügbar"><rect width="210" height="297" fill="#f3f4f6" stroke="#9ca3af"/>'
    '<text x="105" y="140" font-family="sans-serif" font-size="14" text-anchor="middle" fill="#4b5563">'
    "Keine Vorschau</text>"
    '<text x="105" y="162" font-family="sans-serif" font-size="14" text-anchor="middle" fill="#4b5563">'
    "verfügbar</text></svg>"
).encode()


@router.get("/serienbriefe/{letter_id}/teile/{part_id}/kontaktsuche", response_class=HTMLResponse)
async def contact_search(
    request: Request,
    session: SessionDep,
    letter_id: str,
    part_id: str,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Contacts to reassign a part to: the letter's property in property scope, the whole account otherwise."""
    who = caller(session)
    client = assignment(request)
    try:
        letter = await letters(request).get_letter(who, letter_id, with_parts=False)
        property_id = letter["property_id"] if letter["scope"] == "property" else None
        found = await client.search_contacts(who, q, property_id=property_id) if q.strip() else []
        # The search answers summaries; the contracts (property, unit) come with each contact's detail.
        detailed = await asyncio.gather(*(client.contact(who, str(c["contact_id"])) for c in found))
    except ServiceError as exc:
        return error_fragment(request, texts.translate(exc), status_code=200)
    return render(
        request,
        "_contact_results.html",
        {
            "session": session,
            "letter": letter,
            "part_id": part_id,
            "contacts": detailed,
            "query": q,
        },
    )


@router.get("/serienbriefe/{letter_id}/teile/{part_id}/vertraege", response_class=HTMLResponse)
async def contact_contracts(
    request: Request,
    session: SessionDep,
    letter_id: str,
    part_id: str,
    contact_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> HTMLResponse:
    """One contact's contracts to choose from (cross-property: the contact alone does not name property and unit)."""
    who = caller(session)
    try:
        letter = await letters(request).get_letter(who, letter_id)
        contact = await assignment(request).contact(who, contact_id)
    except ServiceError as exc:
        return error_fragment(request, texts.translate(exc), status_code=200)
    return render(
        request,
        "_contact_results.html",
        {"session": session, "letter": letter, "part_id": part_id, "contacts": [contact], "query": contact_id},
    )


@router.post("/serienbriefe/{letter_id}/teile/{part_id}/zuordnen", response_class=HTMLResponse)
async def reassign(
    request: Request,
    session: PostSessionDep,
    letter_id: str,
    part_id: str,
    contact_id: Annotated[str, Form()] = "",
    property_id: Annotated[str, Form()] = "",
    unit_id: Annotated[str, Form()] = "",
) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).reassign(
            caller(session),
            letter_id,
            part_id,
            contact_id=contact_id,
            property_id=property_id or None,
            unit_id=unit_id or None,
        )
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/pruefung#teil-{part_id}")


@router.post("/serienbriefe/{letter_id}/teile/{part_id}/verwerfen", response_class=HTMLResponse)
async def discard(request: Request, session: PostSessionDep, letter_id: str, part_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).discard(caller(session), letter_id, part_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/pruefung#teil-{part_id}")


@router.post("/serienbriefe/{letter_id}/teile/{part_id}/aufheben", response_class=HTMLResponse)
async def unassign(request: Request, session: PostSessionDep, letter_id: str, part_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).unassign(caller(session), letter_id, part_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/pruefung#teil-{part_id}")


BULK_ACTIONS = {
    "nicht-zuordenbare-verwerfen": "discard-unmatched",
    "sichere-vorschlaege-uebernehmen": "accept-safe",
    "liegenschaft-zurueckstellen": "defer-property",
}


@router.post("/serienbriefe/{letter_id}/pruefung/sammelaktion/{action}", response_class=HTMLResponse)
async def bulk_review(
    request: Request,
    session: PostSessionDep,
    letter_id: str,
    action: str,
    property_id: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    """Sammelaktionen der Prüfung: one command each, audited, undoable until the release."""
    require(session, Role.PREPARE)
    service_action = BULK_ACTIONS.get(action)
    if service_action is None:
        return render(
            request, "error_page.html", {"session": session, "error": texts.UiError("Seite nicht gefunden.")}, 404
        )
    payload = {"property_id": property_id} if service_action == "defer-property" else None
    try:
        await letters(request).bulk_review(caller(session), letter_id, service_action, payload)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, _review_back(letter_id, back))


@router.post("/serienbriefe/{letter_id}/pruefung/sammelaktion/{bulk_id}/rueckgaengig", response_class=HTMLResponse)
async def undo_bulk_review(
    request: Request, session: PostSessionDep, letter_id: str, bulk_id: str, back: Annotated[str, Form()] = ""
) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).undo_bulk_review(caller(session), letter_id, bulk_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, _review_back(letter_id, back))


def _review_back(letter_id: str, back: str) -> str:
    """Back to the review page the staff member came from (only this letter's review, never elsewhere)."""
    base = f"/serienbriefe/{letter_id}/pruefung"
    return back if back.startswith(base + "?") or back == base else base


@router.post("/serienbriefe/{letter_id}/endkontrolle", response_class=HTMLResponse)
async def confirm_review(request: Request, session: PostSessionDep, letter_id: str) -> Response:
    require(session, Role.PREPARE)
    try:
        await letters(request).confirm_review(caller(session), letter_id)
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/pruefung")


# ------------------------------------------------------------------------------------------------- release


@router.post("/serienbriefe/{letter_id}/freigeben", response_class=HTMLResponse)
async def release(
    request: Request, session: PostSessionDep, letter_id: str, notify_by_email: Annotated[str, Form()] = ""
) -> Response:
    """Release ("Im Kundenportal freigeben"); without four-eyes release an open review is confirmed first."""
    require(session, Role.RELEASE)
    who = caller(session)
    client = letters(request)
    four_eyes = _settings(request).account(session.account_id).four_eyes_release
    try:
        letter = await client.get_letter(who, letter_id, with_parts=False)
        if four_eyes:
            if letter["status"] == "reviewed" and letter.get("review_confirmed_by") == session.login:
                return await _letter_page(
                    request,
                    session,
                    letter_id,
                    "pruefung",
                    status_code=403,
                    error=texts.UiError(
                        "Vier-Augen-Prinzip: Die Freigabe muss eine andere Person vornehmen als die, die die "
                        "Endkontrolle abgeschlossen hat."
                    ),
                )
        elif letter["status"] == "in_review" and session.can(Role.PREPARE):
            letter = await client.confirm_review(who, letter_id, version=int(letter["version"]))
        await client.release(who, letter_id, notify_by_email=bool(notify_by_email), version=int(letter["version"]))
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "pruefung", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/einzelbriefe")


@router.post("/serienbriefe/{letter_id}/widerrufen", response_class=HTMLResponse)
async def revoke(
    request: Request,
    session: PostSessionDep,
    letter_id: str,
    unit_id: Annotated[str, Form()] = "",
    item_id: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    require(session, Role.RELEASE)
    if not reason.strip():
        return await _letter_page(
            request,
            session,
            letter_id,
            "einzelbriefe",
            status_code=422,
            error=texts.UiError("Bitte eine Begründung für den Widerruf angeben."),
        )
    try:
        await letters(request).revoke(
            caller(session),
            letter_id,
            unit_id=unit_id or None,
            item_ids=[item_id] if item_id and not unit_id else None,
            reason=reason.strip(),
        )
    except ServiceError as exc:
        return await _letter_page(
            request, session, letter_id, "einzelbriefe", error=texts.translate(exc), status_code=422
        )
    return redirect(request, f"/serienbriefe/{letter_id}/einzelbriefe")


@router.post("/kontakte/{contact_id}/einladung", response_class=HTMLResponse)
async def invite_to_portal(request: Request, session: PostSessionDep, contact_id: str) -> HTMLResponse:
    """Button 'Zum Portal einladen': the portal publisher mails the contact an invitation (htmx, answers in the row).

    Audited there (who, when, which contact); a contact who already has a login gets nothing (it is never reset).
    """
    if not (session.can(Role.PREPARE) or session.can(Role.RELEASE)):
        raise ForbiddenError("Ihnen fehlt die Rolle „Vorbereiten“ für diese Aktion.")
    who = caller(session)
    try:
        result = await portal(request).email_invitation(who, contact_id)
    except ServiceError as exc:
        error = (
            texts.UiError(
                "Die Einladung konnte gerade nicht per E-Mail versandt werden. Bitte später erneut versuchen."
            )
            if exc.code == "mail_not_sent"
            else texts.translate(exc)
        )
        if exc.code == "mail_not_sent":
            log.warning("gateway.invitation_mail_failed", support_id=error.support_id, contact_id=contact_id)
        return error_fragment(request, error, status_code=200)
    log.info("gateway.invitation", actor=session.login, contact_id=contact_id, status=result.get("status"))
    return render(request, "_invitation.html", {"session": session, "result": result})


@router.post("/serienbriefe/{letter_id}/loeschen", response_class=HTMLResponse)
async def delete(
    request: Request, session: PostSessionDep, letter_id: str, reason: Annotated[str, Form()] = ""
) -> Response:
    who = caller(session)
    try:
        letter = await letters(request).get_letter(who, letter_id, with_parts=False)
        # Deleting a released letter withdraws documents from recipients: that is a release decision.
        require(session, Role.RELEASE if letter.get("items") else Role.PREPARE)
        await letters(request).delete_letter(who, letter_id, reason=reason.strip() or "Serienbrief gelöscht")
    except ServiceError as exc:
        return await _letter_page(
            request, session, letter_id, default_tab_safe(), error=texts.translate(exc), status_code=422
        )
    return redirect(request, "/serienbriefe")


def default_tab_safe() -> str:
    return "verlauf"


# ------------------------------------------------------------------------------------------------- postal dispatch


class PastDispatchDateError(ValueError):
    """A dispatch date before today (German calendar)."""


PAST_DATE = texts.UiError("Das Versanddatum liegt in der Vergangenheit. Bitte heute oder ein späteres Datum wählen.")


def _print_options(form: Any) -> Json:
    options: Json = {
        "recipient_filter": str(form.get("recipient_filter") or "all"),
        "color": form.get("color") == "on",
        "duplex": form.get("duplex") == "on",
        "registered": str(form.get("registered") or "none"),
        "envelope": str(form.get("envelope") or "DL"),
        "one_envelope_per_contact": form.get("one_envelope_per_contact") == "on",
    }
    if form.get("not_viewed_working_days"):
        options["not_viewed_working_days"] = int(str(form["not_viewed_working_days"]))
    if form.get("dispatch_date"):
        dispatch_date = date.fromisoformat(str(form["dispatch_date"]))
        if dispatch_date < texts.today_berlin():
            raise PastDispatchDateError(dispatch_date.isoformat())
        options["dispatch_date"] = dispatch_date.isoformat()
    return options


@router.post("/serienbriefe/{letter_id}/versand/kosten", response_class=HTMLResponse)
async def print_estimate(request: Request, session: PostSessionDep, letter_id: str) -> HTMLResponse:
    """Live cost estimate (htmx, on every change of the form)."""
    form = await request.form()
    who = caller(session)
    try:
        options = _print_options(form)
        letter = await letters(request).get_letter(who, letter_id)
        active = [i for i in letter.get("items", []) if not i.get("revoked_at")]
        if not active:
            return error_fragment(request, texts.UiError("Keine freigegebenen Einzelbriefe zum Versand."), 200)
        estimate = await printing(request).estimate(who, active, options)
    except PastDispatchDateError:
        return error_fragment(request, PAST_DATE, status_code=200)
    except ValueError:
        return error_fragment(request, texts.UiError("Die Versandoptionen sind ungültig."), status_code=200)
    except ServiceError as exc:
        return error_fragment(request, texts.translate(exc), status_code=200)
    master = await views.load_master_data(
        assignment(request), who, contact_ids={str(m["contact_id"]) for m in estimate.get("excluded", [])}
    )
    return render(request, "_estimate.html", {"session": session, "estimate": estimate, "master": master})


@router.post("/serienbriefe/{letter_id}/versand", response_class=HTMLResponse)
async def order_print(request: Request, session: PostSessionDep, letter_id: str) -> Response:
    require(session, Role.RELEASE)
    form = await request.form()
    try:
        options = _print_options(form)
        await letters(request).order_print(caller(session), letter_id, options)
    except PastDispatchDateError:
        return await _letter_page(request, session, letter_id, "versand", status_code=422, error=PAST_DATE)
    except ValueError:
        return await _letter_page(
            request,
            session,
            letter_id,
            "versand",
            status_code=422,
            error=texts.UiError("Die Versandoptionen sind ungültig (Datum?)."),
        )
    except ServiceError as exc:
        return await _letter_page(request, session, letter_id, "versand", error=texts.translate(exc), status_code=422)
    return redirect(request, f"/serienbriefe/{letter_id}/versand")


# ------------------------------------------------------------------------------------------------- held e-mails

HELD_MAILS = "/betrieb/zurueckgehaltene-emails"
NOT_HELD = texts.UiError(
    "Diese E-Mail wird nicht mehr zurückgehalten (bereits gesendet oder von jemand anderem freigegeben)."
)


async def _held_mails_page(
    request: Request, session: StaffSession, *, error: texts.UiError | None = None, status_code: int = 200
) -> HTMLResponse:
    """The account's e-mails the notifier held back (replayed, too old events), with the recipient's name."""
    who = caller(session)
    mails: list[Json] = []
    try:
        mails = await notifier(request).stale_mails(who)
    except ServiceError as exc:
        error = error or texts.translate(exc)
    master = await views.load_master_data(
        assignment(request), who, contact_ids={str(m["contact_id"]) for m in mails if m.get("contact_id")}
    )
    context = {"session": session, "mails": mails, "master": master, "error": error}
    return render(request, "held_mails.html", context, status_code=status_code)


@router.get(HELD_MAILS, response_class=HTMLResponse)
async def held_mails(request: Request, session: SessionDep) -> HTMLResponse:
    """Zurückgehaltene E-Mails: mails of replayed events wait here until staff send them (role ``release``)."""
    require(session, Role.RELEASE)
    return await _held_mails_page(request, session)


@router.post(HELD_MAILS + "/{mail_id}/senden", response_class=HTMLResponse)
async def send_held_mail(request: Request, session: PostSessionDep, mail_id: str) -> Response:
    """Button "Jetzt senden": the notifier queues the held mail for its next send round (audited in its log)."""
    require(session, Role.RELEASE)
    try:
        await notifier(request).release_stale(caller(session), mail_id)
    except ServiceError as exc:
        error = NOT_HELD if exc.status == 409 else texts.translate(exc)
        if exc.status == 409:
            log.info("gateway.held_mail_not_held", support_id=error.support_id, mail_id=mail_id)
        return await _held_mails_page(request, session, error=error, status_code=422)
    log.info("gateway.held_mail_sent", actor=session.login, mail_id=mail_id)
    return redirect(request, HELD_MAILS + "?gesendet=1")
