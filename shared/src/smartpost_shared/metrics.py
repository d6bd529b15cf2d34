"""Prometheus metrics for every service: ``GET /metrics``, HTTP latency by route, numbers read at scrape time.

Two kinds of numbers:
- **events as they happen** (process counters in the default registry): dead-lettered messages by reason, split
  pages and seconds, HTTP requests and their latency. Prometheus adds them up over replicas and restarts.
- **state read when Prometheus scrapes** (:class:`ScrapeSource`): consumer lag per group and partition (asked from
  the broker), outbox backlog and age, letters by state and how long they have waited, assignments automatic or for
  review, mails by status, mailpieces by status. Read from the service's own database, so every replica reports the
  same value (use ``max`` across replicas in queries) and a restart loses nothing.

A failing source never breaks the endpoint: it reports ``smartpost_metrics_source_up{source=...} 0`` and logs.
Names start with ``smartpost_``; ``deploy/prometheus/rules.yaml`` and the Grafana dashboard use only names listed in
:data:`METRIC_NAMES` (the deploy tests check that).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from smartpost_shared.db import outbox
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

    from fastapi import FastAPI
    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Engine
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from smartpost_shared.settings import KafkaSettings

log = get_logger(__name__)

# --- events as they happen (default registry, one per process) ----------------------------------------------------

HTTP_LATENCY = Histogram(
    "smartpost_http_request_duration_seconds",
    "HTTP request latency by route template (not the raw path, so ids do not explode the label set)",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DEAD_LETTERED = Counter(
    "smartpost_dead_lettered",
    "Messages this process moved to a dead-letter topic, by source topic and reason category",
    ["service", "topic", "reason", "error_type"],
)
SPLIT_PAGES = Counter("smartpost_split_pages", "Source pages the splitter processed", ["outcome"])
SPLIT_DOCUMENTS = Counter("smartpost_split_documents", "Documents the splitter processed", ["outcome"])
SPLIT_SECONDS = Histogram(
    "smartpost_split_seconds",
    "Wall-clock seconds to split one document (checks, text, cut, thumbnails, upload)",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0),
)

# Every series name a rule or dashboard may use (counters are exposed with ``_total``, histograms with
# ``_bucket``/``_sum``/``_count``).
METRIC_NAMES = frozenset(
    {
        "smartpost_http_request_duration_seconds",
        "smartpost_dead_lettered_total",
        "smartpost_split_pages_total",
        "smartpost_split_documents_total",
        "smartpost_split_seconds",
        "smartpost_metrics_source_up",
        "smartpost_consumer_lag",
        "smartpost_consumer_committed_offset",
        "smartpost_topic_end_offset",
        "smartpost_dead_letter_topic_messages",
        "smartpost_outbox_backlog",
        "smartpost_outbox_oldest_age_seconds",
        "smartpost_letters",
        "smartpost_letters_oldest_waiting_seconds",
        "smartpost_letters_stuck",
        "smartpost_letters_stuck_oldest_seconds",
        "smartpost_assignment_parts",
        "smartpost_mails",
        "smartpost_mails_deferred",
        "smartpost_mails_oldest_pending_seconds",
        "smartpost_mailpieces",
        "smartpost_mailpieces_oldest_unsubmitted_seconds",
        "smartpost_mailpieces_submit_retrying",
        "smartpost_lease_held",
        "smartpost_stale_events_total",
    }
)


def reason_category(reason: str) -> str:
    """A small, fixed set of reasons for the label (the full text stays in the DLQ headers and the log)."""
    if reason.startswith("invalid message"):
        return "invalid_message"
    if reason.startswith("handler failed"):
        return "handler_failed"
    return "rejected"  # PermanentError and its kin: the handler refused the message


def count_dead_letter(service: str, topic: str, reason: str, error_type: str) -> None:
    DEAD_LETTERED.labels(service, topic, reason_category(reason), error_type[:60]).inc()


def record_split(outcome: str, pages: int, seconds: float) -> None:
    """One document split (``outcome``: ``split`` or ``failed``) with its source page count."""
    SPLIT_DOCUMENTS.labels(outcome).inc()
    if pages:
        SPLIT_PAGES.labels(outcome).inc(pages)
    SPLIT_SECONDS.labels(outcome).observe(seconds)


# --- state read at scrape time ------------------------------------------------------------------------------------


class ScrapeSource(Protocol):
    """Reads some state when Prometheus scrapes; synchronous sources run in a worker thread."""

    name: str

    def collect(self) -> Iterable[Metric]: ...


class AsyncScrapeSource(Protocol):
    name: str

    async def collect_async(self) -> list[Metric]: ...


def _age_seconds(oldest: datetime | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive datetimes (stored as UTC)
        oldest = oldest.replace(tzinfo=UTC)
    return max((now - oldest).total_seconds(), 0.0)


@dataclass
class OutboxSource:
    """Backlog and age of the shared transactional outbox (``smartpost_shared.db.outbox``)."""

    engine: Engine
    service: str
    name: str = "outbox"

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
            ).one()
        backlog = GaugeMetricFamily(
            "smartpost_outbox_backlog", "Outgoing events written but not yet published", labels=["service"]
        )
        backlog.add_metric([self.service], float(count))
        age = GaugeMetricFamily(
            "smartpost_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outgoing event (0 when the outbox is empty)",
            labels=["service"],
        )
        age.add_metric([self.service], _age_seconds(oldest, datetime.now(UTC)))
        return [backlog, age]


@dataclass
class StuckClock:
    """Ages a backlog that has no timestamps: seconds since the position last moved while work was waiting."""

    _position: int | None = None
    _since: float = field(default_factory=time.monotonic)

    def age(self, position: int, backlog: int) -> float:
        now = time.monotonic()
        if position != self._position or backlog == 0:
            self._position = position
            self._since = now
            return 0.0
        return now - self._since


@dataclass
class CallableSource:
    """A source from a plain function (for service-specific queries)."""

    name: str
    fn: Callable[[], Iterable[Metric]]

    def collect(self) -> Iterable[Metric]:
        return self.fn()


class KafkaLagSource:
    """Consumer lag per group, topic and partition for the broker's subscribers, plus dead-letter topic depth.

    Asks the broker at scrape time (committed offsets of the group, end offsets of the partitions), like a
    kafka-exporter would, so the number is the group's, not this replica's. Results are cached for a few seconds so
    several scrapers do not multiply broker requests.
    """

    name = "kafka"

    def __init__(
        self,
        kafka: KafkaSettings,
        subscriptions: Callable[[], list[tuple[str, str]]],
        *,
        cache_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.kafka = kafka
        self.subscriptions = subscriptions
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = asyncio.Lock()

    async def collect_async(self) -> list[Metric]:
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            families = await asyncio.wait_for(self._read(), self.timeout_seconds)
            self._cached = (time.monotonic(), families)
            return families

    async def _read(self) -> list[Metric]:
        from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - only services with Kafka need it
        from aiokafka.structs import TopicPartition  # noqa: PLC0415

        from smartpost_shared.topics import ALL_TOPICS  # noqa: PLC0415 - avoid import cycle

        subs = sorted(set(self.subscriptions()))
        lag = GaugeMetricFamily(
            "smartpost_consumer_lag",
            "Messages in the partition after the group's committed offset",
            labels=["group", "topic", "partition"],
        )
        committed_f = GaugeMetricFamily(
            "smartpost_consumer_committed_offset",
            "The group's committed offset",
            labels=["group", "topic", "partition"],
        )
        end_f = GaugeMetricFamily(
            "smartpost_topic_end_offset", "End offset (next offset to be written)", labels=["topic", "partition"]
        )
        dlq_f = GaugeMetricFamily(
            "smartpost_dead_letter_topic_messages",
            "Records held in a dead-letter topic (end minus first offset, all partitions; re-drive markers included)",
            labels=["topic"],
        )
        topics = sorted({topic for _, topic in subs})
        known = {t.name: t for t in ALL_TOPICS}
        dlq_topics = sorted({known[t].dead_letter for t in topics if t in known})
        servers = self.kafka.bootstrap_servers
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **self.kafka.client_kwargs())
        await consumer.start()
        try:
            partitions: dict[str, list[TopicPartition]] = {}
            for topic in [*topics, *dlq_topics]:
                ids = consumer.partitions_for_topic(topic)
                if ids is None:
                    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
                    ids = consumer.partitions_for_topic(topic)
                partitions[topic] = [TopicPartition(topic, p) for p in sorted(ids or ())]
            all_tps = [tp for tps in partitions.values() for tp in tps]
            # Committed offsets first, end offsets after: lag is never under-reported by a commit in between.
            committed_by_group = {
                group: await self._committed(group, [tp for g, t in subs if g == group for tp in partitions[t]])
                for group in sorted({g for g, _ in subs})
            }
            ends = await consumer.end_offsets(all_tps) if all_tps else {}
            begins = await consumer.beginning_offsets(all_tps) if all_tps else {}
        finally:
            await consumer.stop()
        for topic in topics:
            for tp in partitions.get(topic, []):
                end_f.add_metric([topic, str(tp.partition)], float(ends.get(tp, 0)))
        for group, offsets in committed_by_group.items():
            for tp in sorted(offsets):
                stored = offsets.get(tp)
                committed = stored if stored is not None and stored >= 0 else begins.get(tp, 0)
                labels = [group, tp.topic, str(tp.partition)]
                committed_f.add_metric(labels, float(committed))
                lag.add_metric(labels, float(max(ends.get(tp, 0) - committed, 0)))
        for topic in dlq_topics:
            depth = sum(ends.get(tp, 0) - begins.get(tp, 0) for tp in partitions.get(topic, []))
            dlq_f.add_metric([topic], float(depth))
        return [lag, committed_f, end_f, dlq_f]

    async def _committed(self, group: str, tps: list[Any]) -> dict[Any, int | None]:
        timeout_ms = int(self.timeout_seconds * 1000)
        return await _committed_offsets(
            self.kafka.bootstrap_servers, group, tps, timeout_ms, **self.kafka.client_kwargs()
        )


async def _committed_offsets(
    servers: str, group: str, tps: list[Any], timeout_ms: int, **security: Any
) -> dict[Any, int | None]:
    """The group's committed offsets, read the way its members read them (OffsetFetch through the coordinator).

    A consumer with the group id but no subscription never joins the group, so it does not disturb the members.
    """
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    reader = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=timeout_ms,
        **security,
    )
    await reader.start()
    try:
        result: dict[Any, int | None] = {}
        for tp in tps:
            result[tp] = await reader.committed(tp)
        return result
    finally:
        await reader.stop()


def broker_subscriptions(app: FastAPI) -> Callable[[], list[tuple[str, str]]]:
    """(group, topic) of every Kafka subscriber of ``app.state.broker`` (set at creation or in the lifespan)."""

    def read() -> list[tuple[str, str]]:
        broker = getattr(app.state, "broker", None)
        if broker is None:
            return []
        result: list[tuple[str, str]] = []
        for sub in broker.subscribers:
            group = getattr(sub, "group_id", None)
            for topic in getattr(sub, "topics", []):
                name = getattr(topic, "name", topic)
                if group:
                    result.append((str(group), str(name)))
        return result

    return read


# --- HTTP middleware and the endpoint -----------------------------------------------------------------------------


class HttpMetricsMiddleware:
    """Times every HTTP request and labels it with the matched route template (``/letters/{letter_id}``)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            if route != "/metrics":
                HTTP_LATENCY.labels(self.service, scope.get("method", ""), route, str(status["code"])).observe(
                    time.perf_counter() - start
                )


_MOUNT = re.compile(r"^(/[^/]*)")


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    if scope.get("app_root_path") or scope.get("root_path"):
        mount = _MOUNT.match(str(scope.get("root_path", "")))
        if mount:
            return mount.group(1) + "/*"
    return "unmatched"


@dataclass
class MetricsHub:
    service: str
    sources: list[ScrapeSource] = field(default_factory=list)
    async_sources: list[AsyncScrapeSource] = field(default_factory=list)

    async def render(self) -> bytes:
        families: list[Metric] = []
        up = GaugeMetricFamily(
            "smartpost_metrics_source_up", "1 when a metrics source could be read", labels=["service", "source"]
        )
        for source in self.sources:
            ok = await self._guard(source.name, asyncio.to_thread(_collect_list, source), families)
            up.add_metric([self.service, source.name], 1.0 if ok else 0.0)
        for asource in self.async_sources:
            ok = await self._guard(asource.name, asource.collect_async(), families)
            up.add_metric([self.service, asource.name], 1.0 if ok else 0.0)
        families.append(up)
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Families(families))
        return generate_latest(REGISTRY) + generate_latest(scrape)

    async def _guard(self, name: str, work: Awaitable[list[Metric]], into: list[Metric]) -> bool:
        try:
            into.extend(await work)
        except Exception:
            log.warning("metrics.source_failed", source=name, exc_info=True)
            return False
        return True


def _collect_list(source: ScrapeSource) -> list[Metric]:
    return list(source.collect())


@dataclass(eq=False)
class _Families:
    families: list[Any]

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def install_metrics(
    app: FastAPI,
    service: str,
    *,
    sources: Iterable[ScrapeSource] = (),
    kafka: KafkaSettings | None = None,
) -> MetricsHub:
    """Add ``GET /metrics`` and the HTTP latency middleware; with ``kafka``, consumer lag of ``app.state.broker``."""
    from fastapi import Response  # noqa: PLC0415

    hub = MetricsHub(service, list(sources))
    if kafka is not None:
        hub.async_sources.append(KafkaLagSource(kafka, broker_subscriptions(app)))
    app.add_middleware(HttpMetricsMiddleware, service=service)
    app.state.metrics = hub

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await hub.render(), media_type=CONTENT_TYPE_LATEST)

    return hub
