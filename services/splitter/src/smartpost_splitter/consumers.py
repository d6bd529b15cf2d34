"""Subscriptions: SplitRequested on letters.events -> DocumentSplit / DocumentSplitFailed on splitter.events."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from smartpost_shared.messaging import EventConsumer, EventPublisher
from smartpost_shared.topics import LETTERS

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_splitter.application import SplitService
    from smartpost_splitter.settings import Settings

SERVICE = "splitter"


def register_consumers(broker: KafkaBroker, service: SplitService, settings: Settings) -> EventConsumer:
    publisher = EventPublisher(broker, store=service.store)
    # One document at a time per instance: the work is CPU-bound and already uses all text processes.
    lock = asyncio.Lock()

    async def on_split_requested(envelope: Envelope) -> None:
        async with lock:
            result = await asyncio.to_thread(service.handle, envelope)
        await publisher.publish(result)

    consumer = EventConsumer(broker, service=SERVICE, attempts=settings.kafka.handler_attempts)
    consumer.subscribe(
        LETTERS,
        {"SplitRequested": on_split_requested},
        group_id=settings.consumer_group,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    return consumer
