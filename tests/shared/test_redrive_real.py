"""Re-drive of dead letters over a REAL tansu broker: list by topic and reason, show one, re-publish after a fix,
idempotently (re-driving twice has one effect), from Python and from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import PropertyUpserted
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.messaging import EventConsumer, EventPublisher, PermanentError, SqlIdempotency, make_broker
from smartpost_shared.redrive import dead_letter_topics, read_dead_letters, redrive
from smartpost_shared.redrive import select as select_letters
from smartpost_shared.topics import MASTERDATA

pytestmark = [pytest.mark.real]

effects_metadata = MetaData()
effects = Table("effects", effects_metadata, Column("event_id", String(36), primary_key=True))


async def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


def run_cli(kafka_settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers}
    return subprocess.run(
        [sys.executable, "-m", "smartpost_shared.redrive", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_dead_letter_is_listed_shown_and_redriven_once_after_the_fix(  # noqa: PLR0915 - one scenario
    kafka_settings, sqlite_url
):
    engine = make_engine(sqlite_url)
    create_platform_tables(engine)
    effects_metadata.create_all(engine)
    broken = {"on": True}
    idem = SqlIdempotency(engine, "redrive-test")

    def apply(envelope, conn) -> None:
        if broken["on"]:
            msg = "Liegenschaft unbekannt (test: missing master data)"
            raise PermanentError(msg)
        conn.execute(insert(effects).values(event_id=str(envelope.event_id)))

    def effect_count(event_id: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(effects.c.event_id == event_id)).scalar_one())

    broker = make_broker(kafka_settings, service="redrive-test")
    consumer = EventConsumer(broker, service="redrive-test", backoff_seconds=0.01)
    consumer.subscribe(
        MASTERDATA,
        {"PropertyUpserted": idem.handler(apply)},
        group_id=f"redrive-test-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=6000,
    )
    producer = make_broker(kafka_settings, service="redrive-test-producer")
    account = f"acc-{uuid.uuid4().hex[:8]}"
    event = make_envelope(
        PropertyUpserted(property_id=f"P-{uuid.uuid4().hex[:6]}", reference="WEG-R", name="WEG Redrive"),
        account_id=account,
        producer="test",
    )
    event_id = str(event.event_id)
    await broker.start()
    await producer.start()
    try:
        await EventPublisher(producer).publish_raw(MASTERDATA.name, account, event.to_bytes())

        async def dead_lettered() -> bool:
            letters = await read_dead_letters(kafka_settings, dead_letter_topics(MASTERDATA.name))
            return bool(select_letters(letters, event_ids=[event_id]))

        await wait_until(dead_lettered)
        letters = await read_dead_letters(kafka_settings, dead_letter_topics("masterdata.events"))
        [ours] = select_letters(letters, event_ids=[event_id])
        assert ours.topic == MASTERDATA.dead_letter
        assert ours.source_topic == MASTERDATA.name
        assert "Liegenschaft unbekannt" in ours.reason
        assert ours.reason_category == "rejected"
        assert ours.account_id == account
        assert not ours.redriven
        assert select_letters(letters, reason="unbekannt", account_id=account) == [ours]
        assert select_letters(letters, coordinates=[f"{ours.partition}:{ours.offset}"]) == [ours]
        assert effect_count(event_id) == 0

        # The CLI lists it (waiting) and shows it with headers and body.
        listed = run_cli(kafka_settings, "--json", "list", "--topic", MASTERDATA.name)
        assert listed.returncode == 0, listed.stderr
        rows = [r for r in json.loads(listed.stdout) if r["event_id"] == event_id]
        assert len(rows) == 1
        assert rows[0]["redriven"] is False
        assert rows[0]["consumer"] == "redrive-test"
        shown = run_cli(kafka_settings, "show", MASTERDATA.dead_letter, str(ours.partition), str(ours.offset))
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert detail["body"]["event_id"] == event_id
        assert detail["headers"]["dlq_source_topic"] == MASTERDATA.name

        # Fix the cause, re-drive from the CLI: the handler now applies the event once.
        broken["on"] = False
        done = run_cli(kafka_settings, "redrive", MASTERDATA.name, f"{ours.partition}:{ours.offset}")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"redriven": [ours.coordinates], "skipped_already_redriven": []}

        async def applied() -> bool:
            return effect_count(event_id) == 1

        await wait_until(applied)

        # Re-driving again has no further effect: the marker makes it a no-op ...
        again = run_cli(kafka_settings, "redrive", MASTERDATA.name, f"{ours.partition}:{ours.offset}")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == {"redriven": [], "skipped_already_redriven": [ours.coordinates]}
        letters = await read_dead_letters(kafka_settings, dead_letter_topics(MASTERDATA.name))
        [ours_now] = select_letters(letters, event_ids=[event_id], include_redriven=True)
        assert ours_now.redriven
        assert select_letters(letters, event_ids=[event_id]) == []  # not waiting any more
        result = await redrive(kafka_settings, [ours_now])
        assert result.redriven == []
        assert result.skipped == [ours.coordinates]

        # ... and even a copy published twice (two operators at once, markers not yet written) applies once:
        # consumers deduplicate by event id.
        await EventPublisher(producer).publish_raw(MASTERDATA.name, account, event.to_bytes())
        await asyncio.sleep(3)
        assert effect_count(event_id) == 1
        letters = await read_dead_letters(kafka_settings, dead_letter_topics(MASTERDATA.name))
        assert len(select_letters(letters, event_ids=[event_id], include_redriven=True)) == 1
    finally:
        await producer.stop()
        await broker.stop()
        engine.dispose()


def test_unknown_topic_is_a_clear_error(kafka_settings):
    with pytest.raises(ValueError, match="unknown topic"):
        dead_letter_topics("nope.events")
    done = run_cli(kafka_settings, "list", "--topic", "nope.events")
    assert done.returncode != 0
    assert "unknown topic" in done.stderr
