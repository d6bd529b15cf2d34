"""Events of the print-dispatch service (``print.events``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from smartpost_shared.contracts.base import EventPayload
from smartpost_shared.contracts.common import Id
from smartpost_shared.contracts.envelope import register


class MailpieceStatus(StrEnum):
    CREATED = "created"
    VALIDATING = "validating"
    ACTION_REQUIRED = "action_required"
    SUBMITTED = "submitted"
    PRINTING = "printing"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    CANCELLED = "cancelled"


class LetterClass(StrEnum):
    STANDARD = "standard"
    KOMPAKT = "kompakt"
    GROSS = "gross"
    MAXI = "maxi"


@register
class PrintJobStatusChanged(EventPayload):
    """A mailpiece (one envelope to one contact) moved in its life cycle."""

    event_type = "PrintJobStatusChanged"
    print_order_id: Id
    letter_id: Id
    mailpiece_id: Id
    contact_id: Id
    item_ids: list[Id] = Field(default_factory=list)
    status: MailpieceStatus
    provider: str
    provider_ref: str | None = None
    tracking_number: str | None = None
    sheets: int | None = Field(default=None, ge=0)
    letter_class: LetterClass | None = None
    cost_cents: int | None = Field(default=None, ge=0)
    reason: str | None = None
