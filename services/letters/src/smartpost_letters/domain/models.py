"""Value objects and entities of the serial letter. Pydantic models so they travel through the event store as JSON.

Entities (``SourceDocument``, ``Part``) are mutable and owned by the aggregate; only event ``apply`` methods
change them. Wire-contract value types (``SplitRule``, ``PrintOptions``, ...) are reused as they are.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from smartpost_shared.contracts.common import SplitRule
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    Candidate,
    SplitFailureReason,
)
from smartpost_shared.contracts.printing import MailpieceStatus


class LetterStatus(StrEnum):
    DRAFT = "draft"  # created; documents can be attached, reordered, removed
    SPLITTING = "splitting"  # split requested for every split document, waiting for the splitter
    ASSIGNING = "assigning"  # all documents split, waiting for the assignment service
    IN_REVIEW = "in_review"  # every part has a proposed assignment; staff review and correct
    REVIEWED = "reviewed"  # staff confirmed the review; release is possible
    RELEASED = "released"  # visible in the portal
    PRINT_ORDERED = "print_ordered"  # released and postal dispatch ordered
    DELETED = "deleted"  # withdrawn completely (terminal)


class DocumentRole(StrEnum):
    SPLIT = "split"  # cut into individual letters (the first document, the cover letter, always is)
    ATTACHMENT = "attachment"  # appended to every part of the split documents


class DocumentStatus(StrEnum):
    UPLOADED = "uploaded"
    SPLITTING = "splitting"
    SPLIT = "split"
    FAILED = "failed"


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitFailure(Value):
    reason_code: SplitFailureReason
    reason: str
    failed_at: datetime


class Assignment(Value):
    """The current assignment of one part (proposed by the assignment service or set by staff)."""

    status: AssignmentStatus
    contact_id: str | None = None
    property_id: str | None = None
    unit_id: str | None = None
    method: AssignmentMethod | None = None
    score: float = 0.0
    evidence: list[str] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    decided_by: str | None = None  # actor of a manual decision
    # Set aside by "diese Liegenschaft zurückstellen": not released with this letter (status discarded, undoable).
    deferred: bool = False


class Part(Entity):
    """One individual letter cut from a split document (pages 1-based, inclusive)."""

    part_id: str
    document_id: str
    index: int
    first_page: int
    last_page: int
    page_count: int
    storage_key: str
    thumbnail_key: str | None = None
    thumbnail_offset: int | None = None  # set: the PNG is a byte range of the document's thumbnail pack
    thumbnail_size: int | None = None
    sha256: str
    size_bytes: int
    address_lines: list[str] = Field(default_factory=list)
    identifiers: list[str] = Field(default_factory=list)
    property_refs: list[str] = Field(default_factory=list)
    unit_refs: list[str] = Field(default_factory=list)
    split_warnings: list[str] = Field(default_factory=list)
    assignment: Assignment | None = None

    @property
    def is_assigned(self) -> bool:
        return (
            self.assignment is not None
            and self.assignment.status == AssignmentStatus.ASSIGNED
            and self.assignment.contact_id is not None
        )

    @property
    def is_discarded(self) -> bool:
        return self.assignment is not None and self.assignment.status == AssignmentStatus.DISCARDED

    @property
    def is_decided(self) -> bool:
        return self.is_assigned or self.is_discarded


class BulkAction(StrEnum):
    DISCARD_UNMATCHED = "discard_unmatched"  # alle nicht zuordenbaren verwerfen
    ACCEPT_SAFE = "accept_safe"  # alle sicheren Vorschläge übernehmen
    DEFER_PROPERTY = "defer_property"  # diese Liegenschaft zurückstellen


class SafeProposalPolicy(Value):
    """When a proposal is safe to accept in bulk: the top candidate is unique and its evidence strong."""

    min_score: float = 7.0
    min_margin: float = 3.0
    min_evidence: int = 2


class BulkChange(Value):
    """One part changed by a bulk review action, with what it was before (for undo and the audit log)."""

    part_id: str
    document_id: str
    before: Assignment | None
    after: Assignment


class PendingAssignment(Value):
    """Assignments that arrived before this service recorded the split they refer to (topics race)."""

    assignments: list[dict[str, object]]
    warnings: list[AssignmentWarning] = Field(default_factory=list)
    answer_to: str = ""  # the split event these assignments answer (envelope causation id), "" if unknown


class SourceDocument(Entity):
    document_id: str
    filename: str
    role: DocumentRole
    rule: SplitRule | None = None
    source_key: str
    size_bytes: int
    sha256: str
    status: DocumentStatus = DocumentStatus.UPLOADED
    page_count: int | None = None
    split_warnings: list[str] = Field(default_factory=list)
    failure: SplitFailure | None = None
    parts: list[Part] = Field(default_factory=list)
    assignment_warnings: list[AssignmentWarning] = Field(default_factory=list)
    pending_assignment: PendingAssignment | None = None
    # The current round: the id of the SplitRequested event of the latest split of this document, and the id of
    # the DocumentSplit event recorded for it. An answer to another request is superseded, not applied.
    split_request_id: str | None = None
    split_event_id: str | None = None
    # The uploaded file and its thumbnail pack were deleted because a recipient in it was erased (GDPR): the
    # letter's split parts stay, the document cannot be split again (``SourceFilesErased``).
    source_erased: bool = False


class SplitRequest(Value):
    """What the splitter needs for one split document (becomes a ``SplitRequested`` wire event)."""

    document_id: str
    source_key: str
    filename: str
    position: int
    rule: SplitRule
    attachment_keys: list[str] = Field(default_factory=list)


class MailpieceView(Value):
    """Latest known status of one postal mailpiece of this letter."""

    mailpiece_id: str
    print_order_id: str
    contact_id: str
    item_ids: list[str] = Field(default_factory=list)
    status: MailpieceStatus
    provider: str
    provider_ref: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    sheets: int | None = None
    cost_cents: int | None = None
    updated_at: datetime
