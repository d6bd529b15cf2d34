"""Results of the splitter (``splitter.events``) and the assignment service (``assignment.events``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from smartpost_shared.contracts.base import Contract, EventPayload
from smartpost_shared.contracts.common import Id, SplitStrategy
from smartpost_shared.contracts.envelope import register
from smartpost_shared.vocabulary import SplitFailureReason as SplitFailureReason  # noqa: PLC0414 - explicit re-export (the enum is pydantic-free: the splitter's sandbox workers use it)


class SplitPart(Contract):
    """One letter cut from a source document, with the evidence found on it. Pages are 1-based, inclusive."""

    part_id: Id
    index: int = Field(ge=0)
    first_page: int = Field(ge=1)
    last_page: int = Field(ge=1)
    page_count: int = Field(ge=1)
    storage_key: str
    thumbnail_key: str | None = None
    # Since splitter 2026-11: every part's PNG thumbnail sits in one object per document ("thumbnail pack"), bytes
    # thumbnail_offset .. thumbnail_offset + thumbnail_size - 1 of thumbnail_key; without them the object at
    # thumbnail_key is the PNG itself (earlier events). One PUT per document instead of one per part.
    thumbnail_offset: int | None = Field(default=None, ge=0)
    thumbnail_size: int | None = Field(default=None, ge=1)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    address_lines: list[str] = Field(default_factory=list)
    identifiers: list[str] = Field(default_factory=list)
    property_refs: list[str] = Field(default_factory=list)
    unit_refs: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # Since splitter 2026-12: the first page's lines outside the address window up to just after the salutation
    # (letterhead, information block, subject, the opening sentence), at most 40 lines of 160 characters. The
    # matcher looks the account's own property names and addresses up in them ("Wohnanlage Rosenhof · Abrechnung
    # 2024"); earlier events have none and are matched as before.
    context_lines: list[str] | None = None

    @model_validator(mode="after")
    def _thumbnail_range_complete(self) -> SplitPart:
        if (self.thumbnail_offset is None) != (self.thumbnail_size is None):
            msg = "thumbnail_offset and thumbnail_size go together (a byte range of thumbnail_key)"
            raise ValueError(msg)
        if self.thumbnail_offset is not None and self.thumbnail_key is None:
            msg = "a thumbnail range needs thumbnail_key"
            raise ValueError(msg)
        return self


@register
class DocumentSplit(EventPayload):
    event_type = "DocumentSplit"
    letter_id: Id
    document_id: Id
    source_key: str
    strategy: SplitStrategy
    source_page_count: int = Field(ge=1)
    parts: list[SplitPart] = Field(min_length=1)
    warnings: list[str] = Field(default_factory=list)


@register
class DocumentSplitFailed(EventPayload):
    event_type = "DocumentSplitFailed"
    letter_id: Id
    document_id: Id
    source_key: str
    reason_code: SplitFailureReason
    reason: str


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    NEEDS_REVIEW = "needs_review"
    UNMATCHED = "unmatched"
    DISCARDED = "discarded"


class AssignmentMethod(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class Candidate(Contract):
    contact_id: Id
    score: float
    property_id: Id | None = None
    unit_id: Id | None = None
    evidence: list[str] = Field(default_factory=list)


class PartAssignment(Contract):
    part_id: Id
    status: AssignmentStatus
    contact_id: Id | None = None
    property_id: Id | None = None
    unit_id: Id | None = None
    method: AssignmentMethod | None = None
    score: float = 0.0
    evidence: list[str] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)


class AssignmentWarning(Contract):
    code: str
    message: str
    contact_id: Id | None = None
    part_id: Id | None = None
    property_id: Id | None = None
    unit_id: Id | None = None


@register
class PagesAssigned(EventPayload):
    """Assignments for the parts of one source document (all parts, or the corrected ones if ``is_correction``)."""

    event_type = "PagesAssigned"
    letter_id: Id
    document_id: Id
    assignments: list[PartAssignment]
    warnings: list[AssignmentWarning] = Field(default_factory=list)
    is_correction: bool = False
