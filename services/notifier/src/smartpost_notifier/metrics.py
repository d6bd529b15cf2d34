"""Metrics the notifier knows: mails by kind and status, deferred mails, how long the oldest pending mail waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import and_, func, select

from smartpost_notifier.adapters.db import mails
from smartpost_notifier.domain import MailStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Engine


@dataclass
class MailSource:
    engine: Engine
    name: str = "mails"

    def collect(self) -> Iterable[Metric]:
        waiting = (MailStatus.PENDING.value, MailStatus.SENDING.value)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mails.c.kind, mails.c.status, func.count()).group_by(mails.c.kind, mails.c.status)
            ).all()
            deferred = conn.execute(
                select(func.count()).where(and_(mails.c.status == MailStatus.PENDING.value, mails.c.attempts > 0))
            ).scalar_one()
            oldest = conn.execute(select(func.min(mails.c.created_at)).where(mails.c.status.in_(waiting))).scalar()
        by_status = GaugeMetricFamily(
            "smartpost_mails",
            "Mails by kind (immediate, digest) and status (pending, sending, handed_over, sent, failed)",
            labels=["kind", "status"],
        )
        seen: set[tuple[str, str]] = set()
        for kind, status, count in rows:
            by_status.add_metric([str(kind), str(status)], float(count))
            seen.add((str(kind), str(status)))
        for status in MailStatus:  # always expose the series the alerts use
            if ("immediate", status.value) not in seen:
                by_status.add_metric(["immediate", status.value], 0.0)
        deferred_f = GaugeMetricFamily(
            "smartpost_mails_deferred", "Pending mails that failed at least once (SMTP outage or temporary error)"
        )
        deferred_f.add_metric([], float(deferred))
        age = GaugeMetricFamily(
            "smartpost_mails_oldest_pending_seconds", "Age of the oldest mail not sent yet (0 when none waits)"
        )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age.add_metric([], (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        return [by_status, deferred_f, age]
