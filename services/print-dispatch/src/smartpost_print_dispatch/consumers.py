"""Kafka subscriptions: master data, print orders, portal views.

Each batch of events runs in one DB transaction with its processed-event rows and its outgoing events (outbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smartpost_shared.masterdata import apply_masterdata_batch
from smartpost_shared.messaging import EventConsumer, SqlIdempotency
from smartpost_shared.topics import LETTERS, MASTERDATA, PORTAL

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from smartpost_print_dispatch.application import PrintDispatch
    from smartpost_print_dispatch.settings import Settings


def register_consumers(broker: KafkaBroker, dispatch: PrintDispatch, settings: Settings) -> EventConsumer:
    consumer = EventConsumer(
        broker, service=settings.service_name, attempts=settings.kafka.handler_attempts, store=dispatch.store
    )
    options: dict[str, Any] = {
        "group_id": settings.consumer_group,
        "session_timeout_ms": settings.kafka.session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka.heartbeat_interval_ms,
    }
    masterdata = SqlIdempotency(dispatch.engine, f"{settings.service_name}:masterdata")
    consumer.subscribe_batch(
        MASTERDATA,
        masterdata,
        dict.fromkeys(
            ("PropertyUpserted", "UnitUpserted", "ContactUpserted", "ContactArchived", "ContractUpserted"),
            dispatch.on_masterdata,
        ),
        apply_batch=apply_masterdata_batch,
        **options,
    )
    letters = SqlIdempotency(dispatch.engine, f"{settings.service_name}:letters")
    # letters.events and portal.events carry thousands of events this service skips (part updates, every
    # DocumentPublished of a release): consumed in batches, one offset commit and one transaction per batch.
    consumer.subscribe_batch(LETTERS, letters, {"PrintOrdered": dispatch.on_print_ordered}, **options)
    portal = SqlIdempotency(dispatch.engine, f"{settings.service_name}:portal")
    consumer.subscribe_batch(PORTAL, portal, {"DocumentViewed": dispatch.on_document_viewed}, **options)
    return consumer
