"""Leases on real databases (SQLite file and PostgreSQL): two holders never both hold; hand-over after loss."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from smartpost_shared.db import make_engine
from smartpost_shared.lease import AdvisoryLease, Leadership, RowLease, leases, make_lease

pytestmark = pytest.mark.real


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, sqlite_url):
    if request.param == "sqlite":
        yield sqlite_url
    else:
        yield request.getfixturevalue("postgres_url")


def test_make_lease_picks_advisory_lock_on_postgres_and_lease_row_on_sqlite(db_url):
    engine = make_engine(db_url)
    try:
        lease = make_lease(engine, "x", holder="a")
        expected = AdvisoryLease if db_url.startswith("postgresql") else RowLease
        assert isinstance(lease, expected)
    finally:
        engine.dispose()


def test_second_holder_is_refused_until_the_first_releases(db_url):
    engine = make_engine(db_url)
    try:
        a = make_lease(engine, "relay", holder="replica-a", ttl_seconds=30)
        b = make_lease(engine, "relay", holder="replica-b", ttl_seconds=30)
        first = a.try_acquire()
        assert first is not None
        assert first.clean
        assert b.try_acquire() is None
        assert a.renew()
        a.release()
        got = b.try_acquire()
        assert got is not None
        assert got.clean  # a let go properly: no takeover wait
        assert not a.renew()
        assert a.try_acquire() is None
        b.release()
    finally:
        engine.dispose()


def test_row_lease_expires_and_the_old_holder_cannot_renew(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        a = make_lease(engine, "digest", holder="replica-a", ttl_seconds=0.3)
        b = make_lease(engine, "digest", holder="replica-b", ttl_seconds=0.3)
        assert a.try_acquire() is not None
        assert b.try_acquire() is None
        time.sleep(0.4)  # a stopped renewing (paused, partitioned): the lease runs out
        got = b.try_acquire()
        assert got is not None
        assert not got.clean  # a never released: the new holder waits before working
        assert not a.renew()  # a notices at its next renewal and stops
        with engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == "digest")).mappings().one()
        assert row["holder"] == "replica-b"
        assert row["term"] == 2
    finally:
        engine.dispose()


def test_postgres_advisory_lock_is_freed_when_the_holding_process_is_killed(postgres_url, tmp_path):
    """SIGKILL the holder: PostgreSQL ends its session and the lock is free at once (no expiry to wait for)."""
    script = tmp_path / "holder.py"
    script.write_text(
        "import sys, time\n"
        "from smartpost_shared.db import make_engine\n"
        "from smartpost_shared.lease import make_lease\n"
        "lease = make_lease(make_engine(sys.argv[1]), 'print-submit', holder='replica-a')\n"
        "assert lease.try_acquire() is not None\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), postgres_url], stdout=subprocess.PIPE)
    engine = make_engine(postgres_url)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"held"
        b = make_lease(engine, "print-submit", holder="replica-b")
        assert b.try_acquire() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            got = b.try_acquire()
            time.sleep(0.05)
        assert got is not None
        assert not got.clean  # replica-a never released
        assert b.renew()
        b.release()
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()


def test_many_contenders_never_hold_at_once(db_url):
    """Eight threads, each its own replica, hammer acquire/renew/release; an overlap counter must stay at one."""
    engine = make_engine(db_url)
    holding = 0
    max_holding = 0
    acquisitions = 0
    guard = threading.Lock()
    errors: list[BaseException] = []
    stop = time.monotonic() + 3.0
    contenders = [make_lease(engine, "outbox-relay", holder=f"replica-{i}", ttl_seconds=5) for i in range(8)]

    def contender(i: int) -> None:
        try:
            run(contenders[i])
        except BaseException as exc:
            errors.append(exc)

    def run(lease) -> None:
        nonlocal holding, max_holding, acquisitions
        while time.monotonic() < stop:
            if lease.try_acquire() is None:
                time.sleep(0.002)
                continue
            with guard:
                holding += 1
                acquisitions += 1
                max_holding = max(max_holding, holding)
            time.sleep(0.005)
            assert lease.renew()
            with guard:
                holding -= 1
            lease.release()

    try:
        threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert max_holding == 1
        assert acquisitions >= 8
    finally:
        engine.dispose()


async def test_leadership_runs_the_work_in_one_replica_and_hands_over_when_it_stops(db_url):
    engine = make_engine(db_url)
    running: list[str] = []
    overlap: list[tuple[str, ...]] = []
    started: dict[str, int] = {"a": 0, "b": 0}

    def work_for(name: str):
        async def work(stop: asyncio.Event) -> None:
            started[name] += 1
            running.append(name)
            if len(running) > 1:
                overlap.append(tuple(running))
            try:
                await stop.wait()
            finally:
                running.remove(name)

        return work

    a = Leadership(make_lease(engine, "sender", holder="a", ttl_seconds=2), renew_seconds=0.1, retry_seconds=0.05)
    b = Leadership(make_lease(engine, "sender", holder="b", ttl_seconds=2), renew_seconds=0.1, retry_seconds=0.05)
    try:
        ta = asyncio.create_task(a.run(work_for("a")))
        await asyncio.wait_for(a.held.wait(), 5)
        tb = asyncio.create_task(b.run(work_for("b")))
        await asyncio.sleep(0.5)
        assert running == ["a"]
        a.stop()  # graceful shutdown of replica a: its work stops, the lease is released, b takes over
        await asyncio.wait_for(ta, 5)
        await asyncio.wait_for(b.held.wait(), 5)
        await asyncio.sleep(0.1)
        assert running == ["b"]
        b.stop()
        await asyncio.wait_for(tb, 5)
        assert overlap == []
        assert started == {"a": 1, "b": 1}
    finally:
        a.stop()
        b.stop()
        engine.dispose()


async def test_leadership_stops_the_work_when_the_lease_is_lost(sqlite_url):
    engine = make_engine(sqlite_url)
    stopped_by_loss = asyncio.Event()

    async def work(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped_by_loss.set()

    leader = Leadership(make_lease(engine, "jobs", holder="a", ttl_seconds=5), renew_seconds=0.1, retry_seconds=10)
    task = asyncio.create_task(leader.run(work))
    try:
        await asyncio.wait_for(leader.held.wait(), 5)
        with engine.begin() as conn:  # another replica took the row (e.g. after a long pause of this one)
            conn.execute(
                update(leases).where(leases.c.name == "jobs").values(token="someone-else", expires_at=datetime.now(UTC))
            )
        await asyncio.wait_for(stopped_by_loss.wait(), 5)
        assert not leader.held.is_set()
    finally:
        leader.stop()
        await asyncio.wait_for(task, 15)
        engine.dispose()


async def test_a_takeover_from_a_holder_that_never_released_waits_before_working(sqlite_url):
    """The previous holder crashed (row still names it): the new one waits ``takeover_delay`` before its work."""
    engine = make_engine(sqlite_url)
    crashed = make_lease(engine, "print", holder="replica-a", ttl_seconds=0.2)
    assert crashed.try_acquire() is not None  # ... and then the process died without releasing
    started_at: list[float] = []

    async def work(stop: asyncio.Event) -> None:
        started_at.append(time.monotonic())
        await stop.wait()

    leader = Leadership(
        make_lease(engine, "print", holder="replica-b", ttl_seconds=5),
        renew_seconds=0.1,
        retry_seconds=0.05,
        takeover_delay=1.0,
    )
    begun = time.monotonic()
    task = asyncio.create_task(leader.run(work))
    try:
        await asyncio.wait_for(leader.held.wait(), 10)
        await asyncio.sleep(0.1)
        assert started_at
        assert started_at[0] - begun >= 1.0 + 0.2 - 0.05  # expiry of the dead holder's lease + the takeover wait
    finally:
        leader.stop()
        await asyncio.wait_for(task, 10)
        engine.dispose()
