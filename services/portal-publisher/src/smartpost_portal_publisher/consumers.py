"""FastStream subscriptions of the portal publisher: letters.events and masterdata.events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_portal_publisher.privacy import make_erase
from smartpost_shared.masterdata import apply_masterdata, apply_masterdata_batch
from smartpost_shared.messaging import EventConsumer, SqlIdempotency
from smartpost_shared.privacy import erasure_aware_batch, erasure_aware_handler
from smartpost_shared.topics import LETTERS, MASTERDATA

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from sqlalchemy.engine import Connection, Engine

    from smartpost_portal_publisher.application import Publisher
    from smartpost_portal_publisher.settings import Settings
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.storage import ObjectStore

SERVICE = "portal-publisher"


def _apply_masterdata(envelope: Envelope, conn: Connection) -> None:
    apply_masterdata(conn, envelope)


def register_consumers(
    broker: KafkaBroker, engine: Engine, publisher: Publisher, settings: Settings, *, store: ObjectStore | None = None
) -> EventConsumer:
    consumer = EventConsumer(broker, service=SERVICE, attempts=settings.kafka.handler_attempts, store=store)
    group = settings.consumer_group or f"smartpost-{SERVICE}"
    timeouts = {
        "session_timeout_ms": settings.kafka.session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka.heartbeat_interval_ms,
    }
    letters = SqlIdempotency(engine, f"{SERVICE}:letters")
    # In batches: letters.events carries every event of every letter (parts, reviews, mailpiece statuses); one
    # offset commit per skipped event was most of this subscription's cost. Releases and revocations of one batch
    # are applied in order in one transaction, each exactly as alone.
    consumer.subscribe_batch(
        LETTERS,
        letters,
        {
            "LetterReleased": publisher.on_letter_released,
            "LetterItemsRevoked": publisher.on_items_revoked,
        },
        group_id=f"{group}.letters",
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
    )
    masterdata = SqlIdempotency(engine, f"{SERVICE}:masterdata")
    # A contact's erasure (GDPR) arrives with master data; it needs the store for the contact's documents.
    erase = make_erase(store)
    consumer.subscribe_batch(
        MASTERDATA,
        masterdata,
        dict.fromkeys(MASTERDATA.event_types, erasure_aware_handler(_apply_masterdata, erase, SERVICE)),
        apply_batch=erasure_aware_batch(apply_masterdata_batch, erase, SERVICE),
        group_id=f"{group}.masterdata",
        **timeouts,
    )
    return consumer
