"""Kafka subscriptions: master data, print orders, portal views.

Each batch of events runs in one DB transaction with its processed-event rows and its outgoing events (outbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smartpost_print_dispatch.privacy import SERVICE, make_erase
from smartpost_shared.masterdata import apply_masterdata_batch
from smartpost_shared.messaging import EventConsumer, SqlIdempotency
from smartpost_shared.privacy import erasure_aware_batch, erasure_aware_handler
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
    erase = make_erase(dispatch)  # GDPR erasure of a contact arrives with master data
    on_masterdata = erasure_aware_handler(dispatch.on_masterdata, erase, SERVICE)
    consumer.subscribe_batch(
        MASTERDATA,
        masterdata,
        dict.fromkeys(
            (
                "PropertyUpserted",
                "UnitUpserted",
                "ContactUpserted",
                "ContactArchived",
                "ContractUpserted",
                "ContactErasureRequested",
            ),
            on_masterdata,
        ),
        apply_batch=erasure_aware_batch(apply_masterdata_batch, erase, SERVICE),
        **options,
    )
    letters = SqlIdempotency(dispatch.engine, f"{settings.service_name}:letters")
    # letters.events carries thousands of events this service skips (part updates, reviews) and portal.events one
    # DocumentPublished per released letter: consumed in batches, one offset commit and one transaction per batch.
    consumer.subscribe_batch(LETTERS, letters, {"PrintOrdered": dispatch.on_print_ordered}, **options)
    portal = SqlIdempotency(dispatch.engine, f"{settings.service_name}:portal")
    consumer.subscribe_batch(
        PORTAL,
        portal,
        {
            "DocumentViewed": dispatch.on_document_viewed,
            "DocumentPublished": dispatch.on_document_published,
        },
        **options,
    )
    return consumer
