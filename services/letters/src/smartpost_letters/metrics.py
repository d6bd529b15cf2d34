"""Metrics the letters service knows: letters by state and how long they wait, the notification-log relay backlog."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from smartpost_letters.adapters.read_model import letter_summaries
from smartpost_letters.application import LetterNotFoundError
from smartpost_letters.domain.models import LetterStatus
from smartpost_shared.metrics import StuckClock

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Engine

    from smartpost_letters.adapters.relay import NotificationLogRelay
    from smartpost_letters.application import LettersApplication, LetterService


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass
class LetterStateSource:
    """``smartpost_letters{state}`` and, per state, how long the oldest letter has been in it (read model)."""

    engine: Engine
    name: str = "letters"

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(letter_summaries.c.status, func.count(), func.min(letter_summaries.c.updated_at)).group_by(
                    letter_summaries.c.status
                )
            ).all()
        now = datetime.now(UTC)
        found = {str(status): (int(count), _aware(oldest)) for status, count, oldest in rows}
        count_f = GaugeMetricFamily("smartpost_letters", "Serial letters by state", labels=["state"])
        wait_f = GaugeMetricFamily(
            "smartpost_letters_oldest_waiting_seconds",
            "Seconds since the least recently changed letter of each state last changed",
            labels=["state"],
        )
        for state in LetterStatus:
            count, oldest = found.get(state.value, (0, None))
            count_f.add_metric([state.value], float(count))
            wait_f.add_metric([state.value], (now - oldest).total_seconds() if oldest else 0.0)
        return [count_f, wait_f]


@dataclass
class RelayBacklogSource:
    """The letters outbox is the event store's notification log: backlog = notifications after the relay position."""

    event_app: LettersApplication
    relay: NotificationLogRelay
    name: str = "outbox"
    clock: StuckClock = field(default_factory=StuckClock)

    def collect(self) -> Iterable[Metric]:
        newest = self.event_app.recorder.max_notification_id() or 0
        position = self.relay.position()
        backlog = max(newest - position, 0)
        backlog_f = GaugeMetricFamily(
            "smartpost_outbox_backlog", "Outgoing events written but not yet published", labels=["service"]
        )
        backlog_f.add_metric(["letters"], float(backlog))
        age_f = GaugeMetricFamily(
            "smartpost_outbox_oldest_age_seconds",
            "Seconds the relay position has not moved while events wait (0 when nothing waits)",
            labels=["service"],
        )
        age_f.add_metric(["letters"], self.clock.age(position, backlog))
        return [backlog_f, age_f]


# What a letter can wait for (``SerialLetter.waiting_for``) and the states in which it can wait.
WAITING_FOR = ("splitter", "assignment", "print-dispatch")
WAITING_STATES = (LetterStatus.SPLITTING.value, LetterStatus.ASSIGNING.value, LetterStatus.PRINT_ORDERED.value)


@dataclass
class StuckLetterSource:
    """``smartpost_letters_stuck{waiting_for}``: letters waiting for another service longer than the stuck threshold.

    The same rule as ``GET /v1/stuck-letters`` (``SerialLetter.waiting_for`` against ``stuck_after_seconds``), over
    all accounts. Candidates come from the read model (letters in a waiting state), at most ``limit`` per scrape,
    oldest change first; ``smartpost_letters_stuck_oldest_seconds{waiting_for}`` is the longest wait among them.
    """

    engine: Engine
    service: LetterService
    stuck_after_seconds: float
    limit: int = 500
    name: str = "letters_stuck"

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(letter_summaries.c.account_id, letter_summaries.c.letter_id)
                .where(letter_summaries.c.status.in_(WAITING_STATES))
                .order_by(letter_summaries.c.updated_at)
                .limit(self.limit)
            ).all()
        now = datetime.now(UTC)
        counts = dict.fromkeys(WAITING_FOR, 0)
        oldest = dict.fromkeys(WAITING_FOR, 0.0)
        for account_id, letter_id in rows:
            try:
                waiting = self.service.read(
                    str(account_id), uuid.UUID(str(letter_id)), lambda letter: letter.waiting_for()
                )
            except LetterNotFoundError:
                continue
            if waiting is None:
                continue
            what, since = waiting
            seconds = (now - (_aware(since) or now)).total_seconds()
            if seconds >= self.stuck_after_seconds:
                counts[what] = counts.get(what, 0) + 1
                oldest[what] = max(oldest.get(what, 0.0), seconds)
        count_f = GaugeMetricFamily(
            "smartpost_letters_stuck",
            "Letters waiting for another service longer than SMARTPOST_LETTERS_STUCK_AFTER_SECONDS",
            labels=["waiting_for"],
        )
        oldest_f = GaugeMetricFamily(
            "smartpost_letters_stuck_oldest_seconds",
            "Seconds the longest-waiting stuck letter has waited, per service waited for (0 when none is stuck)",
            labels=["waiting_for"],
        )
        for what in sorted(counts):
            count_f.add_metric([what], float(counts[what]))
            oldest_f.add_metric([what], oldest[what])
        return [count_f, oldest_f]
