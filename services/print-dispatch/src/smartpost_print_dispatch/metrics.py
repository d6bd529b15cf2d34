"""Metrics print dispatch knows: mailpieces by provider and status, submissions waiting and retrying."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import and_, func, select

from smartpost_print_dispatch.adapters.db import mailpieces
from smartpost_shared.metrics import CallableSource, OutboxSource

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fastapi import FastAPI
    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Engine

    from smartpost_print_dispatch.application import PrintDispatch
    from smartpost_shared.metrics import ScrapeSource

# Stages before the provider has the mailpiece (see adapters/db.py: planned -> ready -> submitting -> tracking).
UNSUBMITTED_STAGES = ("planned", "ready", "submitting")


@dataclass
class MailpieceSource:
    engine: Engine
    name: str = "mailpieces"

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mailpieces.c.provider, mailpieces.c.status, func.count()).group_by(
                    mailpieces.c.provider, mailpieces.c.status
                )
            ).all()
            oldest = conn.execute(
                select(func.min(mailpieces.c.created_at)).where(mailpieces.c.stage.in_(UNSUBMITTED_STAGES))
            ).scalar()
            retrying = conn.execute(
                select(func.count()).where(
                    and_(mailpieces.c.stage.in_(UNSUBMITTED_STAGES), mailpieces.c.submit_attempts > 0)
                )
            ).scalar_one()
        by_status = GaugeMetricFamily(
            "smartpost_mailpieces", "Mailpieces (envelopes) by provider and status", labels=["provider", "status"]
        )
        for provider, status, count in rows:
            by_status.add_metric([str(provider), str(status)], float(count))
        age = GaugeMetricFamily(
            "smartpost_mailpieces_oldest_unsubmitted_seconds",
            "Age of the oldest mailpiece the provider does not have yet (0 when none waits)",
        )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age.add_metric([], (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        retry_f = GaugeMetricFamily(
            "smartpost_mailpieces_submit_retrying", "Mailpieces whose submission failed at least once and waits"
        )
        retry_f.add_metric([], float(retrying))
        return [by_status, age, retry_f]


def print_sources(app: FastAPI) -> list[ScrapeSource]:
    """The database exists only once the lifespan ran (``app.state.dispatch``); read it at scrape time."""

    def engine() -> Engine:
        dispatch: PrintDispatch = app.state.dispatch
        return dispatch.engine

    return [
        CallableSource("outbox", lambda: OutboxSource(engine(), "print-dispatch").collect()),
        CallableSource("mailpieces", lambda: MailpieceSource(engine()).collect()),
    ]
