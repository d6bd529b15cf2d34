"""Outbox relay: publishes integration events from the event store's notification log to Kafka.

Reads notifications in id order after the last recorded position, publishes each one's envelopes (awaiting the
broker's ack), then records the new position in the event store's own tracking table (same database, one
upsert that only moves forward). Gaps in notification ids (PostgreSQL rolls back sequence values) are skipped
naturally because the log is read by ``id >= position + 1``. At-least-once: a crash after publishing and before
recording re-publishes the same envelopes with the same event ids; nothing is lost and, since envelopes are sent
one by one in log order with the letter id as key, the order per letter is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from eventsourcing.persistence import Tracking

from smartpost_letters.integration import wire_envelopes
from smartpost_letters.settings import FaultInjection
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import PublishHealth

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification, TrackingRecorder

    from smartpost_letters.application import LettersApplication
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.messaging import EventPublisher

log = get_logger(__name__)

RELAY_NAME = "letters-outbox-relay"


class NotificationLogRelay:
    def __init__(
        self,
        app: LettersApplication,
        publisher: EventPublisher,
        tracking: TrackingRecorder,
        *,
        batch_size: int = 200,
        poll_seconds: float = 0.2,
        fault: FaultInjection = FaultInjection.NONE,
    ) -> None:
        self.app = app
        self.publisher = publisher
        self.tracking = tracking
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.fault = fault
        self.published = 0
        self.health = PublishHealth()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._lock = asyncio.Lock()

    def position(self) -> int:
        return self.tracking.max_tracking_id(RELAY_NAME) or 0

    def _next_batch(self) -> tuple[int, list[Notification]]:
        position = self.position()
        notifications = self.app.recorder.select_notifications(start=position + 1, limit=self.batch_size)
        return position, list(notifications)

    def _wire_batch(self, notifications: list[Notification]) -> list[list[tuple[Envelope, bytes]]]:
        """Each notification's envelopes with their bytes (runs in a worker thread).

        A release of thousands of letters is one stored event of megabytes: decoding, validating and serialising
        it takes a few hundred milliseconds, which on the event loop would hold back every HTTP answer of the
        service (the release's own answer first, since the save wakes the relay).
        """
        batch = []
        for notification in notifications:
            envelopes = wire_envelopes(self.app.mapper.to_domain_event(notification))
            batch.append([(envelope, envelope.to_bytes()) for envelope in envelopes])
        return batch

    async def publish_pending(self) -> int:
        """Publish one batch; returns the number of notifications consumed from the log."""
        async with self._lock:
            _, notifications = await asyncio.to_thread(self._next_batch)
            if not notifications:
                return 0
            sent_in_batch = 0
            wire = await asyncio.to_thread(self._wire_batch, notifications)
            for notification, envelopes in zip(notifications, wire, strict=True):
                for envelope, body in envelopes:
                    self._maybe_crash(FaultInjection.BEFORE_PUBLISH)
                    try:
                        await self.publisher.publish(envelope, body=body)
                    except Exception as exc:
                        self.health.failed(
                            exc,
                            {
                                "event_type": envelope.event_type,
                                "event_id": str(envelope.event_id),
                                "letter_id": str(getattr(envelope.payload, "letter_id", "")),
                            },
                        )
                        raise
                    self.published += 1
                    sent_in_batch += 1
                    log.info(
                        "outbox.published",
                        event_type=envelope.event_type,
                        event_id=str(envelope.event_id),
                        notification_id=notification.id,
                    )
            if sent_in_batch:
                self._maybe_crash(FaultInjection.AFTER_PUBLISH)
            last = notifications[-1].id
            await asyncio.to_thread(self.tracking.insert_tracking, Tracking(RELAY_NAME, last))
            self.health.succeeded()
            return len(notifications)

    def _maybe_crash(self, point: FaultInjection) -> None:
        if self.fault == point:
            log.warning("fault_injection.sigkill", point=point.value)
            os.kill(os.getpid(), signal.SIGKILL)

    def wake(self) -> None:
        """Called after every save so a new event goes out without waiting for the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                consumed = await self.publish_pending()
            except Exception:
                if not self.health.failures:
                    log.warning("outbox.publish_failed", exc_info=True)
                consumed = 0
                await asyncio.sleep(self.health.backoff(self.poll_seconds * 5))
            if consumed:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def resume(self) -> None:
        """Allow :meth:`run` again after :meth:`stop` (the next term of its lease)."""
        self._stopped.clear()
