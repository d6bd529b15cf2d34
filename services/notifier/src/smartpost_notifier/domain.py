"""Pure rules of the notifier: who gets a mail, which mail is which, when a digest is due. No I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "smartpost:notifier")


class MailKind(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


class MailStatus(StrEnum):
    """Life of one row of the mail outbox.

    ``sending``: claimed by the sender, the final ``.`` of SMTP DATA has NOT been written yet, so the relay has
    no mail: safe to send again. ``handed_over``: recorded just before the final ``.`` is written: the relay may
    have the mail; after a crash it counts as sent (never sent twice).
    """

    PENDING = "pending"
    SENDING = "sending"
    HANDED_OVER = "handed_over"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    # The publication event was older than ``immediate_max_age_hours`` (a replay after an offset reset or a
    # database restore): never sent automatically, kept for staff ("Veraltet – bitte prüfen").
    STALE = "stale"


FINAL_STATUSES = frozenset(
    {MailStatus.SENT, MailStatus.FAILED, MailStatus.SKIPPED, MailStatus.CANCELLED, MailStatus.STALE}
)

# German labels for staff (API answers); the database keeps the English values.
STATUS_LABELS = {
    MailStatus.PENDING: "wartet",
    MailStatus.SENDING: "wird gesendet",
    MailStatus.HANDED_OVER: "übergeben",
    MailStatus.SENT: "gesendet",
    MailStatus.FAILED: "fehlgeschlagen",
    MailStatus.SKIPPED: "übersprungen",
    MailStatus.CANCELLED: "storniert",
    MailStatus.STALE: "Veraltet – bitte prüfen",
}


def immediate_mail_id(account_id: str, contact_id: str, letter_id: str) -> str:
    """One immediate mail per recipient and release: the id is the dedupe key (and the Message-ID)."""
    return str(uuid.uuid5(_NAMESPACE, f"immediate/{account_id}/{contact_id}/{letter_id}"))


def digest_mail_id(account_id: str, contact_id: str, day: date) -> str:
    """One digest per recipient and day."""
    return str(uuid.uuid5(_NAMESPACE, f"digest/{account_id}/{contact_id}/{day.isoformat()}"))


def message_id(mail_id: str, domain: str) -> str:
    """RFC 5322 Message-ID, the same on every attempt, so a resend would be recognisable downstream."""
    return f"<{mail_id}@{domain}>"


def publication_day(published_at: datetime, tz: ZoneInfo) -> date:
    """The account's local calendar day on which a document became visible."""
    return published_at.astimezone(tz).date()


def latest_due_digest_day(now: datetime, tz: ZoneInfo, digest_time: time) -> date:
    """The digest for day D goes out on D+1 at ``digest_time`` local time; the latest D that is due at ``now``."""
    local = now.astimezone(tz)
    today = local.date()
    if local.time().replace(tzinfo=None) >= digest_time:
        return today - timedelta(days=1)
    return today - timedelta(days=2)


def digest_days_to_run(
    now: datetime, tz: ZoneInfo, digest_time: time, already_run: set[date], catchup_days: int
) -> list[date]:
    """Due days not yet run, oldest first; after an outage the last ``catchup_days`` days are caught up."""
    due = latest_due_digest_day(now, tz, digest_time)
    days = [due - timedelta(days=offset) for offset in range(catchup_days - 1, -1, -1)]
    return [day for day in days if day not in already_run]


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff after the ``attempts``-th failed attempt (1, 2, ...), capped."""
    exponent = max(attempts - 1, 0)
    return float(min(base_seconds * (2 ** min(exponent, 30)), max_seconds))


@dataclass(frozen=True)
class Recipient:
    """What the notifier knows about a contact from master data."""

    contact_id: str
    email: str | None
    portal_registered: bool
    archived: bool
    salutation: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""


class Ineligible(StrEnum):
    UNKNOWN_CONTACT = "unknown_contact"
    NOT_REGISTERED = "not_registered_in_portal"
    NO_EMAIL = "no_email_address"
    ARCHIVED = "contact_archived"


def ineligibility(recipient: Recipient | None) -> Ineligible | None:
    """Why a contact gets no mail, or None if they get one (registered in the portal, has an address)."""
    if recipient is None:
        return Ineligible.UNKNOWN_CONTACT
    if recipient.archived:
        return Ineligible.ARCHIVED
    if not recipient.portal_registered:
        return Ineligible.NOT_REGISTERED
    if not recipient.email or not recipient.email.strip():
        return Ineligible.NO_EMAIL
    return None


_FEMALE = {"frau", "ms", "ms.", "mrs", "mrs.", "miss"}
_MALE = {"herr", "herrn", "mr", "mr."}


def greeting(recipient: Recipient, language: str) -> str:
    """Salutation line: 'Sehr geehrte Frau Müller,' / 'Dear Mr Smith,'; neutral when unknown."""
    title = recipient.salutation.strip().lower()
    name = recipient.last_name.strip()
    full = " ".join(p for p in (recipient.first_name.strip(), name) if p)
    if language == "en":
        if name and title in _FEMALE:
            return f"Dear Ms {name},"
        if name and title in _MALE:
            return f"Dear Mr {name},"
        return f"Dear {full}," if full else "Dear Sir or Madam,"
    if name and title in _FEMALE:
        return f"Sehr geehrte Frau {name},"
    if name and title in _MALE:
        return f"Sehr geehrter Herr {name},"
    return f"Guten Tag {full}," if full else "Sehr geehrte Damen und Herren,"


@dataclass(frozen=True)
class DocumentLine:
    """One document as a mail lists it: no content, only what the portal shows in the inbox."""

    document_id: str
    title: str
    folder: tuple[str, ...]
    letter_date: date
    published_at: datetime
    property_name: str | None = None
    unit_label: str | None = None
    url: str = ""

    @property
    def folder_path(self) -> str:
        return " / ".join(self.folder)

    @property
    def location(self) -> str:
        return ", ".join(p for p in (self.property_name, self.unit_label) if p)


@dataclass(frozen=True)
class DocumentGroup:
    """Documents of one property (or none, for cross-property letters without property)."""

    heading: str | None
    documents: list[DocumentLine] = field(default_factory=list)


def group_for_mail(documents: list[DocumentLine]) -> list[DocumentGroup]:
    """Digest layout: by property (named first, alphabetically), inside by folder, date and title."""
    by_property: dict[str | None, list[DocumentLine]] = {}
    for doc in documents:
        by_property.setdefault(doc.property_name, []).append(doc)
    headings = sorted((h for h in by_property if h is not None), key=str.casefold)
    if None in by_property:
        headings_with_none: list[str | None] = [*headings, None]
    else:
        headings_with_none = list(headings)
    groups = []
    for heading in headings_with_none:
        docs = sorted(
            by_property[heading],
            key=lambda d: (d.folder_path.casefold(), d.letter_date, d.title.casefold(), d.unit_label or ""),
        )
        groups.append(DocumentGroup(heading, docs))
    return groups


@dataclass(frozen=True)
class Sender:
    account_name: str
    address: str
    name: str
    language: str
    portal_base_url: str
