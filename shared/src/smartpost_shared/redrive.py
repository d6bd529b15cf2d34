"""Dead letters: list them by topic and reason, show one, re-drive selected ones to their source topic.

    python -m smartpost_shared.redrive list [--topic letters.events] [--reason TEXT] [--all]
    python -m smartpost_shared.redrive show letters.events.dlq 0 17
    python -m smartpost_shared.redrive redrive letters.events.dlq 0:17 2:3      # or --reason TEXT / --all-waiting

A dead letter is re-published unchanged (same body, same key) to the topic named in its ``dlq_source_topic``
header, with a header ``smartpost_redriven_from`` = ``<dlq topic>:<partition>:<offset>``. Re-driving is idempotent
at two levels:
- after re-publishing, a **marker** record (empty body, header ``smartpost_redrive_marker`` = the same
  coordinates) is appended to the dead-letter topic; every later listing shows the letter as re-driven and a second
  re-drive skips it. Nothing besides this tool reads dead-letter topics, so markers disturb no one.
- should two operators re-drive at the same moment, both copies carry the same ``event_id`` and every consumer
  deduplicates by event id (processed-events ledger), so the effect still happens once.

If the cause is not fixed, the handler fails again and the message returns to the dead-letter topic as a new
dead letter (with its new reason); nothing is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from smartpost_shared.event_signing import SIGNATURE_HEADER
from smartpost_shared.metrics import reason_category
from smartpost_shared.settings import KafkaSettings
from smartpost_shared.topics import ALL_TOPICS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

REDRIVEN_FROM = "smartpost_redriven_from"
MARKER = "smartpost_redrive_marker"


@dataclass
class DeadLetter:
    topic: str  # the dead-letter topic
    partition: int
    offset: int
    key: bytes | None
    body: bytes
    headers: dict[str, str]
    timestamp_ms: int
    redriven: bool = False
    envelope: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def source_topic(self) -> str:
        return self.headers.get("dlq_source_topic") or self.topic.removesuffix(".dlq")

    @property
    def reason(self) -> str:
        return self.headers.get("dlq_reason", "")

    @property
    def reason_category(self) -> str:
        return reason_category(self.reason)

    @property
    def event_type(self) -> str | None:
        return str(self.envelope.get("event_type")) if self.envelope else None

    @property
    def event_id(self) -> str | None:
        return str(self.envelope.get("event_id")) if self.envelope else None

    @property
    def account_id(self) -> str | None:
        return str(self.envelope.get("account_id")) if self.envelope else None

    def summary(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "source_topic": self.source_topic,
            "reason": self.reason,
            "reason_category": self.reason_category,
            "error_type": self.headers.get("dlq_error_type", ""),
            "consumer": self.headers.get("dlq_consumer", ""),
            "source_partition": self.headers.get("dlq_source_partition", ""),
            "source_offset": self.headers.get("dlq_source_offset", ""),
            "event_type": self.event_type,
            "event_id": self.event_id,
            "account_id": self.account_id,
            "timestamp_ms": self.timestamp_ms,
            "redriven": self.redriven,
        }

    def detail(self) -> dict[str, Any]:
        try:
            body: Any = json.loads(self.body)
        except (ValueError, RecursionError):  # a dead letter may be hostile: deeply nested JSON is shown as text
            body = self.body.decode("utf-8", errors="replace")
        return {**self.summary(), "headers": self.headers, "key": self.key.decode() if self.key else None, "body": body}


def dead_letter_topics(topic: str | None = None) -> list[str]:
    """All dead-letter topics, or the one of ``topic`` (given as source or dead-letter topic name)."""
    names = [t.dead_letter for t in ALL_TOPICS]
    if topic is None:
        return names
    wanted = topic if topic.endswith(".dlq") else f"{topic}.dlq"
    if wanted not in names:
        msg = f"unknown topic {topic!r}; known: {', '.join(t.name for t in ALL_TOPICS)}"
        raise ValueError(msg)
    return [wanted]


def _headers(raw: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v.decode("utf-8", errors="replace") if v is not None else "") for k, v in (raw or [])}


def _envelope(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and "event_id" in value else None


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for topic in topics:
        ids = consumer.partitions_for_topic(topic)
        if ids is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public call in aiokafka
            ids = consumer.partitions_for_topic(topic)
        tps += [TopicPartition(topic, p) for p in sorted(ids or ())]
    return tps


async def _read_until(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[tuple[TopicPartition, Any]]:
    """Every record of the assigned partitions up to the end offsets seen at the start."""
    records: list[tuple[TopicPartition, Any]] = []
    todo = {tp for tp, end in ends.items() if end > 0}
    while todo:
        batch = await consumer.getmany(*todo, timeout_ms=1000)
        records += [(tp, r) for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
        todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    return records


async def read_dead_letters(kafka: KafkaSettings, topics: Sequence[str]) -> list[DeadLetter]:
    """Every dead letter currently in ``topics`` (with re-drive markers applied), oldest first per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, **kafka.client_kwargs()
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        if not tps:
            return []
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records = await _read_until(consumer, ends)
    finally:
        await consumer.stop()
    letters: list[DeadLetter] = []
    markers: set[str] = set()
    for tp, record in records:
        headers = _headers(record.headers)
        if MARKER in headers:
            markers.add(headers[MARKER])
            continue
        letters.append(
            DeadLetter(
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                key=record.key,
                body=record.value or b"",
                headers=headers,
                timestamp_ms=record.timestamp,
                envelope=_envelope(record.value or b""),
            )
        )
    for letter in letters:
        letter.redriven = letter.coordinates in markers
    return letters


def select(
    letters: Iterable[DeadLetter],
    *,
    coordinates: Iterable[str] = (),
    reason: str | None = None,
    event_ids: Iterable[str] = (),
    account_id: str | None = None,
    include_redriven: bool = False,
) -> list[DeadLetter]:
    """Filter dead letters; ``coordinates`` are ``partition:offset`` or ``topic:partition:offset``."""
    wanted = set(coordinates)
    ids = set(event_ids)
    chosen = []
    for letter in letters:
        if letter.redriven and not include_redriven:
            continue
        if wanted and not ({f"{letter.partition}:{letter.offset}", letter.coordinates} & wanted):
            continue
        if ids and letter.event_id not in ids:
            continue
        if reason and reason.lower() not in letter.reason.lower() and reason != letter.reason_category:
            continue
        if account_id is not None and letter.account_id != account_id:
            continue
        chosen.append(letter)
    return chosen


@dataclass
class RedriveResult:
    redriven: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already re-driven earlier

    def as_dict(self) -> dict[str, list[str]]:
        return {"redriven": self.redriven, "skipped_already_redriven": self.skipped}


async def redrive(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> RedriveResult:
    """Re-publish each dead letter to its source topic, then mark it re-driven (see module docstring)."""
    result = RedriveResult()
    if not letters:
        return result
    # Read the markers again right before publishing: someone may have re-driven these meanwhile.
    fresh = await read_dead_letters(kafka, sorted({letter.topic for letter in letters}))
    done = {letter.coordinates for letter in fresh if letter.redriven}
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_idempotence=False,
        acks="all",
        compression_type=None,
        **kafka.client_kwargs(),
    )
    await producer.start()
    try:
        for letter in letters:
            if letter.coordinates in done:
                result.skipped.append(letter.coordinates)
                continue
            headers = [(REDRIVEN_FROM, letter.coordinates.encode())]
            if letter.event_type:
                headers.append(("event_type", letter.event_type.encode()))
            # The producer's own signature travels on: a re-driven event is still provably its (a forged one that
            # was dead-lettered for lacking it is refused again, as it should be).
            if SIGNATURE_HEADER in letter.headers:
                headers.append((SIGNATURE_HEADER, letter.headers[SIGNATURE_HEADER].encode()))
            await producer.send_and_wait(letter.source_topic, letter.body, key=letter.key, headers=headers)
            await producer.send_and_wait(
                letter.topic,
                b"",
                key=letter.key,
                partition=letter.partition,
                headers=[(MARKER, letter.coordinates.encode())],
            )
            done.add(letter.coordinates)
            result.redriven.append(letter.coordinates)
    finally:
        await producer.stop()
    return result


# --- command line -------------------------------------------------------------------------------------------------


def _print_table(letters: Sequence[DeadLetter]) -> None:
    counts = Counter((letter.topic, letter.reason_category, letter.redriven) for letter in letters)
    print("topic                         reason            state      count")  # noqa: T201
    for (topic, category, redriven), count in sorted(counts.items()):
        state = "redriven" if redriven else "waiting"
        print(f"{topic:<29} {category:<17} {state:<10} {count}")  # noqa: T201
    print()  # noqa: T201
    for letter in letters:
        state = "redriven" if letter.redriven else "waiting "
        what = letter.event_type or "(not an event)"
        print(f"{letter.topic} {letter.partition}:{letter.offset}  {state}  {what:<24} {letter.reason[:100]}")  # noqa: T201


async def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartpost_shared.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="dead letters by topic and reason")
    p_list.add_argument("--topic", help="source or dead-letter topic (default: all)")
    p_list.add_argument("--reason", help="text in the reason, or a category (invalid_message, handler_failed ...)")
    p_list.add_argument("--all", action="store_true", help="include dead letters already re-driven")
    p_show = sub.add_parser("show", help="one dead letter with headers and body")
    p_show.add_argument("topic")
    p_show.add_argument("partition", type=int)
    p_show.add_argument("offset", type=int)
    p_redrive = sub.add_parser("redrive", help="re-publish selected dead letters to their source topic")
    p_redrive.add_argument("topic", help="source or dead-letter topic")
    p_redrive.add_argument("coordinates", nargs="*", help="partition:offset of the dead letters")
    p_redrive.add_argument("--reason", help="every waiting dead letter whose reason matches")
    p_redrive.add_argument("--event-id", action="append", default=[], help="by event id (repeatable)")
    p_redrive.add_argument("--all-waiting", action="store_true", help="every dead letter not re-driven yet")
    args = parser.parse_args(argv)
    kafka = KafkaSettings()

    if args.command == "list":
        letters = select(
            await read_dead_letters(kafka, dead_letter_topics(args.topic)),
            reason=args.reason,
            include_redriven=args.all,
        )
        if args.json:
            print(json.dumps([letter.summary() for letter in letters], indent=2, ensure_ascii=False))  # noqa: T201
        else:
            _print_table(letters)
        return 0
    if args.command == "show":
        topic = dead_letter_topics(args.topic)[0]
        found = [
            letter
            for letter in await read_dead_letters(kafka, [topic])
            if (letter.partition, letter.offset) == (args.partition, args.offset)
        ]
        if not found:
            print(f"no dead letter at {topic}:{args.partition}:{args.offset}", file=sys.stderr)  # noqa: T201
            return 1
        print(json.dumps(found[0].detail(), indent=2, ensure_ascii=False))  # noqa: T201
        return 0
    if not (args.coordinates or args.reason or args.event_id or args.all_waiting):
        parser.error("redrive needs coordinates, --reason, --event-id or --all-waiting")
    letters = select(
        await read_dead_letters(kafka, dead_letter_topics(args.topic)),
        coordinates=args.coordinates,
        reason=args.reason,
        event_ids=args.event_id,
        include_redriven=True,  # already re-driven ones are reported as skipped
    )
    result = await redrive(kafka, letters)
    print(json.dumps(result.as_dict(), indent=2))  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_main(argv))


if __name__ == "__main__":
    raise SystemExit(main())
