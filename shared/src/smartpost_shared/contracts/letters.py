"""Events the letters service (owner of the serial-letter aggregate) publishes on ``letters.events``."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field, model_validator

from smartpost_shared.contracts.base import Contract, EventPayload
from smartpost_shared.contracts.common import DocumentType, Id, LetterScope, SplitRule
from smartpost_shared.contracts.envelope import register


@register
class LetterCreated(EventPayload):
    event_type = "LetterCreated"
    letter_id: Id
    title: str = Field(min_length=1, max_length=200)
    document_type: DocumentType
    recipient_groups: list[str] = Field(min_length=1)
    scope: LetterScope
    property_id: Id | None = None
    include_archived: bool = False
    letter_date: date
    created_by: str
    # Since 2026-11 (additive, optional): the billing period the letter covers ("Abrechnungszeitraum 2024"). A
    # contract overlapping it makes its holder a recipient (a former owner gets the statement for their months);
    # without it the letter date decides. Both or neither.
    period_start: date | None = None
    period_end: date | None = None

    @model_validator(mode="after")
    def _period_complete(self) -> LetterCreated:
        if (self.period_start is None) != (self.period_end is None):
            msg = "period_start and period_end go together"
            raise ValueError(msg)
        if self.period_start is not None and self.period_end is not None and self.period_end < self.period_start:
            msg = "period_end must not be before period_start"
            raise ValueError(msg)
        return self


@register
class SplitRequested(EventPayload):
    """A source document of a letter must be split (role ``split``); attachments are appended to every part."""

    event_type = "SplitRequested"
    letter_id: Id
    document_id: Id
    source_key: str
    filename: str
    position: int = Field(ge=0)
    rule: SplitRule
    attachment_keys: list[str] = Field(default_factory=list)


class CorrectionAction(StrEnum):
    REASSIGN = "reassign"
    UNASSIGN = "unassign"
    DISCARD = "discard"


@register
class AssignmentCorrected(EventPayload):
    """Staff corrected the assignment of one part by hand."""

    event_type = "AssignmentCorrected"
    letter_id: Id
    document_id: Id
    part_id: Id
    action: CorrectionAction
    contact_id: Id | None = None
    property_id: Id | None = None
    unit_id: Id | None = None
    actor: str


class ReleasedItem(Contract):
    """One individual letter (Einzelbrief) as released: one part for one contact in one property/unit."""

    item_id: Id
    document_id: Id
    part_id: Id
    contact_id: Id
    property_id: Id | None = None
    unit_id: Id | None = None
    storage_key: str
    page_count: int = Field(ge=1)


@register
class LetterReleased(EventPayload):
    event_type = "LetterReleased"
    letter_id: Id
    title: str
    document_type: DocumentType
    letter_date: date
    notify_by_email: bool
    released_by: str
    items: list[ReleasedItem]
    # Since 2026-11 (additive, optional): the letter's billing period (see LetterCreated). The portal lets the holder
    # of a contract that overlaps it read the letter even after the contract ended (a former owner's statement for
    # their months); without it the contract's access window alone decides. Both or neither.
    period_start: date | None = None
    period_end: date | None = None

    @model_validator(mode="after")
    def _period_complete(self) -> LetterReleased:
        if (self.period_start is None) != (self.period_end is None):
            msg = "period_start and period_end go together"
            raise ValueError(msg)
        if self.period_start is not None and self.period_end is not None and self.period_end < self.period_start:
            msg = "period_end must not be before period_start"
            raise ValueError(msg)
        return self


class RecipientFilter(StrEnum):
    ALL = "all"
    POST_PREFERENCE = "post_preference"
    NOT_REGISTERED = "not_registered"
    NOT_VIEWED = "not_viewed"


class RegisteredMail(StrEnum):
    NONE = "none"
    EINWURF = "einwurf"
    UEBERGABE = "uebergabe"
    EIGENHAENDIG = "eigenhaendig"


class EnvelopeFormat(StrEnum):
    DL = "DL"
    C4 = "C4"


class PrintOptions(Contract):
    recipient_filter: RecipientFilter = RecipientFilter.ALL
    not_viewed_working_days: int = Field(default=5, ge=1, le=60)
    color: bool = False
    duplex: bool = True
    registered: RegisteredMail = RegisteredMail.NONE
    envelope: EnvelopeFormat = EnvelopeFormat.DL
    dispatch_date: date | None = None
    one_envelope_per_contact: bool = True
    provider: str = "filedrop"


@register
class PrintOrdered(EventPayload):
    event_type = "PrintOrdered"
    letter_id: Id
    print_order_id: Id
    title: str
    options: PrintOptions
    items: list[ReleasedItem]
    ordered_by: str


@register
class LetterItemsRevoked(EventPayload):
    """Released individual letters withdrawn from the portal (one unit's letter, or all on deletion)."""

    event_type = "LetterItemsRevoked"
    letter_id: Id
    item_ids: list[Id] = Field(min_length=1)
    reason: str
    actor: str
    letter_deleted: bool = False
