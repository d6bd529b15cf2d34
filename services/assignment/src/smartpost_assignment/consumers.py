"""Kafka subscriptions: master data, letters (context and corrections) and the splitter's results."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from smartpost_assignment.privacy import erase_contact
from smartpost_shared.db import was_processed
from smartpost_shared.masterdata import apply_masterdata_batch
from smartpost_shared.messaging import EventConsumer, SqlIdempotency, answer_key
from smartpost_shared.privacy import erasure_aware_batch, erasure_aware_handler
from smartpost_shared.topics import LETTERS, MASTERDATA, SPLITTER

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from sqlalchemy.engine import Engine

    from smartpost_assignment.application import AssignmentService
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.settings import KafkaSettings
    from smartpost_shared.storage import ObjectStore

CONSUMER = "assignment"


def assign_split(service: AssignmentService, idempotent: SqlIdempotency, envelope: Envelope) -> bool:
    """A DocumentSplit: match first, in no transaction; then store in one short one. Returns whether it ran.

    (AssignmentService.match_prepared says why.) The write transaction re-checks everything the matches depend on.
    """
    prepared = None
    with idempotent.engine.begin() as conn:  # a short read: is it new, and what does matching need
        redelivered = was_processed(conn, idempotent.consumer, answer_key(envelope))
        inputs = None if redelivered else service.prepare_document(conn, envelope)
    if inputs is not None:
        prepared = service.match_prepared(envelope, *inputs)
    return idempotent.run_once(partial(service.on_document_split, prepared=prepared), envelope, answer_key)


def register_consumers(
    broker: KafkaBroker,
    engine: Engine,
    service: AssignmentService,
    kafka: KafkaSettings,
    store: ObjectStore | None = None,
) -> EventConsumer:
    consumer = EventConsumer(
        broker, service=CONSUMER, attempts=kafka.handler_attempts, group_prefix=kafka.group_prefix, store=store
    )
    idempotent = SqlIdempotency(engine, CONSUMER)
    # Master data in batches (one transaction per up to 500 events): an account's 20,000 contacts and contracts.
    consumer.subscribe_batch(
        MASTERDATA,
        idempotent,
        dict.fromkeys(MASTERDATA.event_types, erasure_aware_handler(service.on_masterdata, erase_contact, CONSUMER)),
        apply_batch=erasure_aware_batch(apply_masterdata_batch, erase_contact, CONSUMER),
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
    consumer.subscribe(
        LETTERS,
        {
            "LetterCreated": idempotent.handler(service.on_letter_created),
            "AssignmentCorrected": idempotent.handler(service.on_assignment_corrected),
        },
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )

    async def on_document_split(envelope: Envelope) -> None:
        await asyncio.to_thread(assign_split, service, idempotent, envelope)

    consumer.subscribe(
        SPLITTER,
        # A split is the answer to one SplitRequested: a re-split of an unchanged file is new work, not a duplicate.
        {"DocumentSplit": on_document_split},
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
    return consumer
