"""Kafka plumbing on FastStream: broker factory, envelope publisher, and the consumer helper.

The consumer helper gives every service the same guarantees:
- a message that is not valid JSON, not a known event or fails its contract goes to the topic's dead-letter
  topic with the reason in headers, and the consumer keeps going;
- a handler that raises a :class:`TransientError` (storage, SMTP, database down ...) is retried with backoff and
  the offset is not committed, so nothing is lost;
- a handler that keeps failing otherwise goes to the dead-letter topic after ``attempts`` tries;
- idempotency: wrap handlers with :meth:`SqlIdempotency.handler` (ledger row + effects + outbox in one
  transaction) or make the aggregate itself idempotent (letters service);
- bounded messages (claim check): an envelope above :data:`CLAIM_CHECK_BYTES` is written to object storage under
  the event's account prefix and travels as its header plus ``payload_ref`` (key, size, sha256); the consumer helper
  fetches and verifies it before validation, so handlers never see the difference. No message on any topic is
  above :data:`MAX_MESSAGE_BYTES`, whatever the letter's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage  # noqa: TC002 - FastStream reads annotations at runtime
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from smartpost_shared.contracts.envelope import Envelope, deterministic_event_id, parse_envelope
from smartpost_shared.db import claim_event, claim_events, mark_published, message_key, pending_outbox
from smartpost_shared.event_signing import SIGNATURE_HEADER, EventSecurity, signature_of
from smartpost_shared.logging import get_logger, message_context
from smartpost_shared.metrics import count_dead_letter
from smartpost_shared.storage import ObjectNotFoundError, account_key_problem
from smartpost_shared.topics import Topic, topic_for_event
from smartpost_shared.tracing import consume_span, kafka_headers, publish_span

if TYPE_CHECKING:
    import uuid

    from faststream.message import StreamMessage
    from sqlalchemy.engine import Connection, Engine

    from smartpost_shared.storage import ObjectStore

from smartpost_shared.settings import KafkaSettings

log = get_logger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
SqlHandler = Callable[[Envelope, "Connection"], None]
SqlBatchHandler = Callable[["Connection", list[Envelope]], None]
GroupHandler = Callable[[list[Envelope]], Awaitable[None]]


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

# The Kafka producer's default limit (``max.request.size``) and the broker's default ``message.max.bytes``.
MAX_MESSAGE_BYTES = 1_048_576
# Envelopes above this size travel as a claim check (header + payload_ref); leaves room for headers and batching.
CLAIM_CHECK_BYTES = 512 * 1024


class MessageTooLargeError(PermanentError):
    """An envelope is above the claim-check bound and this publisher has no object storage to put it in."""


def claim_check_key(account_id: str, event_type: str, event_id: str) -> str:
    """Where the body of a claim-checked envelope is stored: under the account's prefix, one object per event."""
    return f"accounts/{account_id}/events/{event_type}/{event_id}.json"


class ClaimCheck:
    """Keeps every message below :data:`CLAIM_CHECK_BYTES`.

    Big envelopes go to object storage, the wire carries their header and a ``payload_ref``. Keys are per event
    id, so a re-publish overwrites the same object.
    """

    def __init__(self, store: ObjectStore | None, *, threshold: int = CLAIM_CHECK_BYTES) -> None:
        self.store = store
        self.threshold = threshold
        self.checked_out = 0

    def outgoing(self, body: bytes) -> bytes:
        """The bytes to put on the wire for an encoded envelope (sync: may write to object storage)."""
        if len(body) <= self.threshold:
            return body
        data = json.loads(body)
        if not isinstance(data, dict) or "payload" not in data:
            msg = f"message of {len(body)} bytes is above {self.threshold} and not an envelope"
            raise MessageTooLargeError(msg)
        if self.store is None:
            msg = f"{data.get('event_type')} of {len(body)} bytes is above {self.threshold} and no object storage"
            raise MessageTooLargeError(msg)
        key = claim_check_key(str(data["account_id"]), str(data["event_type"]), str(data["event_id"]))
        self.store.put(key, body, content_type="application/json")
        self.checked_out += 1
        header = {k: v for k, v in data.items() if k != "payload"}
        header["payload_ref"] = {"key": key, "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        log.info("message.claim_checked", event_type=data.get("event_type"), size_bytes=len(body), key=key)
        return json.dumps(header, separators=(",", ":")).encode()

    def incoming(self, data: dict[str, Any]) -> bytes:
        """The full envelope of a claim-check message (sync: reads object storage).

        Raises :class:`PermanentError` when the object is missing or not the one named, ``ConnectionError`` (e.g.
        ``StorageUnavailableError``) when storage is down.
        """
        ref = data.get("payload_ref")
        if not isinstance(ref, dict) or not isinstance(ref.get("key"), str):
            msg = "payload_ref without key"
            raise PermanentError(msg)
        foreign = account_key_problem(str(data.get("account_id", "")), ref["key"])
        if foreign is not None:
            # A producer's claim check names only its own account's objects (never another account's event body).
            msg = f"claim-check {foreign}"
            raise PermanentError(msg)
        if self.store is None:
            msg = f"claim-check message {ref['key']} but this consumer has no object storage"
            raise PermanentError(msg)
        try:
            body = self.store.get(ref["key"])
        except ObjectNotFoundError:
            msg = f"claim-check object {ref['key']} not found"
            raise PermanentError(msg) from None
        if hashlib.sha256(body).hexdigest() != ref.get("sha256"):
            msg = f"claim-check object {ref['key']} does not match its sha256"
            raise PermanentError(msg)
        full = json.loads(body)
        if (
            not isinstance(full, dict)
            or str(full.get("event_id")) != str(data.get("event_id"))
            or str(full.get("account_id")) != str(data.get("account_id"))
        ):
            msg = f"claim-check object {ref['key']} holds another event"
            raise PermanentError(msg)
        return body


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
        security=broker_auth(settings),
        decoder=_undecoded,
    )
    # Signing and verification ride with the broker, so every publisher and consumer built on it uses them.
    _SECURITY[broker] = EventSecurity.from_settings(settings)
    return broker


def _undecoded(message: StreamMessage[Any]) -> Any:
    """The message body as it came, for every subscriber: our handlers parse it themselves, after the signature check.

    FastStream's default decoder runs ``json.loads`` on every body before the handler and lets anything but a
    JSONDecodeError escape: a few KB of ``[[[[…`` (RecursionError) from anyone who can write to a topic was handed
    back and redelivered for ever, the partition stalled for every account. It also parsed every message twice.
    """
    return message.body


def broker_auth(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream's security object for the configured SASL/SCRAM login (None = no broker authentication)."""
    if not settings.sasl_enabled:
        return None
    username = settings.sasl_username or ""
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    use_ssl = settings.security_protocol == "SASL_SSL"
    context = ssl.create_default_context(cafile=settings.ssl_cafile) if use_ssl else None
    scram = SASLScram512 if settings.sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(username=username, password=password, ssl_context=context, use_ssl=use_ssl)


_EMPTY_KAFKA_SETTINGS = KafkaSettings(signing_key=None, trusted_producers={})
_SECURITY: weakref.WeakKeyDictionary[KafkaBroker, EventSecurity] = weakref.WeakKeyDictionary()


def broker_security(broker: KafkaBroker) -> EventSecurity:
    """The signing key and trusted producers of a broker made by :func:`make_broker` (none for a foreign one)."""
    return _SECURITY.get(broker) or EventSecurity.from_settings(_EMPTY_KAFKA_SETTINGS)


class Startup:
    """Start-up steps that need the stack (broker, storage, database), run in the background.

    A service must start while a dependency is down: its HTTP app serves ``/healthz`` at once, ``/readyz``
    reports not-ready (``check()``) naming what it waits for, and every step is retried with capped backoff until
    it succeeds, instead of failing the start-up ("Application startup failed ... Unable to bootstrap").
    """

    def __init__(self, service: str, *, first_delay: float = 0.5, max_delay: float = 10.0) -> None:
        self.service = service
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.done = False
        self.waiting_for: str | None = None
        self.last_error: str | None = None
        self.completed: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def step(
        self, what: str, run: Callable[[], Awaitable[object]], *, cleanup: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Run ``run`` until it succeeds; ``cleanup`` undoes a half-done attempt before the next one."""
        delay = self.first_delay
        attempt = 0
        self.waiting_for = what
        while True:
            attempt += 1
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a dependency is waited out, never fatal
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning(
                    "startup.waiting_for", dependency=what, error=self.last_error, attempt=attempt, retry_in=delay
                )
                if cleanup is not None:
                    with contextlib.suppress(Exception):
                        await cleanup()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            break
        self.completed.add(what)
        self.waiting_for = None
        self.last_error = None
        log.info("startup.connected", dependency=what, attempts=attempt)

    def begin(self, steps: Callable[[], Awaitable[None]]) -> None:
        """Run ``steps`` (a coroutine function calling :meth:`step`) in the background."""

        async def run() -> None:
            await steps()
            self.done = True
            log.info("startup.complete", service=self.service)

        self._task = asyncio.create_task(run(), name=f"{self.service}-startup")

    async def settle(self, grace_seconds: float = 15.0) -> bool:
        """Give the start-up this long to finish before the app serves (it goes on in the background after)."""
        if self._task is None:
            return self.done
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        return self.done

    def check(self) -> str:
        """``"ok"`` once started, else what the service is waiting for (for ``/readyz``)."""
        if self.done:
            return "ok"
        detail = f" ({self.last_error})" if self.last_error else ""
        return f"starting: waiting for {self.waiting_for or 'start-up'}{detail}"

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def start_broker(startup: Startup, broker: KafkaBroker) -> None:
    """Connect the broker (producer and subscribers), retrying while it is unreachable."""
    await startup.step("kafka", broker.start, cleanup=broker.stop)


class EventPublisher:
    """Publishes envelopes to the topic that the registry names for their event type, keyed as it says.

    With a ``store`` every envelope above :data:`CLAIM_CHECK_BYTES` travels as a claim check; without one such an
    envelope raises :class:`MessageTooLargeError` (a permanent error: the relay surfaces it, never loses it).
    """

    def __init__(self, broker: KafkaBroker, *, store: ObjectStore | None = None) -> None:
        self.broker = broker
        self.claim_check = ClaimCheck(store)
        self.signer = broker_security(broker).signer

    def _signed(self, body: bytes) -> dict[str, str]:
        return self.signer.headers(body) if self.signer else {}

    async def _bounded(self, body: bytes) -> bytes:
        """The bytes that go on the wire: the body itself or its claim check (what gets signed)."""
        if len(body) <= self.claim_check.threshold:
            return body
        return await asyncio.to_thread(self.claim_check.outgoing, body)

    async def publish(self, envelope: Envelope, *, body: bytes | None = None) -> None:
        """Publish ``envelope``; ``body`` is its ``to_bytes()`` when the caller serialised it already (off the loop)."""
        topic = topic_for_event(envelope.event_type)
        body = await self._bounded(envelope.to_bytes() if body is None else body)
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
        data = await self._bounded(body.encode() if isinstance(body, str) else body)
        await self.broker.publish(data, topic=topic, key=key.encode(), headers=self._signed(data))

    async def enqueue_raw(self, topic: str, key: str, body: bytes | str) -> asyncio.Future[Any]:
        """Hand a message to the producer in order and return its delivery future (await it for the ack).

        The outbox relay enqueues a whole batch this way and then waits for all acks: one round trip per batch
        instead of one per event, same order per partition.
        """
        data = await self._bounded(body.encode() if isinstance(body, str) else body)
        future: asyncio.Future[Any] = await self.broker.publish(
            data, topic=topic, key=key.encode(), headers=self._signed(data), no_confirm=True
        )
        return future


def _foreign_storage_key(envelope: Envelope) -> str | None:
    """The first storage key outside the event's account, or None.

    Storage keys are the ``*_key`` and ``*_keys`` fields of a payload, also in nested items (every contract names
    them so).
    """
    problems = (account_key_problem(envelope.account_id, key) for key in _storage_keys(envelope.payload))
    return next((p for p in problems if p is not None), None)


def _storage_keys(value: object) -> Iterator[str]:
    # Only models and lists can hold keys: scalars are not descended into (a generator per field of every consumed
    # event was most of this check's cost).
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field_value = getattr(value, name)
            if name.endswith("_key") and isinstance(field_value, str):
                yield field_value
            elif name.endswith("_keys") and isinstance(field_value, list | tuple):
                yield from (str(k) for k in field_value)
            elif isinstance(field_value, BaseModel | list | tuple):
                yield from _storage_keys(field_value)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, BaseModel | list | tuple):
                yield from _storage_keys(item)


@dataclass(frozen=True)
class _Delivery:
    """One record of a batch, shaped like a KafkaMessage for dead-lettering (raw record + body)."""

    raw_message: Any
    body: bytes


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
        store: ObjectStore | None = None,
    ) -> None:
        self.broker = broker
        self.service = service
        self.group_prefix = group_prefix
        self.claim_check = ClaimCheck(store)
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

    def subscribe_batch(  # noqa: PLR0913 - the subscription's options
        self,
        topic: Topic,
        idempotency: SqlIdempotency,
        handlers: Mapping[str, SqlHandler],
        *,
        group_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        rebalance_timeout_ms: int | None = None,
        max_records: int = 500,
        batch_timeout_ms: int = 200,
        apply_batch: SqlBatchHandler | None = None,
    ) -> None:
        """Consume ``topic`` in batches: up to ``max_records`` events applied in ONE database transaction.

        For high-volume streams such as master data (an account of 20,000 contacts and contracts). The guarantees
        stay those of :meth:`subscribe`: invalid messages are dead-lettered one by one, outages are retried
        without committing; if the batch's transaction fails otherwise, its events are applied one at a time, so
        only the poisonous one is dead-lettered. ``apply_batch`` applies all new events of a batch at once (bulk
        statements, e.g. :func:`smartpost_shared.masterdata.apply_masterdata_batch`); it must have the same effect
        as ``handlers`` one by one.
        """
        single = {event_type: idempotency.handler(fn) for event_type, fn in handlers.items()}

        async def consume(msg: KafkaMessage) -> None:
            await self._consume_batch(topic, idempotency, handlers, single, msg, apply_batch)

        consume.__name__ = f"on_{topic.name.replace('.', '_')}_batch"
        self.broker.subscriber(
            topic.name,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            group_id=group_id or f"{self.group_prefix}-{self.service}",
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=rebalance_timeout_ms or max(3 * session_timeout_ms, 10_000),
            title=f"{self.service}:{topic.name}:batch",
            description=f"{self.service} consumes {', '.join(sorted(handlers))} from {topic.name} in batches",
        )(consume)

    def subscribe_grouped(  # noqa: PLR0913 - the subscription's options
        self,
        topic: Topic,
        handlers: Mapping[str, Handler],
        apply_group: GroupHandler,
        *,
        group_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        rebalance_timeout_ms: int | None = None,
        max_records: int = 500,
        batch_timeout_ms: int = 200,
    ) -> None:
        """Consume ``topic`` in batches handed to ``apply_group`` at once (one offset commit per batch).

        For consumers whose idempotency lives in their own store rather than in :class:`SqlIdempotency` (the
        letters aggregate remembers the inbound event ids): ``apply_group`` must have the effect of ``handlers``
        one by one and be safe to repeat. Invalid messages are dead-lettered one by one before it runs; outages are
        retried without committing; any other failure falls back to ``handlers`` one at a time, so only the
        poisonous event is dead-lettered.
        """

        async def consume(msg: KafkaMessage) -> None:
            await self._consume_grouped(topic, handlers, apply_group, msg)

        consume.__name__ = f"on_{topic.name.replace('.', '_')}_grouped"
        self.broker.subscriber(
            topic.name,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            group_id=group_id or f"{self.group_prefix}-{self.service}",
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=rebalance_timeout_ms or max(3 * session_timeout_ms, 10_000),
            title=f"{self.service}:{topic.name}:grouped",
            description=f"{self.service} consumes {', '.join(sorted(handlers))} from {topic.name} in batches",
        )(consume)

    async def _consume_grouped(
        self, topic: Topic, handlers: Mapping[str, Handler], apply_group: GroupHandler, msg: KafkaMessage
    ) -> None:
        batch: list[tuple[_Delivery, Envelope]] = []
        for record in (_Delivery(record, record.value or b"") for record in msg.raw_message):
            envelope = await self._parse(topic, handlers, record)
            if envelope is not None:
                batch.append((record, envelope))
        if not batch:
            return
        failures = 0
        while True:
            try:
                await apply_group([envelope for _, envelope in batch])
            except TRANSIENT_EXCEPTIONS as exc:
                failures += 1
                delay = min(self.backoff_seconds * 2 ** min(failures, 10), self.max_backoff_seconds)
                log.warning("group.transient_failure", error=str(exc), retry_in=delay, events=len(batch))
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # noqa: BLE001 - isolate the poisonous event: one at a time
                log.warning("group.failed_one_by_one", error=f"{type(exc).__name__}: {exc}", events=len(batch))
                for record, envelope in batch:
                    with message_context(
                        correlation_id=envelope.correlation_id,
                        account_id=envelope.account_id,
                        event_id=envelope.event_id,
                        event_type=envelope.event_type,
                    ):
                        await self._run_with_retries(topic, record, envelope, handlers[envelope.event_type])
                return
            log.info("group.applied", topic=topic.name, events=len(batch))
            return

    async def _consume_batch(
        self,
        topic: Topic,
        idempotency: SqlIdempotency,
        handlers: Mapping[str, SqlHandler],
        single: Mapping[str, Handler],
        msg: KafkaMessage,
        apply_batch: SqlBatchHandler | None = None,
    ) -> None:
        records = [_Delivery(record, record.value or b"") for record in msg.raw_message]
        batch: list[tuple[_Delivery, Envelope]] = []
        for record in records:
            envelope = await self._parse(topic, handlers, record)
            if envelope is not None:
                batch.append((record, envelope))
        if not batch:
            return
        envelopes = [envelope for _, envelope in batch]
        failures = 0
        while True:
            try:
                applied = await asyncio.to_thread(idempotency.run_batch, handlers, envelopes, apply_batch)
            except TRANSIENT_EXCEPTIONS as exc:
                failures += 1
                delay = min(self.backoff_seconds * 2 ** min(failures, 10), self.max_backoff_seconds)
                log.warning("batch.transient_failure", error=str(exc), retry_in=delay, events=len(envelopes))
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # noqa: BLE001 - isolate the poisonous event: one at a time
                log.warning("batch.failed_one_by_one", error=f"{type(exc).__name__}: {exc}", events=len(envelopes))
                for record, envelope in batch:
                    with message_context(
                        correlation_id=envelope.correlation_id,
                        account_id=envelope.account_id,
                        event_id=envelope.event_id,
                        event_type=envelope.event_type,
                    ):
                        await self._run_with_retries(topic, record, envelope, single[envelope.event_type])
                return
            log.info("batch.applied", topic=topic.name, events=len(envelopes), applied=applied)
            return

    async def _parse(  # noqa: PLR0911 - one outcome per check
        self, topic: Topic, handlers: Mapping[str, Any], msg: Any
    ) -> Envelope | None:
        """The message's envelope, or None when no handler wants it or it was dead-lettered (invalid)."""
        raw: bytes = msg.body
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            # RecursionError: deeply nested JSON ("[[[[…"), a few KB from anyone who can write to the topic. Left to
            # the signature check and the dead letter below; escaping here it stalled the partition for ever.
            data = None
        if isinstance(data, dict) and isinstance(data.get("event_type"), str) and data["event_type"] not in handlers:
            # Not for this consumer (a topic carries several event types): skipped before the signature check and
            # the contract validation, which cost ~0.3 ms per message and nothing here acts on it. A 4,000-letter
            # release is 4,000 DocumentPublished that the letters service only passes over.
            return None
        # Only the producer the registry names for this topic may have written it.
        forged = self.verifier.problem(topic.producer, raw, signature_of(getattr(msg.raw_message, "headers", None)))
        if forged is not None:
            await self._dead_letter(topic, msg, DeadLetter(topic, f"not from {topic.producer}: {forged}", "Forged"))
            return None
        try:
            if data is None:
                data = json.loads(raw)  # raises the decoding error for the dead letter's reason
            if isinstance(data, dict) and "payload_ref" in data and "payload" not in data:
                raw = await self._resolve_claim_check(data)
            envelope = parse_envelope(raw)
        except PermanentError as exc:
            await self._dead_letter(topic, msg, DeadLetter(topic, str(exc), type(exc).__name__))
            return None
        except (ValueError, RecursionError) as exc:
            await self._dead_letter(topic, msg, DeadLetter(topic, f"invalid message: {exc}", type(exc).__name__))
            return None
        if handlers.get(envelope.event_type) is None:
            return None
        # Checked on the resolved envelope: a claim check's own key lies under accounts/<account>/events/.
        foreign = _foreign_storage_key(envelope)
        if foreign is not None:
            await self._dead_letter(topic, msg, DeadLetter(topic, foreign, "ForeignStorageKey"))
            return None
        return envelope

    async def _consume(self, topic: Topic, handlers: Mapping[str, Handler], msg: KafkaMessage) -> None:
        envelope = await self._parse(topic, handlers, msg)
        if envelope is None:
            return
        handler = handlers[envelope.event_type]
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

    async def _resolve_claim_check(self, data: dict[str, Any]) -> bytes:
        """Fetch a claim-checked envelope; storage outages are retried with backoff (nothing is committed)."""
        failures = 0
        while True:
            try:
                return await asyncio.to_thread(self.claim_check.incoming, data)
            except PermanentError:
                raise
            except TRANSIENT_EXCEPTIONS as exc:
                failures += 1
                delay = min(self.backoff_seconds * 2 ** min(failures, 10), self.max_backoff_seconds)
                log.warning("claim_check.storage_unavailable", error=str(exc), retry_in=delay, failures=failures)
                await asyncio.sleep(delay)

    async def _run_with_retries(self, topic: Topic, msg: Any, envelope: Envelope, handler: Handler) -> None:
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

    async def _dead_letter(self, topic: Topic, msg: Any, dead: DeadLetter) -> None:
        """Publish ``msg`` (a KafkaMessage or one record of a batch) to the dead-letter topic with the reason."""
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


def answer_key(envelope: Envelope) -> uuid.UUID:
    """Dedup key of an ANSWER event: its id together with the request it answers (its causation id).

    A service may answer a new request with an event id it used before (same input, deterministic id), e.g. the
    splitter re-splitting an unchanged file after another file of the letter was removed. Keyed by the event id
    alone, that new answer looks like a redelivery and is dropped; keyed by (event id, request) it is new, while a
    true redelivery (same id, same request) is still recognised.
    """
    if envelope.causation_id is None:
        return envelope.event_id
    return deterministic_event_id("answer", envelope.event_id, envelope.causation_id)


class SqlIdempotency:
    """Runs a synchronous handler in one database transaction together with the processed-events ledger row."""

    def __init__(self, engine: Engine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer

    def handler(self, fn: SqlHandler, *, key: Callable[[Envelope], uuid.UUID] | None = None) -> Handler:
        """Wrap ``fn``; ``key`` chooses the dedup key (default: the event id; :func:`answer_key` for answers)."""

        async def run(envelope: Envelope) -> None:
            await asyncio.to_thread(self.run_once, fn, envelope, key)

        return run

    def run_batch(
        self,
        handlers: Mapping[str, SqlHandler],
        envelopes: list[Envelope],
        apply_batch: SqlBatchHandler | None = None,
    ) -> int:
        """Apply every envelope this consumer has not processed yet, all in ONE transaction. Returns how many."""
        with self.engine.begin() as conn:
            new = claim_events(conn, self.consumer, envelopes)
            if apply_batch is not None:
                apply_batch(conn, new)
            else:
                for envelope in new:
                    handlers[envelope.event_type](envelope, conn)
        return len(new)

    def run_once(self, fn: SqlHandler, envelope: Envelope, key: Callable[[Envelope], uuid.UUID] | None = None) -> bool:
        """Apply ``fn`` unless this consumer already processed the event. Returns whether it ran."""
        with self.engine.begin() as conn:
            if not claim_event(conn, self.consumer, key(envelope) if key else envelope.event_id):
                log.info("message.duplicate_skipped", event_id=str(envelope.event_id))
                return False
            fn(envelope, conn)
            return True


class PublishHealth:
    """What a relay knows about publishing: a message that keeps failing is surfaced, never retried silently.

    After ``stuck_after`` consecutive failures (or at once for a :class:`PermanentError` such as a message too
    large) the relay is *stuck*: ``/readyz`` reports it, every retry logs ``outbox.stuck`` at error level, and the
    row stays pending, so nothing is lost once the cause is fixed.
    """

    def __init__(self, *, stuck_after: int = 5) -> None:
        self.stuck_after = stuck_after
        self.failures = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self.permanent = False
        self.failing_event: dict[str, str] = {}

    @property
    def stuck(self) -> bool:
        return self.permanent or self.failures >= self.stuck_after

    def failed(self, exc: BaseException, event: Mapping[str, str] | None = None) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.failing_since = self.failing_since or time.time()
        self.permanent = isinstance(exc, PermanentError)
        self.failing_event = dict(event or {})
        fields = {"failures": self.failures, "error": self.last_error, **self.failing_event}
        if self.stuck:
            log.error("outbox.stuck", **fields)
        else:
            log.warning("outbox.publish_failed", **fields)

    def succeeded(self) -> None:
        if self.failures:
            log.info("outbox.recovered", failures=self.failures)
        self.failures = 0
        self.last_error = None
        self.failing_since = None
        self.permanent = False
        self.failing_event = {}

    def check(self) -> str:
        """``ok`` or a readable reason for ``/readyz``."""
        if not self.stuck:
            return "ok"
        event = ", ".join(f"{k}={v}" for k, v in self.failing_event.items())
        return f"stuck: {self.failures} failed publishes ({event}): {self.last_error}"

    def problem_for(self, *, account_id: str, letter_id: str) -> str | None:
        """The stuck publish of this letter, if any (for the letter's error state in the staff UI)."""
        event = self.failing_event
        if self.stuck and event.get("letter_id") == letter_id and event.get("account_id") == account_id:
            return f"{event.get('event_type', 'event')}: {self.last_error}"
        return None

    def status(self, account_id: str) -> dict[str, Any]:
        """For ``GET /outbox/status``: whether the relay is stuck and, within the caller's account, on which letter."""
        mine = self.failing_event.get("account_id") == account_id
        return {
            "stuck": self.stuck,
            "failures": self.failures,
            "letter_id": self.failing_event.get("letter_id") if mine else None,
            "event_type": self.failing_event.get("event_type") if mine else None,
        }

    def backoff(self, base: float, cap: float = 30.0) -> float:
        return float(min(base * 2 ** min(self.failures, 8), cap))


def _event_of(body: str | bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    fields = {k: str(data[k]) for k in ("event_type", "event_id", "account_id") if k in data}
    if isinstance(payload, dict) and "letter_id" in payload:
        fields["letter_id"] = str(payload["letter_id"])
    return fields


class OutboxRelay:
    """Publishes rows of the transactional outbox in order, then marks them; at-least-once, consumers dedupe."""

    def __init__(self, engine: Engine, publisher: EventPublisher, *, poll_seconds: float = 0.2) -> None:
        self.engine = engine
        self.publisher = publisher
        self.poll_seconds = poll_seconds
        self.health = PublishHealth()
        self._stopped = asyncio.Event()

    async def publish_pending(self) -> int:
        """Enqueue the pending rows in order, wait for their acks, mark the acknowledged prefix as published."""
        rows = await asyncio.to_thread(self._pending)
        futures: list[asyncio.Future[Any]] = []
        failure: tuple[BaseException, dict[str, Any]] | None = None
        for row in rows:
            try:
                futures.append(await self.publisher.enqueue_raw(row["topic"], row["message_key"], row["body"]))
            except Exception as exc:  # noqa: BLE001 - recorded below; the row stays pending
                failure = (exc, row)
                break
        done: list[int] = []
        for row, future in zip(rows, futures, strict=False):
            try:
                await future
            except Exception as exc:  # noqa: BLE001 - later rows are re-sent (consumers dedupe by event id)
                failure = (exc, row)
                break
            done.append(int(row["position"]))
        for future in futures[len(done) + 1 :]:
            with contextlib.suppress(Exception):
                await future
        if done:
            await asyncio.to_thread(self._mark, done)
        if failure is not None:
            self.health.failed(failure[0], _event_of(failure[1]["body"]))
            raise failure[0]
        if rows:
            self.health.succeeded()
        return len(rows)

    def _pending(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return pending_outbox(conn)

    def _mark(self, positions: list[int]) -> None:
        with self.engine.begin() as conn:
            mark_published(conn, positions)

    async def run(self) -> None:
        while not self._stopped.is_set():
            delay = self.poll_seconds
            try:
                sent = await self.publish_pending()
            except Exception:  # noqa: BLE001 - recorded and logged by PublishHealth; the row stays pending
                sent = 0
                delay = self.health.backoff(self.poll_seconds)
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)

    def stop(self) -> None:
        self._stopped.set()

    def resume(self) -> None:
        """Allow :meth:`run` again after :meth:`stop` (the next term of its lease)."""
        self._stopped.clear()
