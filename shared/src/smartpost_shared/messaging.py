"""Kafka plumbing on FastStream: broker factory, envelope publisher, and the consumer helper.

The consumer helper gives every service the same guarantees:
- a message that is not valid JSON, not a known event or fails its contract goes to the topic's dead-letter
  topic with the reason in headers, and the consumer keeps going;
- a handler that raises a :class:`TransientError` (storage, SMTP, database down ...) is retried with backoff and
  the offset is not committed, so nothing is lost;
- a handler that keeps failing otherwise goes to the dead-letter topic after ``attempts`` tries;
- idempotency: wrap handlers with :meth:`SqlIdempotency.handler` (ledger row + effects + outbox in one
  transaction) or make the aggregate itself idempotent (letters service).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage  # noqa: TC002 - FastStream reads annotations at runtime
from faststream.middlewares import AckPolicy
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from smartpost_shared.contracts.envelope import Envelope, parse_envelope
from smartpost_shared.db import claim_event, mark_published, message_key, pending_outbox
from smartpost_shared.event_signing import SIGNATURE_HEADER, EventSecurity, signature_of
from smartpost_shared.logging import get_logger, message_context
from smartpost_shared.metrics import count_dead_letter
from smartpost_shared.storage import account_key_problem
from smartpost_shared.topics import Topic, topic_for_event
from smartpost_shared.tracing import consume_span, kafka_headers, publish_span

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

from smartpost_shared.settings import KafkaSettings

log = get_logger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
SqlHandler = Callable[[Envelope, "Connection"], None]


class TransientError(Exception):
    """An outage the handler cannot fix now (storage, SMTP, database, provider): retry later, lose nothing."""


class PermanentError(Exception):
    """The message can never be processed (e.g. refers to an unknown letter): dead-letter it with this reason."""


TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    OperationalError,
)


def make_broker(
    settings: KafkaSettings,
    *,
    service: str,
    max_request_size: int = 1_048_576,
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None,
) -> KafkaBroker:
    """The FastStream Kafka broker every service uses.

    Services that emit big events (the splitter's DocumentSplit of a 10,000-page export is ~1.6 MB of JSON) pass
    a larger ``max_request_size`` and ``compression_type="gzip"``.
    """
    broker = KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"smartpost-{service}",
        logger=None,
        # tansu rejects InitProducerId v0, so no idempotent producer: consumers dedupe by event id instead.
        enable_idempotence=False,
        acks="all",
        max_request_size=max_request_size,
        compression_type=compression_type,
    )
    # Signing and verification ride with the broker, so every publisher and consumer built on it uses them.
    _SECURITY[broker] = EventSecurity.from_settings(settings)
    return broker


_EMPTY_KAFKA_SETTINGS = KafkaSettings(signing_key=None, trusted_producers={})
_SECURITY: weakref.WeakKeyDictionary[KafkaBroker, EventSecurity] = weakref.WeakKeyDictionary()


def broker_security(broker: KafkaBroker) -> EventSecurity:
    """The signing key and trusted producers of a broker made by :func:`make_broker` (none for a foreign one)."""
    return _SECURITY.get(broker) or EventSecurity.from_settings(_EMPTY_KAFKA_SETTINGS)


class EventPublisher:
    """Publishes envelopes to the topic that the registry names for their event type, keyed as it says."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.signer = broker_security(broker).signer

    def _signed(self, body: bytes) -> dict[str, str]:
        return self.signer.headers(body) if self.signer else {}

    async def publish(self, envelope: Envelope) -> None:
        topic = topic_for_event(envelope.event_type)
        body = envelope.to_bytes()
        headers = {
            "event_type": envelope.event_type,
            "schema_version": str(envelope.schema_version),
            **self._signed(body),
        }
        with publish_span(envelope, topic.name, headers):  # adds the W3C traceparent to the headers
            await self.broker.publish(
                body,
                topic=topic.name,
                key=message_key(envelope).encode(),
                headers=headers,
                correlation_id=str(envelope.correlation_id),
            )

    async def publish_raw(self, topic: str, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        await self.broker.publish(data, topic=topic, key=key.encode(), headers=self._signed(data))


def _foreign_storage_key(envelope: Envelope) -> str | None:
    """The first storage key outside the event's account, or None.

    Storage keys are the ``*_key`` and ``*_keys`` fields of a payload, also in nested items (every contract names
    them so).
    """
    problems = (account_key_problem(envelope.account_id, key) for key in _storage_keys(envelope.payload))
    return next((p for p in problems if p is not None), None)


def _storage_keys(value: object) -> Iterator[str]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field_value = getattr(value, name)
            if name.endswith("_key") and isinstance(field_value, str):
                yield field_value
            elif name.endswith("_keys") and isinstance(field_value, list | tuple):
                yield from (str(k) for k in field_value)
            else:
                yield from _storage_keys(field_value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _storage_keys(item)


@dataclass
class DeadLetter:
    topic: Topic
    reason: str
    error_type: str


class EventConsumer:
    """Subscribes a service's handlers to topics with dead-lettering and retries (see module docstring)."""

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        service: str,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
        group_prefix: str = "smartpost",
    ) -> None:
        self.broker = broker
        self.service = service
        self.group_prefix = group_prefix
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.dead_lettered = 0
        self.verifier = broker_security(broker).verifier

    def subscribe(
        self,
        topic: Topic,
        handlers: Mapping[str, Handler],
        *,
        group_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        rebalance_timeout_ms: int | None = None,
    ) -> None:
        """Consume ``topic``; events without a handler are skipped (not every consumer needs every event).

        The rebalance timeout is what the broker waits for members to rejoin. It defaults to aiokafka's
        max_poll_interval (5 minutes); tansu then keeps a member that died mid-join for that long and a restarted
        service receives nothing meanwhile. A few session timeouts is enough for a live member to rejoin.
        """

        async def consume(msg: KafkaMessage) -> None:
            await self._consume(topic, handlers, msg)

        consume.__name__ = f"on_{topic.name.replace('.', '_')}"
        self.broker.subscriber(
            topic.name,
            group_id=group_id or f"{self.group_prefix}-{self.service}",
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=rebalance_timeout_ms or max(3 * session_timeout_ms, 10_000),
            title=f"{self.service}:{topic.name}",
            description=f"{self.service} consumes {', '.join(sorted(handlers))} from {topic.name}",
        )(consume)

    async def _consume(self, topic: Topic, handlers: Mapping[str, Handler], msg: KafkaMessage) -> None:
        raw: bytes = msg.body
        # Only the producer the registry names for this topic may have written it (checked before parsing).
        forged = self.verifier.problem(topic.producer, raw, signature_of(getattr(msg.raw_message, "headers", None)))
        if forged is not None:
            await self._dead_letter(topic, msg, DeadLetter(topic, f"not from {topic.producer}: {forged}", "Forged"))
            return
        try:
            envelope = parse_envelope(raw)
        except ValueError as exc:
            await self._dead_letter(topic, msg, DeadLetter(topic, f"invalid message: {exc}", type(exc).__name__))
            return
        handler = handlers.get(envelope.event_type)
        if handler is None:
            return
        foreign = _foreign_storage_key(envelope)
        if foreign is not None:
            await self._dead_letter(topic, msg, DeadLetter(topic, foreign, "ForeignStorageKey"))
            return
        with (
            message_context(
                correlation_id=envelope.correlation_id,
                account_id=envelope.account_id,
                event_id=envelope.event_id,
                event_type=envelope.event_type,
            ),
            consume_span(envelope, topic.name, kafka_headers(msg.raw_message)),
        ):
            await self._run_with_retries(topic, msg, envelope, handler)

    async def _run_with_retries(self, topic: Topic, msg: KafkaMessage, envelope: Envelope, handler: Handler) -> None:
        attempt = 0
        transient_failures = 0
        while True:
            attempt += 1
            try:
                await handler(envelope)
            except TRANSIENT_EXCEPTIONS as exc:
                # Outage: keep retrying with capped backoff; never dead-letter and never commit past it.
                transient_failures += 1
                delay = min(self.backoff_seconds * 2 ** min(transient_failures, 10), self.max_backoff_seconds)
                log.warning("handler.transient_failure", error=str(exc), retry_in=delay, failures=transient_failures)
                await asyncio.sleep(delay)
                attempt -= 1
                continue
            except PermanentError as exc:
                await self._dead_letter(topic, msg, DeadLetter(topic, str(exc), type(exc).__name__))
                return
            except Exception as exc:
                if attempt >= self.attempts:
                    reason = f"handler failed {attempt} times: {type(exc).__name__}: {exc}"
                    log.exception("handler.failed", attempts=attempt)
                    await self._dead_letter(topic, msg, DeadLetter(topic, reason, type(exc).__name__))
                    return
                await asyncio.sleep(self.backoff_seconds * attempt)
                continue
            return

    async def _dead_letter(self, topic: Topic, msg: KafkaMessage, dead: DeadLetter) -> None:
        raw = msg.raw_message
        source_partition = getattr(raw, "partition", None)
        source_offset = getattr(raw, "offset", None)
        key = getattr(raw, "key", None)
        log.error(
            "message.dead_lettered",
            topic=topic.name,
            partition=source_partition,
            offset=source_offset,
            reason=dead.reason,
        )
        # The producer's signature stays with the message, so a re-drive after a fix is still provably its.
        signature = signature_of(getattr(raw, "headers", None))
        await self.broker.publish(
            msg.body,
            topic=topic.dead_letter,
            key=key if isinstance(key, bytes) else None,
            headers={
                **({SIGNATURE_HEADER: signature.decode()} if signature else {}),
                "dlq_reason": dead.reason[:2000],
                "dlq_error_type": dead.error_type,
                "dlq_source_topic": topic.name,
                "dlq_source_partition": str(source_partition),
                "dlq_source_offset": str(source_offset),
                "dlq_consumer": self.service,
                "dlq_at": str(time.time()),
            },
        )
        self.dead_lettered += 1
        count_dead_letter(self.service, topic.name, dead.reason, dead.error_type)


class SqlIdempotency:
    """Runs a synchronous handler in one database transaction together with the processed-events ledger row."""

    def __init__(self, engine: Engine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer

    def handler(self, fn: SqlHandler) -> Handler:
        async def run(envelope: Envelope) -> None:
            await asyncio.to_thread(self.run_once, fn, envelope)

        return run

    def run_once(self, fn: SqlHandler, envelope: Envelope) -> bool:
        """Apply ``fn`` unless this consumer already processed the event. Returns whether it ran."""
        with self.engine.begin() as conn:
            if not claim_event(conn, self.consumer, envelope.event_id):
                log.info("message.duplicate_skipped", event_id=str(envelope.event_id))
                return False
            fn(envelope, conn)
            return True


class OutboxRelay:
    """Publishes rows of the transactional outbox in order, then marks them; at-least-once, consumers dedupe."""

    def __init__(self, engine: Engine, publisher: EventPublisher, *, poll_seconds: float = 0.2) -> None:
        self.engine = engine
        self.publisher = publisher
        self.poll_seconds = poll_seconds
        self._stopped = asyncio.Event()

    async def publish_pending(self) -> int:
        rows = await asyncio.to_thread(self._pending)
        for row in rows:
            await self.publisher.publish_raw(row["topic"], row["message_key"], row["body"])
        if rows:
            await asyncio.to_thread(self._mark, [int(r["position"]) for r in rows])
        return len(rows)

    def _pending(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return pending_outbox(conn)

    def _mark(self, positions: list[int]) -> None:
        with self.engine.begin() as conn:
            mark_published(conn, positions)

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                sent = await self.publish_pending()
            except Exception:
                log.warning("outbox.publish_failed", exc_info=True)
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self.poll_seconds)

    def stop(self) -> None:
        self._stopped.set()

    def resume(self) -> None:
        """Allow :meth:`run` again after :meth:`stop` (the next term of its lease)."""
        self._stopped.clear()
