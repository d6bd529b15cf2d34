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
from smartpost_shared.db import make_engine
from smartpost_shared.logging import configure_logging, get_logger
from smartpost_shared.messaging import EventConsumer, EventPublisher, OutboxRelay, make_broker

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


def create_app(settings: Settings, *, clock: Clock = utc_now, mailer: Mailer | None = None) -> FastAPI:
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    engine = make_engine(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(create_tables, engine)
        notifier = Notifier(engine, settings, mailer or make_mailer(settings), clock=clock)
        # Before anything sends: settle what a previous process left in flight.
        await asyncio.to_thread(notifier.recover_in_flight)
        broker = make_broker(settings.kafka, service=settings.service_name)
        consumer = EventConsumer(broker, service=settings.service_name, attempts=settings.kafka.handler_attempts)
        register_consumers(consumer, notifier, engine, settings)
        relay = OutboxRelay(engine, EventPublisher(broker))
        app.state.broker = broker
        app.state.relay = relay
        app.state.notifier = notifier
        stop = asyncio.Event()
        # Mails already in the outbox go out even while Kafka is still joining (or down).
        tasks = [asyncio.create_task(_sender_loop(notifier, stop, settings.send_poll_seconds), name="sender")]
        await broker.start()

        async def digest_tick() -> None:
            await asyncio.to_thread(notifier.run_due_digests)

        tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        if settings.digest_enabled:
            tasks.append(
                asyncio.create_task(_every(settings.digest_check_seconds, stop, digest_tick, "digest"), name="digest")
            )
        log.info("notifier.started", smtp=f"{settings.smtp_host}:{settings.smtp_port}")
        try:
            yield
        finally:
            stop.set()
            relay.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await broker.stop()
            engine.dispose()
            log.info("notifier.stopped")

    app = FastAPI(title="SmartPost notifier", version="0.1.0", lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    app.include_router(router)
    return app
