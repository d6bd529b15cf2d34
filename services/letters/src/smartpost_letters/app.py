"""Wiring: settings -> event store, read model, object storage, Kafka broker, consumers, outbox relay, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from smartpost_letters.adapters.read_model import LetterSummaryProjector
from smartpost_letters.adapters.relay import NotificationLogRelay
from smartpost_letters.api import install_error_handlers, router
from smartpost_letters.application import (
    LettersApplication,
    LetterService,
    create_event_store_tables,
    event_store_env,
)
from smartpost_letters.consumers import InboundHandlers, subscribe_all
from smartpost_letters.metrics import LetterStateSource, RelayBacklogSource, StuckLetterSource
from smartpost_letters.privacy import SERVICE as PRIVACY_SERVICE
from smartpost_letters.privacy import LetterPrivacy, subscribe_erasures
from smartpost_letters.retention import LettersRetentionJob
from smartpost_letters.settings import Settings, get_settings
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.http import JSON_BODY_LIMIT, MULTIPART_OVERHEAD, BodyLimitMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.lease import leadership, periodic_work, relay_work
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.messaging import EventConsumer, EventPublisher, Startup, make_broker, start_broker
from smartpost_shared.metrics import ScrapeSource, install_metrics
from smartpost_shared.privacy import create_privacy_tables, personal_data_router
from smartpost_shared.storage import MinioStore, ObjectStore
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

log = get_logger(__name__)

PROJECTOR_POLL_SECONDS = 1.0


class BoundedProbe:
    """A blocking health check that answers within ``seconds`` and never runs twice at once.

    The event store's PostgreSQL driver retries a connection for about 50 s while the database is down: the probe
    used to hang that long (and hold one of the event loop's few executor threads each time it was asked).
    """

    def __init__(self, check: Callable[[], object], *, seconds: float) -> None:
        self._check = check
        self.seconds = seconds
        self._running: asyncio.Future[object] | None = None

    async def check(self) -> str:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self._check))
            # A check that ends after its probe gave up: its outcome is read here (no "never retrieved" warning).
            self._running.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._running), self.seconds)
        except TimeoutError:
            return f"error: no answer within {self.seconds:g} s"
        except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
            return f"error: {exc}"
        return "ok"


def create_app(  # noqa: C901, PLR0915 - the wiring is one readable list
    settings: Settings | None = None, *, store: ObjectStore | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    # Nothing here connects to PostgreSQL: tables are created by the background start-up (database may be down).
    event_app = LettersApplication(
        event_store_env(settings.resolved_event_store_url(), create_tables=False),
        snapshot_interval=settings.snapshot_interval,
        cached_letters=settings.cached_letters,
    )
    # Keys of the personal data in letter events (crypto-shredding) live in the event store's database.
    subject_keys = event_app.subject_keys
    if subject_keys is None:
        raise RuntimeError("the letters event store must be persistent (SQLite file or PostgreSQL)")
    engine = make_engine(settings.resolved_database_url())
    # SQLite is a local file (never "down"): its read-model tables exist from the start, also without the lifespan.
    projector = LetterSummaryProjector(event_app, engine, create_tables=engine.dialect.name != "postgresql")
    if engine.dialect.name != "postgresql":
        create_platform_tables(engine)
        create_privacy_tables(engine)
    if store is None:
        minio = MinioStore(settings.storage)
        store = minio
    else:
        minio = None
    broker = make_broker(settings.kafka, service=settings.service_name)
    publisher = EventPublisher(broker, store=store)
    tracking = event_app.factory.tracking_recorder()
    relay = NotificationLogRelay(
        event_app,
        publisher,
        tracking,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        fault=settings.fault_injection,
    )
    service = LetterService(event_app, four_eyes_accounts=frozenset(settings.four_eyes_accounts))
    consumer = EventConsumer(
        broker, service=settings.service_name, attempts=settings.kafka.handler_attempts, store=store
    )
    startup = Startup(settings.service_name)
    retention_job = LettersRetentionJob(engine, service, store, overrides=settings.retention_years)
    subscribe_all(consumer, InboundHandlers(service), settings.kafka, settings.consumer_group)
    privacy = LetterPrivacy(service, subject_keys, store)
    subscribe_erasures(consumer, engine, privacy, settings.kafka, settings.consumer_group)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def wake_relay() -> None:
            loop.call_soon_threadsafe(relay.wake)

        service.on_saved = wake_relay

        def create_tables() -> None:
            create_platform_tables(engine)
            create_privacy_tables(engine)
            subject_keys.create_tables()
            create_event_store_tables(event_app, tracking)
            projector.create_tables()

        async def connect() -> None:
            # Database, storage or broker down at start-up: serve /healthz, report not-ready, connect when back.
            await startup.step("database", lambda: asyncio.to_thread(create_tables))
            if minio is not None:
                await startup.step("storage", lambda: asyncio.to_thread(minio.ensure_bucket))
            await start_broker(startup, broker)

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        stopped = asyncio.Event()
        # One relay across all replicas: it runs where the lease is held (see smartpost_shared.lease).
        relay_leader = leadership(engine, "letters-outbox-relay", settings.lease)
        # The read model too: two projectors inserting the same letter would collide.
        projector_leader = leadership(engine, "letters-projector", settings.lease)
        # Retention: one replica removes the files of letters whose period ended (smartpost_letters.retention).
        retention_leader = leadership(engine, "letters-retention", settings.lease)
        tasks = [
            asyncio.create_task(relay_leader.run(relay_work(relay)), name="letters-outbox-relay"),
            asyncio.create_task(
                projector_leader.run(
                    periodic_work(projector.catch_up, PROJECTOR_POLL_SECONDS, failed_event="projector.failed")
                ),
                name="letters-projector",
            ),
        ]
        if settings.retention_enabled:
            work = periodic_work(
                retention_job.run_once, settings.retention_interval_seconds, failed_event="letters.retention_failed"
            )
            tasks.append(asyncio.create_task(retention_leader.run(work), name="letters-retention"))
        log.info("letters.started", port=settings.http_port, event_store=event_app.factory.__class__.__module__)
        try:
            yield
        finally:
            await startup.stop()
            relay_leader.stop()
            projector_leader.stop()
            retention_leader.stop()
            relay.stop()
            stopped.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
            with contextlib.suppress(Exception):
                await broker.stop()
            event_app.close()
            engine.dispose()
            app.state.stopped = True

    app = FastAPI(
        title="SmartPost letters",
        version="0.1.0",
        description="Serial letters (Serienbriefe): event-sourced life cycle from upload to release and print.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Bodies are bounded while they stream, and only read once the caller is proven.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        precheck=caller_precheck(),
        other_max_bytes=JSON_BODY_LIMIT,
    )
    # Every route but the probes (and signed webhooks) needs a verified caller (smartpost_shared.identity).
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity).share_replays(
        engine
    )
    app.state.service = service
    app.state.projector = projector
    app.state.store = store
    app.state.broker = broker
    app.state.relay = relay
    app.state.event_app = event_app
    app.state.engine = engine
    app.state.privacy = privacy
    app.state.consumer = consumer
    app.state.startup = startup
    app.state.retention_job = retention_job
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(personal_data_router(PRIVACY_SERVICE, engine, privacy.export))
    sources: list[ScrapeSource] = [
        LetterStateSource(engine),
        RelayBacklogSource(event_app, relay),
        StuckLetterSource(engine, service, settings.stuck_after_seconds),
    ]
    install_metrics(app, settings.service_name, sources=sources, kafka=settings.kafka)
    install_tracing(app, settings.service_name, settings.tracing)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    event_store_probe = BoundedProbe(event_app.recorder.max_notification_id, seconds=2.0)

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {"startup": startup.check()}
        checks["event_store"] = await event_store_probe.check()
        try:
            checks["kafka"] = "ok" if await request.app.state.broker.ping(timeout=2.0) else "unreachable"
        except Exception as exc:  # noqa: BLE001
            checks["kafka"] = f"error: {exc}"
        checks["outbox"] = relay.health.check()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app
