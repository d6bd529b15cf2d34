"""Wiring: settings -> database, object store, broker, consumers, outbox relay, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from smartpost_portal_publisher.adapters.db import portal_metadata
from smartpost_portal_publisher.adapters.mail import MailSender, SmtpSender
from smartpost_portal_publisher.api import install_routes
from smartpost_portal_publisher.application import PortalConfig, PortalService, Publisher
from smartpost_portal_publisher.consumers import SERVICE, register_consumers
from smartpost_portal_publisher.domain import AccessWindow
from smartpost_portal_publisher.privacy import export_contact
from smartpost_portal_publisher.retention import PortalRetentionJob, create_retention_tables
from smartpost_portal_publisher.settings import Settings, get_settings
from smartpost_portal_publisher.web import PREFIX as PORTAL_WEB_PREFIX
from smartpost_portal_publisher.web import WebPortal, install_web
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.http import JSON_BODY_LIMIT, PORTAL_CSP, BodyLimitMiddleware, SecurityHeadersMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.lease import leadership, periodic_work, relay_work
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import EventPublisher, OutboxRelay, Startup, make_broker, start_broker
from smartpost_shared.metrics import OutboxSource, install_metrics
from smartpost_shared.privacy import create_privacy_tables, personal_data_router
from smartpost_shared.storage import MinioStore, StorageUnavailableError
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from faststream.kafka import KafkaBroker
    from sqlalchemy.engine import Engine

    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)


def portal_config(settings: Settings) -> PortalConfig:
    if settings.download_link_secret is not None:
        secret = settings.download_link_secret.get_secret_value().encode()
    else:
        log.warning("portal.download_link_secret_unset", effect="links are valid only in this process")
        secret = secrets.token_bytes(32)
    return PortalConfig(
        default_window=AccessWindow(settings.days_before_start, settings.days_after_end),
        timezone=ZoneInfo(settings.timezone),
        link_secret=secret,
        link_ttl=timedelta(seconds=settings.download_link_ttl_seconds),
        session_ttl=timedelta(hours=settings.session_ttl_hours),
        invitation_ttl=timedelta(days=settings.invitation_ttl_days),
        min_password_length=settings.min_password_length,
        max_login_failures=settings.max_login_failures,
        login_lockout=timedelta(minutes=settings.login_lockout_minutes),
        password_reset_ttl=timedelta(minutes=settings.password_reset_ttl_minutes),
    )


def _smtp_sender(settings: Settings) -> SmtpSender:
    return SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_sender_address,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


def create_app(  # noqa: PLR0915 - wiring
    settings: Settings | None = None, *, store: ObjectStore | None = None, mailer: MailSender | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, level=settings.log_level, json=settings.log_json)
    engine = make_engine(settings.resolved_database_url())
    startup = Startup(SERVICE)

    def create_all_tables() -> None:
        create_platform_tables(engine)
        create_masterdata_tables(engine)
        portal_metadata.create_all(engine)
        create_privacy_tables(engine)
        create_retention_tables(engine)

    object_store: ObjectStore = store or MinioStore(settings.storage)

    retention_job = PortalRetentionJob(engine, object_store, overrides=settings.retention_years)
    broker = make_broker(settings.kafka, service=SERVICE)
    config = portal_config(settings)
    publisher = Publisher(default_window=config.default_window, timezone=config.timezone)
    register_consumers(broker, engine, publisher, settings, store=object_store)
    relay = OutboxRelay(engine, EventPublisher(broker, store=object_store), poll_seconds=settings.relay_poll_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay_leader = leadership(engine, "portal-outbox-relay", settings.lease)
        relay_task: asyncio.Task[None] | None = None
        # Retention: one replica removes documents whose period ended (smartpost_portal_publisher.retention).
        retention_leader = leadership(engine, "portal-retention", settings.lease)
        retention_tasks: list[asyncio.Task[None]] = []

        async def connect() -> None:
            # Database or broker down at start-up: serve /healthz, report not-ready, connect when they are back.
            nonlocal relay_task
            await startup.step("database", lambda: asyncio.to_thread(create_all_tables))
            await start_broker(startup, broker)
            relay_task = asyncio.create_task(relay_leader.run(relay_work(relay)), name="portal-outbox-relay")
            if settings.retention_enabled:
                retention_tasks.append(
                    asyncio.create_task(
                        retention_leader.run(
                            periodic_work(
                                retention_job.run_once,
                                settings.retention_interval_seconds,
                                failed_event="portal.retention_failed",
                            )
                        ),
                        name="portal-retention",
                    )
                )

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        log.info("portal_publisher.started", port=settings.http_port)
        try:
            yield
        finally:
            await startup.stop()
            relay_leader.stop()
            retention_leader.stop()
            for task in retention_tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if relay_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await relay_task
            with contextlib.suppress(Exception):
                await broker.stop()
            engine.dispose()
            log.info("portal_publisher.stopped")
        del app

    app = FastAPI(title="SmartPost portal publisher", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    # Bodies are bounded while they stream, and only read once the caller is proven.
    # Recipients prove themselves by session (API) or session cookie + CSRF token (web portal), not caller claims.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=JSON_BODY_LIMIT, precheck=caller_precheck("/portal", PORTAL_WEB_PREFIX)
    )
    # Outermost: the recipients' pages run under a Content-Security-Policy without inline script or style.
    app.add_middleware(SecurityHeadersMiddleware, csp=PORTAL_CSP)
    # Every route but the probes (and signed webhooks) needs a verified caller (smartpost_shared.identity).
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity).share_replays(
        engine
    )
    app.state.broker = broker
    app.state.engine = engine
    # Tests that drive the app without its lifespan (no broker) create the tables themselves.
    app.state.create_tables = create_all_tables
    app.state.retention_job = retention_job
    app.state.relay = relay
    app.state.startup = startup
    app.state.store = object_store
    app.state.portal = PortalService(engine, object_store, config)
    app.state.public_base_url = settings.public_base_url
    install_routes(app)
    app.include_router(personal_data_router(SERVICE, engine, export_contact))
    install_web(
        app, WebPortal(app.state.portal, settings, mailer or _smtp_sender(settings), csrf_secret=config.link_secret)
    )

    _install_health_routes(app, engine, object_store, broker, relay)
    install_metrics(app, SERVICE, sources=[OutboxSource(engine, SERVICE)], kafka=settings.kafka)
    install_tracing(app, SERVICE, settings.tracing)
    return app


def _install_health_routes(
    app: FastAPI, engine: Engine, object_store: ObjectStore, broker: KafkaBroker, relay: OutboxRelay
) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {"startup": app.state.startup.check()}
        try:
            await asyncio.to_thread(_ping_db)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"error: {exc}"
        try:
            await asyncio.to_thread(object_store.exists, "healthz/probe")
            checks["storage"] = "ok"
        except StorageUnavailableError as exc:
            checks["storage"] = f"error: {exc}"
        checks["kafka"] = "ok" if await broker.ping(timeout=2.0) else "error: unreachable"
        checks["outbox"] = relay.health.check()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    def _ping_db() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
