"""Subscriptions: SplitRequested on letters.events -> a split job (see :mod:`.jobs`), committed at once.

The job runners publish DocumentSplit / DocumentSplitFailed on splitter.events when the split is done; the
consumer never holds a message for the length of a split (which would outlive its lease).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_shared.messaging import EventConsumer
from smartpost_shared.topics import LETTERS

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_splitter.jobs import SplitJobs
    from smartpost_splitter.settings import Settings

SERVICE = "splitter"


def register_consumers(broker: KafkaBroker, jobs: SplitJobs, settings: Settings) -> EventConsumer:
    async def on_split_requested(envelope: Envelope) -> None:
        await jobs.accept(envelope)

    consumer = EventConsumer(broker, service=SERVICE, attempts=settings.kafka.handler_attempts)
    consumer.subscribe(
        LETTERS,
        {"SplitRequested": on_split_requested},
        group_id=settings.consumer_group,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    return consumer
