"""Two notifier replicas on one database: only the lease holder sends; SIGTERM mid-batch shuts it down gracefully
(within the grace period, lease released, the rest of the batch handed back) and the other replica takes over at
once; SIGKILL of the holder hands over after the lease runs out. Every mail arrives exactly once.

Real subprocesses (``python -m smartpost_notifier``) against real tansu and aiosmtpd, one SQLite database (the
hand-over journal lies next to it, so the new holder also sees the journal of the old one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import create_engine, text

from smartpost_notifier.domain import immediate_mail_id
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.portal import DocumentPublished
from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.settings import KafkaSettings

from .notifier_testkit import Producer, count_of, mails_of, message_id_counts, wait_for

pytestmark = [pytest.mark.real, pytest.mark.slow]

RECIPIENTS = 60
MESSAGE_ID_DOMAIN = "replicas.test"
# k8s: terminationGracePeriodSeconds 60 minus the 5 s preStop pause.
GRACE_SECONDS = 55


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("replica-stack")
    stack = Stack(root, kafka_port=free_port(), smtp_port=free_port(), tansu_storage="memory")
    try:
        stack.start_tansu()
        stack.create_topics()
        stack.start_smtp()
        yield stack
    finally:
        stack.down()


class Replica:
    def __init__(self, name: str, env: dict[str, str], log_path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "SMARTPOST_REPLICA_ID": name, "SMARTPOST_NOTIFIER_HTTP_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smartpost_notifier"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"replica {self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def lease_holder(db_path) -> str | None:
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT holder, expires_at FROM leases WHERE name = 'notifier-sender'")).first()
    finally:
        engine.dispose()
    return row[0] if row else None


async def start_pair(stack: Stack, tmp_path, make_id) -> tuple[dict[str, Replica], str, str, object]:
    db_path = tmp_path / "notifier.sqlite3"
    env = {
        **os.environ,
        **stack.env(),
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_NOTIFIER_DATABASE_URL": f"sqlite:///{db_path}",
        "SMARTPOST_NOTIFIER_KAFKA_GROUP_ID": make_id("notifier"),
        "SMARTPOST_NOTIFIER_IMMEDIATE_DELAY_SECONDS": "0",
        "SMARTPOST_NOTIFIER_SEND_POLL_SECONDS": "0.1",
        "SMARTPOST_NOTIFIER_SEND_BATCH_SIZE": "20",
        "SMARTPOST_NOTIFIER_MAX_MAILS_PER_SECOND": "15",
        "SMARTPOST_NOTIFIER_DIGEST_ENABLED": "false",
        "SMARTPOST_NOTIFIER_MESSAGE_ID_DOMAIN": MESSAGE_ID_DOMAIN,
        "SMARTPOST_NOTIFIER_LOG_LEVEL": "INFO",
        "SMARTPOST_LEASE_TTL_SECONDS": "3",
        "SMARTPOST_LEASE_RENEW_SECONDS": "0.5",
        "SMARTPOST_LEASE_RETRY_SECONDS": "0.3",
        "SMARTPOST_LEASE_TAKEOVER_SECONDS": "1",
    }
    replicas = {name: Replica(name, env, tmp_path / f"notifier-{name}.log") for name in ("a", "b")}
    replicas["a"].start()
    await replicas["a"].ready()
    await wait_for(lambda: lease_holder(db_path) == "a", 30, what="replica a holds the sender lease")
    replicas["b"].start()
    await replicas["b"].ready()
    account = make_id("acc")
    letter = make_id("letter")
    contacts = [f"c{i:04d}" for i in range(RECIPIENTS)]
    kafka = KafkaSettings(bootstrap_servers=stack.bootstrap_servers)
    async with Producer(kafka, account) as producer:
        await producer.send(
            *(
                ContactUpserted(contact_id=c, last_name=c, email=f"{c}@example.org", portal_registered=True)
                for c in contacts
            )
        )
        await producer.send(
            *(
                DocumentPublished(
                    document_id=f"doc-{c}",
                    letter_id=letter,
                    item_id=f"item-{c}",
                    contact_id=c,
                    title="Jahresabrechnung",
                    folder=["Abrechnung"],
                    letter_date=date(2026, 1, 2),
                    notify_by_email=True,
                    published_at=datetime.now(UTC),
                )
                for c in contacts
            ),
            producer="portal-publisher",
        )
    return replicas, account, letter, db_path


def assert_exactly_once(stack: Stack, account: str, letter: str) -> None:
    counts = message_id_counts(mails_of(stack.maildir, account))
    expected = {f"<{immediate_mail_id(account, f'c{i:04d}', letter)}@{MESSAGE_ID_DOMAIN}>" for i in range(RECIPIENTS)}
    assert {mid: n for mid, n in counts.items() if n > 1} == {}, "duplicates"
    assert expected - set(counts) == set(), "missing"
    assert set(counts) == expected


async def test_sigterm_mid_batch_hands_over_gracefully_to_the_other_replica(own_stack, tmp_path, make_id):
    stack = own_stack
    replicas, account, letter, db_path = await start_pair(stack, tmp_path, make_id)
    try:
        await wait_for(lambda: count_of(stack.maildir, account) >= 15, 90, 0.01, "first mails")
        holder = replicas["a"]
        assert lease_holder(db_path) == "a"  # b started later and waits
        started = time.monotonic()
        assert holder.proc is not None
        holder.proc.send_signal(signal.SIGTERM)
        returncode = holder.proc.wait(timeout=GRACE_SECONDS)
        took = time.monotonic() - started
        at_exit = count_of(stack.maildir, account)
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status names SIGTERM.
        assert returncode in (0, -signal.SIGTERM), holder.log_path.read_text()[-3000:]
        log = holder.log_path.read_text()
        assert "lease.released" in log
        assert "notifier.stopped" in log, log[-3000:]
        assert took < 15, f"graceful shutdown took {took:.1f}s"
        assert at_exit < RECIPIENTS, "SIGTERM came mid-batch"
        # Released on the way out, so b takes over without waiting for the lease to run out.
        await wait_for(lambda: lease_holder(db_path) == "b", 10, what="replica b took over")
        await wait_for(lambda: count_of(stack.maildir, account) >= RECIPIENTS, 90, what="all mails")
        await asyncio.sleep(1.5)  # a wrongly repeated mail would show up now
        print(f"SIGTERM: exited in {took:.2f}s with {at_exit} of {RECIPIENTS} mails sent")
    finally:
        for replica in replicas.values():
            replica.stop()
    assert_exactly_once(stack, account, letter)


async def test_sigkill_of_the_holder_mid_batch_loses_and_doubles_nothing(own_stack, tmp_path, make_id):
    stack = own_stack
    replicas, account, letter, db_path = await start_pair(stack, tmp_path, make_id)
    try:
        await wait_for(lambda: count_of(stack.maildir, account) >= 15, 90, 0.005, "first mails")
        holder = replicas["a"]
        assert holder.proc is not None
        os.kill(holder.proc.pid, signal.SIGKILL)
        holder.proc.wait(timeout=10)
        killed_at = count_of(stack.maildir, account)
        assert killed_at < RECIPIENTS
        started = time.monotonic()
        await wait_for(lambda: lease_holder(db_path) == "b", 30, what="replica b took over")
        took_over = time.monotonic() - started
        await wait_for(lambda: count_of(stack.maildir, account) >= RECIPIENTS, 90, what="all mails")
        await asyncio.sleep(1.5)
        print(f"SIGKILL at {killed_at} mails; b took over after {took_over:.1f}s")
        assert took_over < 3 + 2  # lease TTL (3 s) + renewal slack
    finally:
        for replica in replicas.values():
            replica.stop()
    assert_exactly_once(stack, account, letter)
