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
from smartpost_assignment.settings import Settings
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import EventPublisher, OutboxRelay, make_broker
from smartpost_shared.storage import MinioStore, ObjectStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = get_logger(__name__)


def create_app(settings: Settings | None = None, *, store: ObjectStore | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    engine = make_engine(settings.resolved_database_url())
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    create_tables(engine)
    service = AssignmentService(MatchPolicy(settings.auto_threshold, settings.auto_margin))
    # Object storage only for claim checks: big DocumentSplit in, big PagesAssigned out (smartpost_shared.messaging).
    minio = MinioStore(settings.storage) if store is None else None
    store = store or minio
    broker = make_broker(settings.kafka, service=settings.service_name)
    consumer = register_consumers(broker, engine, service, settings.kafka, store)
    relay = OutboxRelay(engine, EventPublisher(broker, store=store), poll_seconds=settings.outbox_poll_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if minio is not None:
            try:
                await asyncio.to_thread(minio.ensure_bucket)
            except Exception:
                log.warning("assignment.storage_unavailable", exc_info=True)
        await broker.start()
        relay_task = asyncio.create_task(relay.run(), name="assignment-outbox-relay")
        log.info("assignment.started", port=settings.http_port)
        try:
            yield
        finally:
            relay.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await broker.stop()
            engine.dispose()
            log.info("assignment.stopped")

    app = FastAPI(title="SmartPost assignment", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.broker = broker
    app.state.consumer = consumer
    app.state.relay = relay
    app.state.service = service
    app.include_router(build_router(engine, service, settings, broker, relay))
    return app
