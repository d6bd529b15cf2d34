"""Events of the portal publisher (``portal.events``) and the notifier (``notifier.events``)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, Field

from smartpost_shared.contracts.base import EventPayload
from smartpost_shared.contracts.common import Id
from smartpost_shared.contracts.envelope import register


@register
class DocumentPublished(EventPayload):
    """An individual letter became visible in its recipient's portal inbox."""

    event_type = "DocumentPublished"
    document_id: Id
    letter_id: Id
    item_id: Id
    contact_id: Id
    property_id: Id | None = None
    unit_id: Id | None = None
    title: str
    folder: list[str]
    letter_date: date
    notify_by_email: bool
    published_at: AwareDatetime
    # False: the recipient's contract for the unit is outside the account's access window today (e.g. an owner who
    # sold years ago), so the portal keeps the document hidden and nobody announces it (no e-mail, no digest).
    visible_on_publication: bool = True


@register
class DocumentRevoked(EventPayload):
    event_type = "DocumentRevoked"
    document_id: Id
    letter_id: Id
    item_id: Id
    contact_id: Id
    reason: str


@register
class DocumentViewed(EventPayload):
    """First download of a document by its recipient (proof of delivery)."""

    event_type = "DocumentViewed"
    document_id: Id
    letter_id: Id
    item_id: Id
    contact_id: Id
    first_viewed_at: AwareDatetime


class NotificationKind(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


@register
class NotificationSent(EventPayload):
    event_type = "NotificationSent"
    notification_id: Id
    kind: NotificationKind
    contact_id: Id
    document_ids: list[Id] = Field(min_length=1)
    letter_id: Id | None = None
    digest_date: date | None = None
    sent_at: AwareDatetime
