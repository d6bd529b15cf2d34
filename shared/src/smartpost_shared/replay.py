"""Guard against replayed history: an event older than a maximum age is not acted on automatically.

A consumer group without committed offsets (new group id, reset offsets, a second installation) re-reads every
retained event. Where the service's own ledger no longer knows an event (fresh or restored database), side effects
that leave the system — an immediate e-mail, a letter handed to the print provider — would happen a second time.
The services that cause such effects ask :func:`staleness` with the envelope's own ``occurred_at`` and, for a stale
event, record it for staff ("Veraltet – bitte prüfen") instead of acting; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from smartpost_shared.logging import get_logger

log = get_logger(__name__)

STALE_LABEL = "Veraltet – bitte prüfen"

STALE_EVENTS = Counter(
    "smartpost_stale_events",
    "Events older than the service's maximum age that were recorded for staff instead of acted on",
    ["service", "event_type"],
)


@dataclass(frozen=True)
class Staleness:
    """Why an event is not acted on automatically (German ``reason`` for staff, numbers for the log)."""

    occurred_at: datetime
    age: timedelta
    max_age: timedelta

    @property
    def reason(self) -> str:
        when = self.occurred_at.astimezone(UTC).strftime("%d.%m.%Y %H:%M UTC")
        hours = self.age.total_seconds() / 3600
        limit = self.max_age.total_seconds() / 3600
        return (
            f"{STALE_LABEL}: Ereignis vom {when} ist {hours:.0f} Std. alt (Grenze {limit:g} Std.), "
            "wurde nicht automatisch ausgeführt"
        )


def staleness(occurred_at: datetime, now: datetime, max_age_hours: float) -> Staleness | None:
    """``None`` when the event may be acted on; a :class:`Staleness` when it is older than ``max_age_hours``.

    ``max_age_hours`` 0 switches the guard off. An event from the future (clock skew) is never stale.
    """
    if max_age_hours <= 0:
        return None
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    age = now - occurred_at
    max_age = timedelta(hours=max_age_hours)
    if age <= max_age:
        return None
    return Staleness(occurred_at=occurred_at, age=age, max_age=max_age)


def record_stale(service: str, event_type: str, stale: Staleness, **fields: object) -> None:
    """Count the stale event and log it with its reason (what was held back goes in ``fields``)."""
    STALE_EVENTS.labels(service, event_type).inc()
    log.warning(
        "event.stale_not_acted_on",
        service=service,
        event_type=event_type,
        occurred_at=stale.occurred_at.isoformat(),
        age_hours=round(stale.age.total_seconds() / 3600, 1),
        max_age_hours=stale.max_age.total_seconds() / 3600,
        reason=stale.reason,
        **fields,
    )
