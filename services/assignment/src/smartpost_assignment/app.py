"""Wiring: settings -> database, broker, consumers, outbox relay, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from smartpost_assignment.adapters.db import create_tables
from smartpost_assignment.api import build_router
from smartpost_assignment.application import AssignmentService
from smartpost_assignment.consumers import register_consumers
from smartpost_assignment.domain.matching import MatchPolicy
from smartpost_assignment.metrics import AssignmentSource
from smartpost_assignment.privacy import SERVICE, erasure_request_router, export_contact
from smartpost_assignment.settings import Settings
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.http import MULTIPART_OVERHEAD, BodyLimitMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.lease import leadership, relay_work
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import EventPublisher, OutboxRelay, Startup, make_broker, start_broker
from smartpost_shared.metrics import OutboxSource, ScrapeSource, install_metrics
from smartpost_shared.privacy import create_privacy_tables, personal_data_router
from smartpost_shared.storage import MinioStore, ObjectStore
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = get_logger(__name__)


def create_app(  # noqa: PLR0915 - the wiring is one readable list
    settings: Settings | None = None, *, store: ObjectStore | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    engine = make_engine(settings.resolved_database_url())
    startup = Startup(settings.service_name)

    def create_all_tables() -> None:
        create_platform_tables(engine)
        create_masterdata_tables(engine)
        create_tables(engine)
        create_privacy_tables(engine)

    service = AssignmentService(MatchPolicy(settings.auto_threshold, settings.auto_margin))
    # Object storage only for claim checks: big DocumentSplit in, big PagesAssigned out (smartpost_shared.messaging).
    # Without its secret the service still runs; a big event then waits in the outbox and /readyz names it.
    minio = MinioStore(settings.storage) if store is None and settings.storage.secret_key is not None else None
    store = store or minio
    if store is None:
        log.warning("assignment.claim_checks_disabled", reason="no object storage secret (SMARTPOST_S3_SECRET_KEY)")
    broker = make_broker(settings.kafka, service=settings.service_name)
    consumer = register_consumers(broker, engine, service, settings.kafka, store)
    relay = OutboxRelay(engine, EventPublisher(broker, store=store), poll_seconds=settings.outbox_poll_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        relay_leader = leadership(engine, "assignment-outbox-relay", settings.lease)
        relay_task: asyncio.Task[None] | None = None

        async def connect() -> None:
            # Database or broker down at start-up: serve /healthz, report not-ready, connect when they are back.
            nonlocal relay_task
            await startup.step("database", lambda: asyncio.to_thread(create_all_tables))
            if minio is not None:  # only claim checks need it: a storage outage must not hold the service back
                try:
                    await asyncio.to_thread(minio.ensure_bucket)
                except Exception:
                    log.warning("assignment.storage_unavailable", exc_info=True)
            await start_broker(startup, broker)
            relay_task = asyncio.create_task(relay_leader.run(relay_work(relay)), name="assignment-outbox-relay")

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        log.info("assignment.started", port=settings.http_port)
        try:
            yield
        finally:
            await startup.stop()
            relay_leader.stop()
            if relay_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await relay_task
            with contextlib.suppress(Exception):
                await broker.stop()
            engine.dispose()
            log.info("assignment.stopped")

    app = FastAPI(title="SmartPost assignment", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    # Bodies are bounded while they stream, and only read once the caller is proven.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_import_bytes + MULTIPART_OVERHEAD, precheck=caller_precheck()
    )
    # Every route but the probes (and signed webhooks) needs a verified caller (smartpost_shared.identity).
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity).share_replays(
        engine
    )
    app.state.engine = engine
    app.state.broker = broker
    app.state.consumer = consumer
    app.state.relay = relay
    app.state.service = service
    app.state.startup = startup
    app.include_router(build_router(engine, service, settings, broker, relay))
    app.include_router(erasure_request_router(engine))
    app.include_router(personal_data_router(SERVICE, engine, export_contact))
    sources: list[ScrapeSource] = [OutboxSource(engine, settings.service_name), AssignmentSource(engine)]
    install_metrics(app, settings.service_name, sources=sources, kafka=settings.kafka)
    install_tracing(app, settings.service_name, settings.tracing)
    return app
