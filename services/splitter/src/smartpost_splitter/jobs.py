"""Split jobs: a SplitRequested is accepted at once (recorded, offset committed) and split in the background.

A split can take minutes; holding the Kafka message that long outlives the consumer's lease (the offset commit
fails, the message comes back and is split again, for ever). Instead the consumer only records the request as a
job object in storage (``system/splitter/jobs/<event id>.json``) and returns; ``concurrency`` job runners take
the jobs one by one, publish the result and delete the job. At start-up every recorded job is resumed, so a crash
or a restart loses nothing; re-running a request writes the same keys and emits the same event id.

A job that was started ``max_attempts`` times without finishing (the service died each time) is given up with a
DocumentSplitFailed instead of being tried for ever. Several runners work at once, so one slow document does not
stall the documents behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, TypeVar

from smartpost_shared.contracts.envelope import Envelope, parse_envelope
from smartpost_shared.logging import get_logger, message_context
from smartpost_shared.messaging import TRANSIENT_EXCEPTIONS, PermanentError
from smartpost_shared.storage import ObjectNotFoundError, StorageUnavailableError
from smartpost_splitter.limits import internal_error, repeatedly_aborted
from smartpost_splitter.metrics import record_split_result

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from smartpost_shared.storage import ObjectStore
    from smartpost_splitter.application import SplitService

log = get_logger(__name__)
T = TypeVar("T")
JOB_PREFIX = "system/splitter/jobs/"


def job_key(envelope: Envelope) -> str:
    return f"{JOB_PREFIX}{envelope.event_id}.json"


class SplitJobs:
    def __init__(
        self,
        store: ObjectStore,
        service: SplitService,
        publish: Callable[[Envelope], Awaitable[None]],
        *,
        concurrency: int = 2,
        max_attempts: int = 3,
        retry_seconds: float = 1.0,
        lease_seconds: float = 90.0,
        rescan_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.service = service
        self.publish = publish
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.lease_seconds = lease_seconds
        self.rescan_seconds = rescan_seconds
        self.instance = uuid.uuid4().hex[:12]  # owner of the jobs this process runs (a lease, see _claim)
        self._running: dict[str, _Lease] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._known: set[str] = set()  # job keys queued or running in this process
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self.finished = 0

    # -- accepting ------------------------------------------------------------------------------------------------

    async def accept(self, envelope: Envelope) -> None:
        """Record the request as a job (durable before the offset is committed) and queue it."""
        key = job_key(envelope)
        if key in self._known:
            log.info("split_job.duplicate", key=key)
            return
        record = json.dumps({"attempts": 0, "envelope": envelope.to_bytes().decode()}).encode()
        try:
            if not await asyncio.to_thread(self.store.exists, key):
                await asyncio.to_thread(self.store.put, key, record, content_type="application/json")
        except StorageUnavailableError as exc:
            raise ConnectionError(f"object storage unavailable while accepting a split job: {exc}") from exc
        self._enqueue(key)
        log.info("split_job.accepted", key=key)

    def _enqueue(self, key: str) -> None:
        if key not in self._known:
            self._known.add(key)
            self._queue.put_nowait(key)

    async def resume(self) -> int:
        """Queue every job recorded in storage (those of a previous run that did not finish)."""
        keys = await self._storage(self.store.list, JOB_PREFIX)
        for key in sorted(keys):
            self._enqueue(key)
        if keys:
            log.info("split_job.resumed", jobs=len(keys))
        return len(keys)

    # -- running --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._runner(n), name=f"split-job-{n}") for n in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._rescan(), name="split-job-rescan"))

    async def _rescan(self) -> None:
        """Now and then queue recorded jobs again: those of an instance that died and is not restarted."""
        while True:
            await asyncio.sleep(self.rescan_seconds)
            try:
                await asyncio.wait_for(self.resume(), timeout=max(self.rescan_seconds, 5.0))
            except (TimeoutError, StorageUnavailableError):
                log.warning("split_job.rescan_failed", exc_info=True)

    async def stop(self) -> None:
        self.stopping = True
        # Give up the lease of the jobs running here: the next instance to start takes them at once.
        for lease in list(self._running.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._release(lease), timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def idle(self) -> None:
        """Wait until every queued job is done (tests)."""
        await self._queue.join()

    async def _runner(self, number: int) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never reached for a document problem (those end in DocumentSplitFailed); the job stays recorded
                # and is resumed at the next start.
                log.exception("split_job.runner_error", key=key, runner=number)
            finally:
                self._known.discard(key)
                self._queue.task_done()

    async def _process(self, key: str) -> None:
        try:
            raw = await self._storage(self.store.get, key)
        except ObjectNotFoundError:
            return  # finished meanwhile (another instance)
        record = json.loads(raw)
        try:
            envelope = parse_envelope(record["envelope"].encode())
        except (ValueError, KeyError) as exc:
            log.exception("split_job.unreadable", key=key, error=str(exc))
            await self._storage(self.store.delete, key)
            return
        owner, heartbeat = record.get("owner"), float(record.get("heartbeat", 0))
        if owner not in {None, self.instance} and time.time() - heartbeat < self.lease_seconds:
            log.info("split_job.leased_elsewhere", key=key, owner=owner)
            return  # another live instance runs it; the rescan looks again after its lease
        attempts = int(record.get("attempts", 0)) + 1
        record.update(attempts=attempts, owner=self.instance, heartbeat=time.time())
        await self._storage(self.store.put, key, json.dumps(record).encode(), content_type="application/json")
        lease = _Lease(key, record)
        self._running[key] = lease
        heartbeat_task = asyncio.create_task(self._heartbeat(lease))
        try:
            await self._run_claimed(lease, envelope, attempts)
        finally:
            await lease.end()
            heartbeat_task.cancel()
            self._running.pop(key, None)

    async def _heartbeat(self, lease: _Lease) -> None:
        """Renew the lease while the job runs (a third of the lease apart)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            async with lease.lock:
                if not lease.active:
                    return
                lease.record["heartbeat"] = time.time()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._put_record, lease.key, lease.record)

    def _put_record(self, key: str, record: dict[str, object]) -> None:
        self.store.put(key, json.dumps(record).encode(), content_type="application/json")

    async def _release(self, lease: _Lease) -> None:
        """Hand a running job back at shutdown: no owner, so the next instance to start takes it at once."""
        await lease.end()
        lease.record.update(owner=None, heartbeat=0)
        await asyncio.to_thread(self._put_record, lease.key, lease.record)

    async def _run_claimed(self, lease: _Lease, envelope: Envelope, attempts: int) -> None:
        key = lease.key
        with message_context(
            correlation_id=envelope.correlation_id,
            account_id=envelope.account_id,
            event_id=envelope.event_id,
            event_type=envelope.event_type,
        ):
            result: Envelope | None
            if attempts > self.max_attempts:
                log.error("split_job.given_up", key=key, attempts=attempts - 1)
                filename = getattr(envelope.payload, "filename", "Dokument")
                result = self.service.failed_event(envelope, repeatedly_aborted(filename, attempts - 1))
            else:
                result = await self._split(envelope)
                if result is None:  # not a split request (cannot happen through the consumer)
                    await self._storage(self.store.delete, key)
                    return
            if self.stopping:
                return  # interrupted by the shutdown (workers killed): resumed at the next start
            await self._publish(envelope, result)
            await lease.end()  # no heartbeat may write the record again once it is deleted
            await self._storage(self.store.delete, key)
            self.finished += 1

    async def _split(self, envelope: Envelope) -> Envelope | None:
        delay = self.retry_seconds
        while True:
            try:
                started = time.perf_counter()
                result = await asyncio.to_thread(self.service.handle, envelope)
            except PermanentError as exc:
                log.exception("split_job.not_a_split_request", error=str(exc))
                return None
            except TRANSIENT_EXCEPTIONS as exc:
                if self.stopping:
                    raise
                log.warning("split_job.transient_failure", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                record_split_result(result, time.perf_counter() - started)
                return result

    async def _publish(self, cause: Envelope, result: Envelope) -> None:
        delay = self.retry_seconds
        while True:
            try:
                await self.publish(result)
            except Exception as exc:
                if _retriable(exc):
                    log.warning("split_job.publish_retry", error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if result.event_type != "DocumentSplit":
                    raise
                # e.g. the event is larger than the broker accepts: staff must still learn that the split failed
                log.exception("split_job.publish_failed", event_type=result.event_type)
                filename = getattr(cause.payload, "filename", "Dokument")
                result = self.service.failed_event(cause, internal_error(filename, str(cause.correlation_id)))
            else:
                return

    async def _storage(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        delay = self.retry_seconds
        while True:
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except StorageUnavailableError as exc:
                log.warning("split_job.storage_unavailable", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class _Lease:
    """A claim of this instance on a running job; ended before the job is deleted or handed back."""

    def __init__(self, key: str, record: dict[str, object]) -> None:
        self.key = key
        self.record = record
        self.lock = asyncio.Lock()
        self.active = True

    async def end(self) -> None:
        async with self.lock:
            self.active = False


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    return bool(getattr(exc, "retriable", False))
