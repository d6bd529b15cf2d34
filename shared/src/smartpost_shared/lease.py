"""Leases: one owner at a time for work that must not run twice at once, in the service's own database.

Consumers share work through Kafka consumer groups; what is not a Kafka message (an outbox relay, the notifier's
sender and its recovery, print submission, scheduled jobs) runs only in the replica that holds the lease:

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated connection. The server
  releases it the moment that session ends, so a replica killed with SIGKILL hands over at once. Renewal checks in
  ``pg_locks`` that this session still holds it.
- **SQLite** (one machine, one file): a row in ``leases`` with an expiry. Acquire = update the row if it is ours or
  expired (or insert it), renew = push the expiry out while still ours, release = expire it now. SQLite's write lock
  (``BEGIN IMMEDIATE``) serialises the contenders.

Both record the holder in the ``leases`` table, so a new holder knows whether the previous one released cleanly.
If it did not (crash, lost connection), :class:`Leadership` waits ``takeover_delay`` before starting the work: a
holder that is still alive but lost its lease notices at its next renewal and stops first. The work gets a stop
event that is set when the lease is lost or the service stops; it must finish its current step and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Gauge
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from sqlalchemy.engine import Connection, Engine

    from smartpost_shared.settings import LeaseSettings

log = get_logger(__name__)

lease_metadata = MetaData()

leases = Table(
    "leases",
    lease_metadata,
    Column("name", String(200), primary_key=True),
    # The replica (pod name / SMARTPOST_REPLICA_ID) and the process (token) that hold the lease.
    Column("holder", String(200), nullable=True),
    Column("token", String(64), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=True),
    # Grows by one with every change of holder (a fencing token for logs and tests).
    Column("term", Integer, nullable=False, default=0),
)

LEASE_HELD = Gauge("smartpost_lease_held", "1 while this process holds the lease", ["lease", "holder"])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def default_holder() -> str:
    """The replica's identity when none is configured: the host name (in Kubernetes the pod name).

    A process restarted in the same replica (a container restart keeps the pod name) takes over its predecessor's
    lease at once: that process is dead. Run one process per replica identity (``LeaseSettings.replica_id``,
    ``SMARTPOST_REPLICA_ID``, when several replicas share one host).
    """
    return socket.gethostname()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Acquired:
    term: int
    clean: bool  # False: the previous holder did not release (crash, lost connection) -> wait before working


class Lease(Protocol):
    name: str
    holder: str

    def try_acquire(self) -> Acquired | None: ...

    def renew(self) -> bool: ...

    def release(self) -> None: ...


def make_lease(engine: Engine, name: str, *, holder: str | None = None, ttl_seconds: float = 15.0) -> Lease:
    """The right lease for the engine's database: advisory lock on PostgreSQL, lease row with expiry elsewhere."""
    holder = holder or default_holder()
    if engine.dialect.name == "postgresql":
        return AdvisoryLease(engine, name, holder)
    return RowLease(engine, name, holder, ttl=timedelta(seconds=ttl_seconds))


def create_lease_table(engine: Engine) -> None:
    """Create ``leases`` if missing; replicas starting together may race, the loser finds it there."""
    try:
        lease_metadata.create_all(engine, checkfirst=True)
    except (ProgrammingError, OperationalError, IntegrityError):
        if not inspect(engine).has_table("leases"):
            raise


def _record_holder(conn: Connection, name: str, holder: str, token: str, expires_at: datetime) -> Acquired | None:
    """Take the row if it is free, this replica's or expired; insert it when missing. None when another holds it."""
    now = _now()
    row = conn.execute(select(leases).where(leases.c.name == name)).mappings().first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(leases).values(
                        name=name, holder=holder, token=token, expires_at=expires_at, acquired_at=now, term=1
                    )
                )
        except IntegrityError:
            return None
        return Acquired(term=1, clean=True)
    previous = row["holder"]
    clean = previous in (None, holder)
    term = int(row["term"]) + (0 if previous == holder and row["token"] == token else 1)
    result = conn.execute(
        update(leases)
        .where(
            and_(
                leases.c.name == name,
                or_(leases.c.holder.is_(None), leases.c.holder == holder, leases.c.expires_at < now),
            )
        )
        .values(holder=holder, token=token, expires_at=expires_at, acquired_at=now, term=term)
    )
    if result.rowcount != 1:
        return None
    return Acquired(term=term, clean=clean)


class RowLease:
    """A lease row with an expiry (SQLite; works on any SQL database whose replicas share one clock)."""

    def __init__(self, engine: Engine, name: str, holder: str, *, ttl: timedelta) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.token = uuid.uuid4().hex
        self.ttl = ttl
        self._table_ready = False

    def try_acquire(self) -> Acquired | None:
        if not self._table_ready:  # here, not at construction: the database may still be starting
            create_lease_table(self.engine)
            self._table_ready = True
        with self.engine.begin() as conn:
            return _record_holder(conn, self.name, self.holder, self.token, _now() + self.ttl)

    def renew(self) -> bool:
        now = _now()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(leases)
                .where(and_(leases.c.name == self.name, leases.c.token == self.token, leases.c.expires_at >= now))
                .values(expires_at=now + self.ttl)
            )
            return result.rowcount == 1

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(leases)
                .where(and_(leases.c.name == self.name, leases.c.token == self.token))
                .values(holder=None, token=None, expires_at=_EPOCH)
            )


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from the lease name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class AdvisoryLease:
    """A PostgreSQL session-level advisory lock on a dedicated autocommit connection."""

    def __init__(self, engine: Engine, name: str, holder: str) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.token = uuid.uuid4().hex
        self.key = advisory_key(name)
        self._conn: Connection | None = None
        self._table_ready = False

    def try_acquire(self) -> Acquired | None:
        if not self._table_ready:
            create_lease_table(self.engine)
            self._table_ready = True
        if self._conn is not None:
            return Acquired(term=0, clean=True) if self.renew() else None
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        self._conn = conn
        try:
            with self.engine.begin() as tx:
                # The lock decides; the row only says who holds it and whether the last holder let go cleanly.
                tx.execute(
                    update(leases)
                    .where(and_(leases.c.name == self.name, leases.c.holder.is_not(None)))
                    .values(expires_at=_EPOCH)
                )
                acquired = _record_holder(tx, self.name, self.holder, self.token, datetime(9999, 1, 1, tzinfo=UTC))
        except Exception:
            self._drop()
            raise
        if acquired is None:  # cannot happen while we hold the lock; be safe
            self._drop()
        return acquired

    def renew(self) -> bool:
        if self._conn is None:
            return False
        high, low = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                    "AND classid = :high AND objid = :low AND objsubid = 1 AND granted"
                ),
                {"high": high, "low": low},
            ).scalar()
        except Exception:
            log.warning("lease.session_lost", lease=self.name, exc_info=True)
            self._drop()
            return False
        if not held:
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            with self.engine.begin() as tx:
                tx.execute(
                    update(leases)
                    .where(and_(leases.c.name == self.name, leases.c.token == self.token))
                    .values(holder=None, token=None, expires_at=_EPOCH)
                )
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        finally:
            self._drop()

    def _drop(self) -> None:
        # Invalidate, do not return to the pool: a pooled session would keep the advisory lock.
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


@dataclass
class Leadership:
    """Runs ``work(stop)`` only while this process holds ``lease``; other replicas wait and take over.

    ``renew_seconds`` must be well below the row lease's TTL (a third is usual).
    """

    lease: Lease
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0
    takeover_delay: float = 15.0
    stop_timeout: float = 20.0
    terms: int = 0
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stopped.set()

    async def run(self, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        """Until :meth:`stop`: acquire, run the work while renewing, stop the work when the lease is lost."""
        LEASE_HELD.labels(self.lease.name, self.lease.holder).set(0)  # every replica reports, holder or not
        while not self._stopped.is_set():
            try:
                acquired = await asyncio.to_thread(self.lease.try_acquire)
            except Exception:
                log.warning("lease.acquire_failed", lease=self.lease.name, exc_info=True)
                acquired = None
            if acquired is None:
                await self._sleep(self.retry_seconds)
                continue
            await self._term(acquired, work)
        LEASE_HELD.labels(self.lease.name, self.lease.holder).set(0)

    async def _term(self, acquired: Acquired, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.terms += 1
        log.info("lease.acquired", lease=self.lease.name, holder=self.lease.holder, term=acquired.term)
        work_stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            if not acquired.clean:
                # The previous holder did not let go: give a still-living one time to notice and stop.
                log.warning("lease.takeover_wait", lease=self.lease.name, seconds=self.takeover_delay)
                if not await self._keep_while_waiting(self.takeover_delay):
                    return
            self.held.set()
            LEASE_HELD.labels(self.lease.name, self.lease.holder).set(1)
            task = asyncio.create_task(work(work_stop), name=f"lease:{self.lease.name}")
            while not self._stopped.is_set() and not task.done():
                await self._sleep(self.renew_seconds, task)
                if self._stopped.is_set() or task.done():
                    break
                if not await self._renew():
                    log.warning("lease.lost", lease=self.lease.name, holder=self.lease.holder)
                    break
        finally:
            self.held.clear()
            LEASE_HELD.labels(self.lease.name, self.lease.holder).set(0)
            work_stop.set()
            if task is not None:
                await self._finish(task)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.lease.release)
            log.info("lease.released", lease=self.lease.name, holder=self.lease.holder)

    async def _keep_while_waiting(self, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            await self._sleep(min(left, self.renew_seconds))
            if self._stopped.is_set() or not await self._renew():
                return False
        return True

    async def _renew(self) -> bool:
        try:
            return await asyncio.to_thread(self.lease.renew)
        except Exception:
            log.warning("lease.renew_failed", lease=self.lease.name, exc_info=True)
            return False

    async def _finish(self, task: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception:
            log.exception("lease.work_failed", lease=self.lease.name)

    async def _sleep(self, seconds: float, task: asyncio.Task[None] | None = None) -> None:
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._stopped.wait())]
        if task is not None:
            waiters.append(task)  # type: ignore[arg-type]
        done, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        del done
        for waiter in pending:
            if waiter is not task:
                waiter.cancel()


class Relay(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def resume(self) -> None: ...


def relay_work(relay: Relay) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """Lease work from an outbox relay's ``run()``/``stop()`` loop; ``resume()`` lets it run again next term."""

    async def work(stop: asyncio.Event) -> None:
        relay.resume()
        task = asyncio.ensure_future(relay.run())
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        relay.stop()
        waiter.cancel()
        await task

    return work


def periodic_work(
    run: Callable[[], object], interval_seconds: float, *, failed_event: str
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """Lease work for a scheduled job: ``run`` (in a thread) now and then every ``interval_seconds``.

    It stops when the lease is lost or the service stops; a failing run is logged as ``failed_event`` (warning) and
    retried next interval.
    """

    async def work(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(run)
            except Exception:
                log.warning(failed_event, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_seconds)

    return work


def leadership(engine: Engine, name: str, settings: LeaseSettings, *, holder: str | None = None) -> Leadership:
    """The :class:`Leadership` for one named piece of single-owner work in this service's database."""
    lease = make_lease(engine, name, holder=holder or settings.replica_id, ttl_seconds=settings.ttl_seconds)
    return Leadership(
        lease,
        renew_seconds=settings.renew_seconds,
        retry_seconds=settings.retry_seconds,
        takeover_delay=settings.takeover_seconds,
        stop_timeout=max(settings.ttl_seconds, 5.0),
    )
