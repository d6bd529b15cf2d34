"""Helpers shared by the notifier's integration tests (not collected: no test_ prefix)."""

from __future__ import annotations

import asyncio
import mailbox
import time
from collections import Counter
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import TYPE_CHECKING, Self

from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.messaging import EventPublisher, make_broker

if TYPE_CHECKING:
    from pathlib import Path

    from smartpost_shared.contracts.base import EventPayload
    from smartpost_shared.settings import KafkaSettings


def ensure_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def mails_of(maildir: Path, account_id: str) -> list[EmailMessage]:
    """Messages in the Maildir that the notifier sent for ``account_id``."""
    found = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.exists():
            continue
        for name in sorted(folder.iterdir()):
            try:
                raw = name.read_bytes()
            except FileNotFoundError:
                continue
            head, _, _ = raw.partition(b"\n\n")
            if f"X-SmartPost-Account: {account_id}".encode() not in head:
                continue
            msg = message_from_bytes(raw, policy=default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
    return found


_ACCOUNT_OF_FILE: dict[Path, str | None] = {}


def _account_of(path: Path) -> str | None:
    """The X-SmartPost-Account header of a delivered file (cached: delivered files never change)."""
    if path not in _ACCOUNT_OF_FILE:
        try:
            head = path.read_bytes().partition(b"\n\n")[0]
        except FileNotFoundError:
            return None
        found = None
        for line in head.splitlines():
            if line.startswith(b"X-SmartPost-Account: "):
                found = line.split(b": ", 1)[1].strip().decode()
        _ACCOUNT_OF_FILE[path] = found
    return _ACCOUNT_OF_FILE[path]


def count_of(maildir: Path, account_id: str) -> int:
    """Cheap count for polling loops (reads each new file once)."""
    return sum(
        1
        for sub in ("new", "cur")
        if (maildir / sub).exists()
        for name in (maildir / sub).iterdir()
        if _account_of(name) == account_id
    )


def message_id_counts(messages: list[EmailMessage]) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in messages)


async def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    msg = f"timed out after {timeout}s waiting for {what}"
    raise AssertionError(msg)


class Producer:
    """Publishes test events as the upstream services would (envelopes through the shared publisher)."""

    def __init__(self, kafka: KafkaSettings, account_id: str) -> None:
        self.broker = make_broker(kafka, service="test-producer")
        self.publisher = EventPublisher(self.broker)
        self.account_id = account_id

    async def __aenter__(self) -> Self:
        await self.broker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()

    async def send(self, *payloads: EventPayload, producer: str = "test") -> None:
        for payload in payloads:
            await self.publisher.publish(make_envelope(payload, account_id=self.account_id, producer=producer))


__all__ = ["Producer", "count_of", "ensure_maildir", "mailbox", "mails_of", "message_id_counts", "wait_for"]


async def start_group_at_end(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """Commit the current end offsets for a new consumer group, so the app under test sees only new events
    (the session's broker also carries other tests' events)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()
