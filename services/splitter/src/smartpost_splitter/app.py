"""Wiring: settings -> store, page scanner, use case, Kafka consumer; FastAPI app with health probes."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from smartpost_shared.http import BodyLimitMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.messaging import EventPublisher, Startup, make_broker, start_broker
from smartpost_shared.metrics import install_metrics
from smartpost_shared.storage import MinioStore
from smartpost_shared.tracing import install_tracing
from smartpost_splitter.adapters.sandbox import Limits, Sandbox
from smartpost_splitter.api import PROPOSAL_MAX_BYTES, router
from smartpost_splitter.application import SplitService, SplitterOptions, remove_orphaned_work
from smartpost_splitter.consumers import register_consumers
from smartpost_splitter.jobs import SplitJobs
from smartpost_splitter.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from faststream.kafka import KafkaBroker

log = get_logger(__name__)


def make_splitter_broker(settings: Settings) -> KafkaBroker:
    """The shared broker settings plus room for big DocumentSplit events.

    One part costs about 560 bytes of JSON, so a 10,000-page export (about 2,900 letters) gives a 1.6 MB event:
    above Kafka's default 1 MB request limit. The event is gzip-compressed (JSON of similar parts shrinks ~6x),
    and the producer's size check allows ``max_event_bytes`` before compression.
    """
    if settings.max_event_bytes <= 1_048_576:
        return make_broker(settings.kafka, service=settings.service_name)
    return make_broker(
        settings.kafka,
        service=settings.service_name,
        max_request_size=settings.max_event_bytes,
        compression_type="gzip",
    )


def make_sandbox(settings: Settings) -> Sandbox:
    budgets = settings.budgets()
    return Sandbox(settings.text_processes, Limits(memory_bytes=budgets.memory_bytes, cpu_seconds=budgets.cpu_seconds))


def create_app(settings: Settings | None = None) -> FastAPI:  # noqa: PLR0915 - wiring
    settings = settings or get_settings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    store = MinioStore(settings.storage)
    broker = make_splitter_broker(settings)
    sandbox = make_sandbox(settings)
    work_dir = Path(settings.work_dir) if settings.work_dir else None
    service = SplitService(
        store,
        sandbox,
        SplitterOptions(
            work_dir=work_dir,
            upload_threads=settings.upload_threads,
            thumbnail_width=settings.thumbnail_width,
            chunk_pages=settings.chunk_pages,
            evidence_patterns=settings.identifier_patterns,
            budgets=settings.budgets(),
        ),
    )
    publisher = EventPublisher(broker, store=store)  # big DocumentSplit events travel as a claim check
    jobs = SplitJobs(
        store,
        service,
        publisher.publish,
        concurrency=settings.concurrent_documents,
        max_attempts=settings.job_max_attempts,
    )
    register_consumers(broker, jobs, settings)

    startup = Startup(settings.service_name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        orphans = await asyncio.to_thread(remove_orphaned_work, work_dir)
        await asyncio.to_thread(sandbox.warm_up)

        async def connect() -> None:
            # Storage or broker down at start-up: serve /healthz, report not-ready, connect when they are back.
            await startup.step("storage", lambda: asyncio.to_thread(store.ensure_bucket))
            await start_broker(startup, broker)
            jobs.start()
            resumed = await jobs.resume()
            log.info("splitter.connected", resumed_jobs=resumed)

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        log.info("splitter.started", sandbox_processes=settings.text_processes, orphans_removed=orphans)
        try:
            yield
        finally:
            jobs.stopping = True
            await startup.stop()
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.to_thread(sandbox.close)
            await jobs.stop()

    app = FastAPI(title="SmartPost splitter", lifespan=lifespan)
    app.state.broker = broker
    app.state.settings = settings
    app.state.service = service
    app.state.jobs = jobs
    app.state.sandbox = sandbox
    # The proposal route needs a verified caller (smartpost_shared.identity); the probes do not.
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity)
    # The proposal upload: a declared oversize body is refused before a byte is read, and only for a proven caller.
    app.add_middleware(BodyLimitMiddleware, max_bytes=PROPOSAL_MAX_BYTES, precheck=caller_precheck())
    app.include_router(router)
    install_metrics(app, settings.service_name, kafka=settings.kafka)
    install_tracing(app, settings.service_name, settings.tracing)
    app.state.startup = startup

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems: dict[str, str] = {}
        if not startup.done:
            problems["startup"] = startup.check()
        try:
            await asyncio.wait_for(asyncio.to_thread(store.client.bucket_exists, store.bucket), timeout=3)
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure
            problems["storage"] = str(exc)[:200]
        try:
            if not await asyncio.wait_for(broker.ping(timeout=3), timeout=4):
                problems["kafka"] = "broker not reachable"
        except Exception as exc:  # noqa: BLE001
            problems["kafka"] = str(exc)[:200]
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
