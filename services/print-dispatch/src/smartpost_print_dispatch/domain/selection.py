"""Who gets paper: the order's recipient filter, and the working-day clock of the digital-first fallback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from smartpost_shared.contracts.letters import RecipientFilter, ReleasedItem

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


@dataclass(frozen=True)
class RecipientFacts:
    """What the filter needs to know about a contact (from the master-data read model)."""

    contact_id: str
    channel_preference: str
    portal_registered: bool


@dataclass(frozen=True)
class Exclusion:
    item_id: str
    contact_id: str
    reason: str


@dataclass(frozen=True)
class Selection:
    selected: list[ReleasedItem]
    excluded: list[Exclusion]


def select_items(
    items: Iterable[ReleasedItem],
    recipient_filter: RecipientFilter,
    contacts: Mapping[str, RecipientFacts],
    viewed_item_ids: set[str],
    not_readable_item_ids: set[str] | frozenset[str] = frozenset(),
) -> Selection:
    """Items that go out on paper under ``recipient_filter``, in their original order.

    A contact missing from master data stays selected: it cannot be judged, so it must surface as a mailpiece that
    needs action (no postal address) instead of disappearing silently. An item the portal does not let its
    recipient read (``not_readable_item_ids``: the contract's access window is over and the letter's billing period
    does not cover the contract) stays selected too: paper is then the only way the letter reaches them.
    """
    selected: list[ReleasedItem] = []
    excluded: list[Exclusion] = []
    for item in items:
        facts = contacts.get(item.contact_id)
        reason = None
        if facts is not None and item.item_id not in not_readable_item_ids:
            reason = _exclusion_reason(item, facts, recipient_filter, viewed_item_ids)
        if reason is None:
            selected.append(item)
        else:
            excluded.append(Exclusion(item.item_id, item.contact_id, reason))
    return Selection(selected, excluded)


def _exclusion_reason(
    item: ReleasedItem, facts: RecipientFacts, recipient_filter: RecipientFilter, viewed: set[str]
) -> str | None:
    if recipient_filter is RecipientFilter.POST_PREFERENCE and facts.channel_preference != "post":
        return "prefers online delivery"
    if recipient_filter is RecipientFilter.NOT_REGISTERED and facts.portal_registered:
        return "registered in the portal"
    if recipient_filter is RecipientFilter.NOT_VIEWED and item.item_id in viewed:
        return "opened in the portal"
    return None


def easter_sunday(year: int) -> date:
    """Gregorian Easter (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def german_nationwide_holidays(year: int) -> set[date]:
    """The nine public holidays observed in every German state."""
    easter = easter_sunday(year)
    return {
        date(year, 1, 1),
        easter - timedelta(days=2),  # Karfreitag
        easter + timedelta(days=1),  # Ostermontag
        date(year, 5, 1),
        easter + timedelta(days=39),  # Christi Himmelfahrt
        easter + timedelta(days=50),  # Pfingstmontag
        date(year, 10, 3),
        date(year, 12, 25),
        date(year, 12, 26),
    }


def is_working_day(day: date, extra_holidays: frozenset[date], *, nationwide_holidays: bool) -> bool:
    if day.weekday() >= 5 or day in extra_holidays:
        return False
    return not (nationwide_holidays and day in german_nationwide_holidays(day.year))


def add_working_days(
    start: date, days: int, *, extra_holidays: frozenset[date] = frozenset(), nationwide_holidays: bool = True
) -> date:
    """The day on which ``days`` full working days after ``start`` have passed (the order day does not count)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, extra_holidays, nationwide_holidays=nationwide_holidays):
            remaining -= 1
    # The paper letter goes out the morning after the last waiting day.
    current += timedelta(days=1)
    while not is_working_day(current, extra_holidays, nationwide_holidays=nationwide_holidays):
        current += timedelta(days=1)
    return current
