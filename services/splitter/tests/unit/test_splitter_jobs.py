"""Split jobs: accepted at once and recorded, split in the background, resumed after a restart, never looping."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from splitter_hostile_corpus import FIXED_1, control_letter

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed
from smartpost_shared.storage import MemoryStore
from smartpost_splitter.adapters.sandbox import InlineRunner
from smartpost_splitter.application import SplitService, SplitterOptions
from smartpost_splitter.jobs import JOB_PREFIX, SplitJobs, job_key

from .splitter_helpers import request_envelope

if TYPE_CHECKING:
    from smartpost_shared.contracts.envelope import Envelope


class _Published:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.events.append(envelope)


def _service(store: MemoryStore) -> SplitService:
    return SplitService(store, InlineRunner(), SplitterOptions(upload_threads=2, thumbnail_width=100))


def _request(store: MemoryStore, document_id: str = "doc-1") -> Envelope:
    envelope = request_envelope(FIXED_1, document_id=document_id)
    store.put(envelope.payload.source_key, control_letter(), content_type="application/pdf")  # type: ignore[union-attr]
    return envelope


async def test_a_request_is_recorded_before_the_consumer_returns_and_removed_when_published() -> None:
    store = MemoryStore()
    published = _Published()
    jobs = SplitJobs(store, _service(store), published)
    envelope = _request(store)
    await jobs.accept(envelope)  # the consumer commits the offset after this
    assert store.exists(job_key(envelope))
    assert json.loads(store.get(job_key(envelope)))["attempts"] == 0
    jobs.start()
    try:
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    (event,) = published.events
    assert isinstance(event.payload, DocumentSplit)
    assert event.causation_id == envelope.event_id
    assert store.list(JOB_PREFIX) == []


async def test_jobs_of_a_previous_run_are_resumed_at_start_with_the_same_result() -> None:
    store = MemoryStore()
    envelope = _request(store)
    first = _Published()
    crashed = SplitJobs(store, _service(store), first)
    await crashed.accept(envelope)  # ... and the service died before running it
    restarted = SplitJobs(store, _service(store), second := _Published())
    restarted.start()
    try:
        assert await restarted.resume() == 1
        await asyncio.wait_for(restarted.idle(), 30)
    finally:
        await restarted.stop()
    assert first.events == []
    (event,) = second.events
    assert isinstance(event.payload, DocumentSplit)
    # the same request gives the same event as an uninterrupted run (consumers deduplicate it)
    again = _service(store).handle(envelope)
    assert again.event_id == event.event_id
    assert store.list(JOB_PREFIX) == []


async def test_a_job_that_never_finishes_is_given_up_with_a_reason_not_retried_for_ever() -> None:
    store = MemoryStore()
    envelope = _request(store)
    record = {"attempts": 3, "envelope": envelope.to_bytes().decode()}  # started three times, died each time
    store.put(job_key(envelope), json.dumps(record).encode(), content_type="application/json")
    jobs = SplitJobs(store, _service(store), published := _Published(), max_attempts=3)
    jobs.start()
    try:
        await jobs.resume()
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    (event,) = published.events
    assert isinstance(event.payload, DocumentSplitFailed)
    assert "3-mal abgebrochen" in event.payload.reason
    assert store.list(JOB_PREFIX) == []


class _SlowFirst:
    """A split service whose first document takes until the second one is done."""

    def __init__(self, slow_document: str) -> None:
        self.slow_document = slow_document
        self.fast_done = threading.Event()
        self.order: list[str] = []

    def handle(self, envelope: Envelope) -> Envelope:
        document = envelope.payload.document_id  # type: ignore[union-attr]
        if document == self.slow_document:
            assert self.fast_done.wait(20), "the slow document blocked the other one"
        self.order.append(document)
        if document != self.slow_document:
            self.fast_done.set()
        return envelope

    def failed_event(self, envelope: Envelope, failure: Any) -> Envelope:
        raise AssertionError(failure)


async def test_a_slow_document_does_not_block_the_next_one() -> None:
    store = MemoryStore()
    service = _SlowFirst("slow")
    jobs = SplitJobs(store, service, _Published(), concurrency=2)  # type: ignore[arg-type]
    jobs.start()
    try:
        await jobs.accept(_request(store, "slow"))
        await jobs.accept(_request(store, "fast"))
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    assert service.order == ["fast", "slow"]


async def test_a_redelivered_request_is_not_queued_twice() -> None:
    store = MemoryStore()
    jobs = SplitJobs(store, _service(store), published := _Published())
    envelope = _request(store)
    await jobs.accept(envelope)
    await jobs.accept(envelope)
    jobs.start()
    try:
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    assert len(published.events) == 1


class _TooLargeError(Exception):
    retriable = False


async def test_a_result_the_broker_refuses_becomes_a_failure_staff_see() -> None:
    store = MemoryStore()
    sent: list[Envelope] = []

    async def publish(envelope: Envelope) -> None:
        if isinstance(envelope.payload, DocumentSplit):
            raise _TooLargeError("MessageSizeTooLargeError")
        sent.append(envelope)

    jobs = SplitJobs(store, _service(store), publish)
    envelope = _request(store)
    await jobs.accept(envelope)
    jobs.start()
    try:
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    (event,) = sent
    assert isinstance(event.payload, DocumentSplitFailed)
    assert str(envelope.correlation_id) in event.payload.reason
    assert store.list(JOB_PREFIX) == []


async def test_a_job_leased_by_a_live_instance_is_left_alone_until_its_lease_expires() -> None:
    store = MemoryStore()
    envelope = _request(store)
    record = {"attempts": 1, "envelope": envelope.to_bytes().decode(), "owner": "other", "heartbeat": time.time()}
    store.put(job_key(envelope), json.dumps(record).encode(), content_type="application/json")
    jobs = SplitJobs(store, _service(store), published := _Published(), lease_seconds=60)
    jobs.start()
    try:
        await jobs.resume()
        await asyncio.wait_for(jobs.idle(), 30)
        assert published.events == []  # the other instance is alive: no double work
        assert store.exists(job_key(envelope))
        record["heartbeat"] = time.time() - 120  # ... it died and was not restarted: its lease runs out
        store.put(job_key(envelope), json.dumps(record).encode(), content_type="application/json")
        await jobs.resume()  # what the periodic rescan does
        await asyncio.wait_for(jobs.idle(), 30)
    finally:
        await jobs.stop()
    (event,) = published.events
    assert isinstance(event.payload, DocumentSplit)
    assert store.list(JOB_PREFIX) == []


class _Blocking:
    """A split service that runs until released (a long split)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def handle(self, envelope: Envelope) -> Envelope:
        self.started.set()
        self.release.wait(20)
        return envelope


async def test_at_shutdown_a_running_job_is_handed_back_not_published() -> None:
    store = MemoryStore()
    service = _Blocking()
    jobs = SplitJobs(store, service, published := _Published(), lease_seconds=60)  # type: ignore[arg-type]
    envelope = _request(store)
    await jobs.accept(envelope)
    jobs.start()
    assert await asyncio.to_thread(service.started.wait, 10)
    leased = json.loads(store.get(job_key(envelope)))
    assert leased["owner"] == jobs.instance
    assert leased["attempts"] == 1
    stopping = asyncio.create_task(jobs.stop())
    await asyncio.sleep(0.2)
    service.release.set()
    await stopping
    assert published.events == []
    handed_back = json.loads(store.get(job_key(envelope)))
    assert handed_back["owner"] is None  # the next instance to start takes it at once
