"""SIGTERM mid-message over a REAL tansu broker: the consumer stops, the message in hand is finished (or handed
back and redelivered), the offset is committed; after a restart every message has exactly one effect.

The consumer process wires the shared platform the way every service does (EventConsumer + SqlIdempotency, a
uvicorn-style SIGTERM -> lifespan shutdown -> ``broker.stop()``), with a handler slow enough to be caught mid-way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import PropertyUpserted
from smartpost_shared.db import make_engine
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.topics import MASTERDATA

pytestmark = [pytest.mark.real]

MESSAGES = 4
HANDLER_SECONDS = 1.5

CONSUMER = """
import asyncio, signal, sys, time
from sqlalchemy import Column, MetaData, String, Table, insert
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.messaging import EventConsumer, SqlIdempotency, make_broker
from smartpost_shared.settings import KafkaSettings
from smartpost_shared.topics import MASTERDATA

url, bootstrap, group, seconds, account = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
md = MetaData()
effects = Table("effects", md, Column("event_id", String(36), primary_key=True))
engine = make_engine(url)
create_platform_tables(engine)
md.create_all(engine)

def apply(envelope, conn):
    if envelope.account_id != account:
        return  # other tests' events on the shared broker
    print("handling", envelope.event_id, flush=True)
    time.sleep(seconds)
    conn.execute(insert(effects).values(event_id=str(envelope.event_id)))
    print("handled", envelope.event_id, flush=True)

async def main():
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap), service="graceful")
    consumer = EventConsumer(broker, service="graceful")
    consumer.subscribe(MASTERDATA, {"PropertyUpserted": SqlIdempotency(engine, "graceful").handler(apply)},
                       group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await broker.start()
    print("started", flush=True)
    await stop.wait()
    print("stopping", flush=True)
    await broker.stop()
    engine.dispose()
    print("stopped", flush=True)

asyncio.run(main())
"""


def effect_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    effects = Table("effects", MetaData(), Column("event_id", String(36), primary_key=True))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(effects.c.event_id, func.count()).group_by(effects.c.event_id)).all()
        return {str(event_id): int(n) for event_id, n in rows}
    finally:
        engine.dispose()


class ConsumerProcess:
    def __init__(self, script, url: str, bootstrap: str, group: str, log_path, account: str) -> None:
        self.args = [sys.executable, str(script), url, bootstrap, group, str(HANDLER_SECONDS), account]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def log(self) -> str:
        return self.log_path.read_text()

    async def wait_log(self, needle: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(needle) < count:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log()[-3000:]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} x{count} in: {self.log()[-2000:]}")
            await asyncio.sleep(0.05)


async def test_sigterm_mid_message_finishes_or_hands_back_and_nothing_is_lost_or_doubled(
    kafka_settings, sqlite_url, tmp_path
):
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    group = f"graceful-{uuid.uuid4().hex[:8]}"
    account = f"acc-{uuid.uuid4().hex[:8]}"
    first = ConsumerProcess(
        script, sqlite_url, kafka_settings.bootstrap_servers, group, tmp_path / "first.log", account
    )
    first.start()
    await first.wait_log("started")
    # Let the group settle before producing, so the first member gets the partition.
    producer = make_broker(kafka_settings, service="graceful-producer")
    await producer.start()
    events = [
        make_envelope(
            PropertyUpserted(property_id=f"P-{i}-{uuid.uuid4().hex[:4]}", reference=f"W{i}", name=f"WEG {i}"),
            account_id=account,
            producer="test",
        )
        for i in range(MESSAGES)
    ]
    try:
        for event in events:  # same key: one partition, processed in order
            await EventPublisher(producer).publish_raw(MASTERDATA.name, account, event.to_bytes())
    finally:
        await producer.stop()
    ids = [str(e.event_id) for e in events]
    # SIGTERM while the second message is in the handler.
    await first.wait_log(f"handling {ids[1]}", timeout=90)
    assert first.proc is not None
    started = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)
    returncode = first.proc.wait(timeout=30)
    took = time.monotonic() - started
    assert returncode == 0, first.log()[-3000:]
    assert "stopped" in first.log()
    assert took < 20, f"shutdown took {took:.1f}s"
    done_before_restart = effect_counts(sqlite_url)
    assert done_before_restart.get(ids[0]) == 1
    assert ids[3] not in done_before_restart  # it stopped consuming

    second = ConsumerProcess(
        script, sqlite_url, kafka_settings.bootstrap_servers, group, tmp_path / "second.log", account
    )
    second.start()
    try:
        deadline = time.monotonic() + 120
        while set(effect_counts(sqlite_url)) != set(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2 * HANDLER_SECONDS)  # a wrongly redelivered message would be applied by now
    finally:
        if second.proc is not None and second.proc.poll() is None:
            second.proc.send_signal(signal.SIGTERM)
            second.proc.wait(timeout=30)
    counts = effect_counts(sqlite_url)
    assert counts == dict.fromkeys(ids, 1), (counts, first.log()[-1500:], second.log()[-1500:])
    # The first message was committed before the stop: the second process never saw it again.
    assert f"handling {ids[0]}" not in second.log()
    print(f"SIGTERM mid-message: stopped in {took:.2f}s; before restart {sorted(done_before_restart.values())}")
