"""Wiring: settings, the service clients, routes, static files, health probes."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from smartpost_gateway import deadletters, privacy, texts, web
from smartpost_gateway.adapters.assignment import AssignmentClient
from smartpost_gateway.adapters.letters import LettersClient
from smartpost_gateway.adapters.notifier import NotifierClient
from smartpost_gateway.adapters.portal import PortalClient
from smartpost_gateway.adapters.print_dispatch import PrintClient
from smartpost_gateway.adapters.sessions import SessionStore
from smartpost_gateway.adapters.splitter import SplitterClient
from smartpost_gateway.settings import Settings, get_settings
from smartpost_shared.db import make_engine
from smartpost_shared.http import (
    FORM_BODY_LIMIT,
    MULTIPART_OVERHEAD,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
)
from smartpost_shared.identity import CallerTokenIssuer
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.metrics import install_metrics
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, MutableMapping

    import httpx

log = get_logger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(  # noqa: C901, PLR0915 - one closure per route and handler
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The gateway app; ``transport`` replaces the network for the service clients (unit tests only)."""
    settings = settings or get_settings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    timeout = settings.service_timeout_seconds
    # The gateway vouches for the logged-in staff user towards every service with its own signing key.
    issuer = CallerTokenIssuer.from_settings(settings.identity)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.letters = LettersClient(settings.letters_url, issuer=issuer, timeout=timeout, transport=transport)
        app.state.assignment = AssignmentClient(
            settings.assignment_url, issuer=issuer, timeout=timeout, transport=transport
        )
        app.state.portal = PortalClient(settings.portal_url, issuer=issuer, timeout=timeout, transport=transport)
        app.state.print = PrintClient(settings.print_url, issuer=issuer, timeout=timeout, transport=transport)
        app.state.splitter = SplitterClient(settings.splitter_url, issuer=issuer, timeout=timeout, transport=transport)
        app.state.notifier = NotifierClient(settings.notifier_url, issuer=issuer, timeout=timeout, transport=transport)
        if not settings.staff_users:
            log.warning("gateway.no_staff_users", hint="set SMARTPOST_GATEWAY_STAFF_USERS")
        log.info("gateway.started", letters=settings.letters_url, users=len(settings.staff_users))
        try:
            yield
        finally:
            clients = (
                app.state.letters,
                app.state.assignment,
                app.state.portal,
                app.state.print,
                app.state.splitter,
                app.state.notifier,
            )
            for client in clients:
                await client.aclose()
            for client in getattr(app.state, "privacy_clients", {}).values():
                await client.aclose()

    app = FastAPI(title="SmartPost Gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = SessionStore(make_engine(settings.resolved_database_url()))
    # Uploads are bounded while they stream and read only for a logged-in user (not for anyone who can connect).
    # Forms and JSON stay under 1 MB, so the login form (the one body read before a session exists) stays cheap.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        precheck=_session_precheck,
        other_max_bytes=FORM_BODY_LIMIT,
    )
    # Outermost: every response, also the body limit's refusals, carries the CSP and the other security headers.
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(web.router)
    app.include_router(deadletters.router)
    app.include_router(privacy.router)
    install_metrics(app, settings.service_name)
    install_tracing(app, settings.service_name, settings.tracing)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        if await web.letters(request).alive():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "letters service unreachable"}, status_code=503)

    @app.exception_handler(web.LoginRequiredError)
    async def login_required(request: Request, _exc: Exception) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(web.ForbiddenError)
    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, web.ForbiddenError)
        error = texts.UiError(exc.message)
        try:
            session = web.current_session(request)
        except web.LoginRequiredError:
            session = None
        template = "_error.html" if request.headers.get("HX-Request") else "error_page.html"
        return web.render(request, template, {"session": session, "error": error}, status_code=403)

    def german_error(request: Request, error: texts.UiError, status_code: int) -> Response:
        """A German page (browsers) or fragment (htmx) with the support number; never the technical detail."""
        try:
            session = web.current_session(request)
        except web.LoginRequiredError:
            session = None
        template = "_error.html" if request.headers.get("HX-Request") else "error_page.html"
        return web.render(request, template, {"session": session, "error": error}, status_code=status_code)

    def from_browser(request: Request) -> bool:
        return bool(request.headers.get("HX-Request")) or "text/html" in request.headers.get("accept", "")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Browsers get a German page for unknown addresses and wrong methods (htmx a fragment); API clients keep
        # FastAPI's JSON.
        if not from_browser(request):
            return await http_exception_handler(request, exc)
        if exc.status_code == 404:
            message = "Seite nicht gefunden."
        elif isinstance(exc.detail, str) and request.url.path.startswith("/admin/"):
            message = exc.detail  # the admin routes answer in German
        else:
            message = "Diese Anfrage ist so nicht möglich."
        error = texts.UiError(message)
        log.info("gateway.http_error", support_id=error.support_id, status=exc.status_code, detail=str(exc.detail))
        return german_error(request, error, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not from_browser(request):
            return await request_validation_exception_handler(request, exc)
        error = texts.UiError("Die Anfrage ist unvollständig oder ungültig. Bitte die Seite neu laden.")
        log.info(
            "gateway.invalid_request", support_id=error.support_id, path=request.url.path, errors=str(exc.errors())
        )
        return german_error(request, error, 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        error = texts.UiError(
            "Ein unerwarteter Fehler ist aufgetreten. Bitte später erneut versuchen; nennen Sie dem Support die "
            "Vorgangsnummer."
        )
        log.error("gateway.unexpected_error", support_id=error.support_id, path=request.url.path, exc_info=exc)
        if not from_browser(request):
            return JSONResponse({"detail": "internal error", "support_id": error.support_id}, status_code=500)
        return german_error(request, error, 500)

    return app


async def _session_precheck(scope: MutableMapping[str, Any]) -> tuple[int, str] | None:
    """Uploads (multipart) and JSON only from a logged-in user.

    Plain forms (``application/x-www-form-urlencoded``, at most 1 MB) pass: the login form has no session yet, and a
    form posted with an expired session is answered by its route with the way back to the login page.
    """
    headers = dict(scope.get("headers", []))
    if headers.get(b"content-type", b"").lower().startswith(b"application/x-www-form-urlencoded"):
        return None
    if headers.get(b"content-length") == b"0":
        return None  # nothing to read (a bare POST); its route checks the session
    cookies: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            with contextlib.suppress(CookieError):
                cookies.load(value.decode("latin-1"))
    morsel = cookies.get(web.SESSION_COOKIE)
    store: SessionStore = scope["app"].state.sessions
    if morsel is None or await asyncio.to_thread(store.find, morsel.value) is None:
        return 401, "Bitte melden Sie sich an."
    return None
