"""Wiring: settings -> database, storage, providers, broker, consumers, outbox relay and background loops."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from smartpost_print_dispatch.adapters.db import metadata
from smartpost_print_dispatch.adapters.providers.filedrop import FileDropProvider, FolderStore
from smartpost_print_dispatch.adapters.providers.http import HttpPrintProvider
from smartpost_print_dispatch.api import router
from smartpost_print_dispatch.application import Clock, PrintDispatch, _now
from smartpost_print_dispatch.consumers import register_consumers
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import EventPublisher, OutboxRelay, make_broker
from smartpost_shared.storage import MinioStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from smartpost_print_dispatch.adapters.providers.base import PrintProvider
    from smartpost_print_dispatch.settings import Settings

log = get_logger(__name__)


def build_providers(settings: Settings, store: MinioStore) -> dict[str, PrintProvider]:
    providers: dict[str, PrintProvider] = {}
    drop = settings.filedrop
    if drop.enabled:
        target: Any
        if drop.folder:
            target = FolderStore(drop.folder)
        elif drop.bucket:
            target = MinioStore(settings.storage, bucket=drop.bucket)
            target.ensure_bucket()
        else:
            target = store
        providers["filedrop"] = FileDropProvider(target, settings.profile(drop.profile), prefix=drop.prefix)
    for http in settings.http_providers:
        providers[http.name] = HttpPrintProvider(
            http.name,
            http.base_url,
            http.api_key.get_secret_value(),
            http.webhook_secret.get_secret_value(),
            settings.profile(http.profile),
            timeout_seconds=http.timeout_seconds,
        )
    return providers


async def _loop(name: str, step: Callable[[], Awaitable[int]], pause: float, stopped: asyncio.Event) -> None:
    """Run ``step`` until stopped; pause when it found no work; survive outages (logged, retried)."""
    while not stopped.is_set():
        try:
            worked = await step()
        except Exception:
            log.warning("loop.failed", loop=name, exc_info=True)
            worked = 0
        if not worked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), pause)


def create_app(settings: Settings, *, clock: Clock = _now) -> FastAPI:  # noqa: C901, PLR0915 - wiring
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
        engine = make_engine(settings.resolved_database_url())
        create_platform_tables(engine)
        create_masterdata_tables(engine)
        metadata.create_all(engine)
        store = MinioStore(settings.storage)
        await asyncio.to_thread(store.ensure_bucket)
        providers = await asyncio.to_thread(build_providers, settings, store)
        dispatch = PrintDispatch(engine, store, providers, settings, clock=clock)
        broker = make_broker(settings.kafka, service=settings.service_name)
        register_consumers(broker, dispatch, settings)
        app.state.broker = broker
        app.state.dispatch = dispatch
        app.state.store = store
        app.state.webhook_secrets = {p.name: p.webhook_secret.get_secret_value() for p in settings.http_providers}
        await broker.start()
        relay = OutboxRelay(engine, EventPublisher(broker, store=store))
        app.state.relay = relay
        stopped = asyncio.Event()

        async def dispatch_step() -> int:
            prepared = await asyncio.to_thread(dispatch.prepare_pending)
            return prepared + await dispatch.submit_ready()

        async def fallback_step() -> int:
            return await asyncio.to_thread(dispatch.run_fallback)

        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(_loop("dispatch", dispatch_step, settings.dispatch_poll_seconds, stopped)),
            asyncio.create_task(_loop("fallback", fallback_step, settings.fallback_poll_seconds, stopped)),
            asyncio.create_task(_loop("status", dispatch.poll_statuses, settings.status_poll_seconds, stopped)),
        ]
        log.info("print_dispatch.started", providers=sorted(providers))
        try:
            yield
        finally:
            stopped.set()
            relay.stop()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 10)
            await broker.stop()
            for provider in providers.values():
                await provider.close()
            engine.dispose()

    app = FastAPI(title="SmartPost print dispatch", lifespan=lifespan)
    app.include_router(router)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks: dict[str, bool] = {}
        dispatch: PrintDispatch = app.state.dispatch

        def database() -> bool:
            with dispatch.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True

        def storage() -> bool:
            return bool(app.state.store.client.bucket_exists(app.state.store.bucket))

        for name, check in (("database", database), ("storage", storage)):
            try:
                checks[name] = await asyncio.to_thread(check)
            except Exception:  # noqa: BLE001 - readiness reports, it does not raise
                checks[name] = False
        try:
            checks["broker"] = bool(await app.state.broker.ping(timeout=2.0))
        except Exception:  # noqa: BLE001
            checks["broker"] = False
        for name, provider in dispatch.providers.items():
            checks[f"provider:{name}"] = await provider.ready()
        relay = getattr(app.state, "relay", None)
        checks["outbox"] = relay is None or not relay.health.stuck
        # Providers being down does not make this service unready: submissions wait and retry.
        ready = checks["database"] and checks["storage"] and checks["broker"] and checks["outbox"]
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app
