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
from smartpost_print_dispatch.metrics import print_sources
from smartpost_print_dispatch.privacy import SERVICE, export_contact
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.http import JSON_BODY_LIMIT, BodyLimitMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.lease import leadership, relay_work
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import EventPublisher, OutboxRelay, Startup, make_broker, start_broker
from smartpost_shared.metrics import install_metrics
from smartpost_shared.privacy import create_privacy_tables, personal_data_router
from smartpost_shared.seen_once import ReplayCache, SharedReplayCache
from smartpost_shared.storage import MinioStore
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from pydantic import SecretStr

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
            _secret(http.api_key),
            _secret(http.webhook_secret),
            settings.profile(http.profile),
            timeout_seconds=http.timeout_seconds,
            honours_idempotency=http.honours_idempotency,
        )
    return providers


def _secret(value: SecretStr | None) -> str:
    # Settings refuse to load a provider without its secrets; this only narrows the type.
    assert value is not None
    return value.get_secret_value()


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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:  # noqa: PLR0915 - wiring
        configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
        engine = make_engine(settings.resolved_database_url())
        # Used caller tokens and webhook signatures are remembered in the database, shared by every replica.
        app.state.caller_verifier.share_replays(engine)
        app.state.webhook_replays = SharedReplayCache(engine)
        store = MinioStore(settings.storage)
        providers: dict[str, PrintProvider] = {}
        dispatch = PrintDispatch(engine, store, providers, settings, clock=clock)
        broker = make_broker(settings.kafka, service=settings.service_name)
        register_consumers(broker, dispatch, settings)
        app.state.broker = broker
        app.state.dispatch = dispatch
        app.state.store = store
        app.state.webhook_secrets = {p.name: _secret(p.webhook_secret) for p in settings.http_providers}
        relay = OutboxRelay(engine, EventPublisher(broker, store=store))
        app.state.relay = relay
        stopped = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        def create_all_tables() -> None:
            create_platform_tables(engine)
            create_masterdata_tables(engine)
            metadata.create_all(engine)
            create_privacy_tables(engine)

        async def dispatch_step() -> int:
            # Orders that waited for master data are planned as soon as it arrived (cheap when there are none).
            await asyncio.to_thread(dispatch.run_fallback)
            prepared = await asyncio.to_thread(dispatch.prepare_pending)
            return prepared + await dispatch.submit_ready()

        async def fallback_step() -> int:
            return await asyncio.to_thread(dispatch.run_fallback)

        async def single_owner(lease_stop: asyncio.Event) -> None:
            """Only in the replica holding the lease: print files, submission, digital-first fallback, tracking."""
            await asyncio.gather(
                _loop("dispatch", dispatch_step, settings.dispatch_poll_seconds, lease_stop),
                _loop("fallback", fallback_step, settings.fallback_poll_seconds, lease_stop),
                _loop("status", dispatch.poll_statuses, settings.status_poll_seconds, lease_stop),
            )

        work_leader = leadership(engine, "print-dispatch-worker", settings.lease)
        relay_leader = leadership(engine, "print-dispatch-outbox-relay", settings.lease)

        async def connect() -> None:
            # Database, storage or broker down at start-up: serve /healthz, report not-ready, connect when back.
            await startup.step("database", lambda: asyncio.to_thread(create_all_tables))
            await startup.step("storage", lambda: asyncio.to_thread(store.ensure_bucket))
            providers.update(await asyncio.to_thread(build_providers, settings, store))
            await start_broker(startup, broker)
            tasks.extend(
                [
                    asyncio.create_task(relay_leader.run(relay_work(relay)), name="outbox-relay"),
                    asyncio.create_task(work_leader.run(single_owner), name="dispatch"),
                ]
            )
            log.info("print_dispatch.connected", providers=sorted(providers))

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        log.info("print_dispatch.started")
        try:
            yield
        finally:
            await startup.stop()
            stopped.set()
            work_leader.stop()
            relay_leader.stop()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 25)
            with contextlib.suppress(Exception):
                await broker.stop()
            for provider in providers.values():
                await provider.close()
            engine.dispose()

    startup = Startup(settings.service_name)
    app = FastAPI(title="SmartPost print dispatch", lifespan=lifespan)
    # Bodies are bounded while they stream, and only read once the caller is proven.
    app.add_middleware(BodyLimitMiddleware, max_bytes=JSON_BODY_LIMIT, precheck=caller_precheck("/webhooks"))
    # Every route but the probes (and signed webhooks) needs a verified caller (smartpost_shared.identity).
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity)
    # Provider webhooks carry a signed timestamp (5 minutes); a signature seen before is a replay (per process until
    # the lifespan connects the database, then shared by every replica).
    app.state.webhook_replays = ReplayCache()
    app.state.startup = startup
    app.include_router(router)
    app.include_router(personal_data_router(SERVICE, lambda request: request.app.state.dispatch.engine, export_contact))
    install_metrics(app, settings.service_name, sources=print_sources(app), kafka=settings.kafka)
    install_tracing(app, settings.service_name, settings.tracing)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks: dict[str, bool] = {"startup": startup.done}
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
        ready = checks["startup"] and checks["database"] and checks["storage"] and checks["broker"] and checks["outbox"]
        body = {"ready": ready, "checks": checks, "startup": startup.check()}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
