"""FastStream subscriptions: ``portal.events`` (documents) and ``masterdata.events`` (contacts, properties, units).

Handlers only write rows, in one transaction with the processed-event ledger (``SqlIdempotency``); no mail is
sent from a handler, so a redelivered event can never cause a second mail. Both topics are consumed in batches (up
to 500 events in one transaction and one offset commit): a release of 4,000 letters is 4,000 ``DocumentPublished``
events, and one transaction plus one Kafka commit per event made the notifier the slowest step after a release.
Within a batch the events are applied in order, each exactly as alone (the ledger skips those already processed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_notifier.privacy import SERVICE, erase_contact
from smartpost_shared.masterdata import apply_masterdata_batch
from smartpost_shared.messaging import EventConsumer, SqlIdempotency
from smartpost_shared.privacy import erasure_aware_batch, erasure_aware_handler
from smartpost_shared.topics import MASTERDATA, PORTAL

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from smartpost_notifier.application import Notifier
    from smartpost_notifier.settings import Settings

LEDGER_CONSUMER = "notifier"


def register_consumers(consumer: EventConsumer, notifier: Notifier, engine: Engine, settings: Settings) -> None:
    idempotency = SqlIdempotency(engine, LEDGER_CONSUMER)
    timeouts = {
        "session_timeout_ms": settings.kafka.session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka.heartbeat_interval_ms,
    }
    consumer.subscribe_batch(
        PORTAL,
        idempotency,
        {
            "DocumentPublished": notifier.on_document_published,
            "DocumentRevoked": notifier.on_document_revoked,
        },
        group_id=settings.kafka_group_id,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    consumer.subscribe_batch(
        MASTERDATA,
        idempotency,
        dict.fromkeys(MASTERDATA.event_types, erasure_aware_handler(notifier.on_masterdata, erase_contact, SERVICE)),
        apply_batch=erasure_aware_batch(apply_masterdata_batch, erase_contact, SERVICE),
        group_id=f"{settings.kafka_group_id}-masterdata",
        **timeouts,
    )
