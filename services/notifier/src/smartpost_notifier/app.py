"""Wiring: database, SMTP client, Kafka consumers, the outbox relay and the sender / digest loops."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from smartpost_notifier.adapters.db import create_tables
from smartpost_notifier.adapters.smtp import Mailer, SmtpMailer
from smartpost_notifier.api import router
from smartpost_notifier.application import Clock, Notifier, utc_now
from smartpost_notifier.consumers import register_consumers
from smartpost_notifier.metrics import MailSource
from smartpost_notifier.privacy import SERVICE, export_contact
from smartpost_shared.db import make_engine
from smartpost_shared.http import JSON_BODY_LIMIT, BodyLimitMiddleware
from smartpost_shared.identity import CallerVerifier, caller_precheck
from smartpost_shared.lease import leadership, relay_work
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.messaging import EventConsumer, EventPublisher, OutboxRelay, Startup, make_broker, start_broker
from smartpost_shared.metrics import OutboxSource, ScrapeSource, install_metrics
from smartpost_shared.privacy import create_privacy_tables, personal_data_router
from smartpost_shared.tracing import install_tracing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from smartpost_notifier.settings import Settings

log = get_logger(__name__)


def make_mailer(settings: Settings) -> Mailer:
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        implicit_tls=settings.smtp_ssl,
        timeout=settings.smtp_timeout_seconds,
    )


async def _sender_loop(notifier: Notifier, stop: asyncio.Event, poll_seconds: float) -> None:
    while not stop.is_set():
        processed = 0
        try:
            report = await asyncio.to_thread(notifier.send_due, stop.is_set)
            processed = report.processed - report.deferred
        except Exception:  # database hiccup: the rows stay, try again
            log.exception("sender.batch_failed")
        if not processed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)


async def _every(seconds: float, stop: asyncio.Event, tick: Callable[[], Awaitable[object]], name: str) -> None:
    while not stop.is_set():
        try:
            await tick()
        except Exception:  # keep the loop alive, the next tick retries
            log.exception(f"{name}.failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


def create_app(settings: Settings, *, clock: Clock = utc_now, mailer: Mailer | None = None) -> FastAPI:  # noqa: PLR0915 - wiring
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    engine = make_engine(settings.resolved_database_url())

    def create_all_tables() -> None:
        create_tables(engine)
        create_privacy_tables(engine)

    startup = Startup(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = Notifier(
            engine,
            settings,
            mailer or make_mailer(settings),
            clock=clock,
            # A mailer given by a test is the only connection; the real one opens more (settings.send_connections).
            mailer_factory=None if mailer is not None else lambda: make_mailer(settings),
        )
        broker = make_broker(settings.kafka, service=settings.service_name)
        consumer = EventConsumer(broker, service=settings.service_name, attempts=settings.kafka.handler_attempts)
        register_consumers(consumer, notifier, engine, settings)
        relay = OutboxRelay(engine, EventPublisher(broker))
        app.state.broker = broker
        app.state.relay = relay
        app.state.notifier = notifier
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        async def digest_tick() -> None:
            await asyncio.to_thread(notifier.run_due_digests)

        async def sending(lease_stop: asyncio.Event) -> None:
            """Only in the replica holding the lease: recovery, sending, digests (the recovery owns every row)."""
            # Before anything sends: settle what a previous holder left in flight.
            await asyncio.to_thread(notifier.recover_in_flight)
            work = [_sender_loop(notifier, lease_stop, settings.send_poll_seconds)]
            if settings.digest_enabled:
                work.append(_every(settings.digest_check_seconds, lease_stop, digest_tick, "digest"))
            await asyncio.gather(*work)

        sender_leader = leadership(engine, "notifier-sender", settings.lease)
        relay_leader = leadership(engine, "notifier-outbox-relay", settings.lease)

        async def connect() -> None:
            # Database or broker down at start-up: serve /healthz, report not-ready, connect when they are back.
            await startup.step("database", lambda: asyncio.to_thread(create_all_tables))
            # Mails already in the outbox go out even while Kafka is still joining (or down).
            tasks.append(asyncio.create_task(sender_leader.run(sending), name="sender"))
            await start_broker(startup, broker)
            tasks.append(asyncio.create_task(relay_leader.run(relay_work(relay)), name="outbox-relay"))

        startup.begin(connect)
        await startup.settle(settings.kafka.startup_grace_seconds)
        log.info("notifier.started", smtp=f"{settings.smtp_host}:{settings.smtp_port}")
        try:
            yield
        finally:
            await startup.stop()
            stop.set()
            sender_leader.stop()
            relay_leader.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await broker.stop()
            engine.dispose()
            log.info("notifier.stopped")

    app = FastAPI(title="SmartPost notifier", version="0.1.0", lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    # Bodies are bounded while they stream, and only read once the caller is proven.
    app.add_middleware(BodyLimitMiddleware, max_bytes=JSON_BODY_LIMIT, precheck=caller_precheck())
    # Every route but the probes (and signed webhooks) needs a verified caller (smartpost_shared.identity).
    app.state.caller_verifier = CallerVerifier.from_settings(settings.service_name, settings.identity).share_replays(
        engine
    )
    app.state.startup = startup
    app.include_router(router)
    app.include_router(personal_data_router(SERVICE, engine, export_contact))
    sources: list[ScrapeSource] = [OutboxSource(engine, settings.service_name), MailSource(engine)]
    install_metrics(app, settings.service_name, sources=sources, kafka=settings.kafka)
    install_tracing(app, settings.service_name, settings.tracing)
    return app
