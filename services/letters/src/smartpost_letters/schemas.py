"""HTTP request and response models of the letters API (clean JSON for the gateway; OpenAPI at /openapi.json)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from smartpost_letters.domain.models import (
    Assignment,
    DocumentRole,
    DocumentStatus,
    LetterStatus,
    MailpieceView,
    Part,
    SourceDocument,
    SplitFailure,
)
from smartpost_shared.contracts.common import DocumentType, LetterScope, SplitRule
from smartpost_shared.contracts.documents import AssignmentWarning
from smartpost_shared.contracts.letters import PrintOptions

if TYPE_CHECKING:
    from smartpost_letters.domain.document_types import DocumentTypeTree
    from smartpost_letters.domain.letter import SerialLetter


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------------- requests


class CreateLetterIn(Model):
    title: str = Field(min_length=1, max_length=200)
    document_type_id: str = Field(min_length=1)
    recipient_groups: list[str] = Field(min_length=1, examples=[["owners"]])
    scope: LetterScope = LetterScope.PROPERTY
    property_id: str | None = None
    include_archived: bool = False
    letter_date: date | None = None
    period_start: date | None = Field(
        default=None, description="billing period start (e.g. 2024-01-01); contracts overlapping the period count"
    )
    period_end: date | None = Field(default=None, description="billing period end (e.g. 2024-12-31)")


class ChangeDocumentIn(Model):
    role: DocumentRole
    rule: SplitRule | None = None


class ReorderIn(Model):
    order: list[str] = Field(min_length=1, description="every document id of the letter, cover letter first")


class ReassignIn(Model):
    contact_id: str = Field(min_length=1)
    property_id: str | None = None
    unit_id: str | None = None


class AcceptSafeIn(Model):
    """When a proposal counts as safe (defaults: the assignment service's own thresholds for automatic matches)."""

    min_score: float = Field(default=7.0, ge=0)
    min_margin: float = Field(default=3.0, ge=0)
    min_evidence: int = Field(default=2, ge=1)


class DeferPropertyIn(Model):
    property_id: str = Field(min_length=1)


class PrintOrderIn(PrintOptions):
    """The print options as a command body, strict about unknown fields.

    Unlike the tolerant wire contract, a misspelt option is refused (422) instead of silently falling back to a
    default (e.g. paper for everyone instead of post-preference only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def options(self) -> PrintOptions:
        return PrintOptions.model_validate(self.model_dump())


class ReleaseIn(Model):
    notify_by_email: bool = Field(description="e-mail registered recipients now, in addition to the daily digest")


class RevokeIn(Model):
    unit_id: str | None = Field(default=None, description="revoke this unit's letters ...")
    item_ids: list[str] | None = Field(default=None, description="... or exactly these items")
    reason: str = Field(min_length=1, max_length=500)


class DocumentTypeIn(Model):
    name: str = Field(min_length=1, max_length=100)
    parent_id: str | None = None


# ------------------------------------------------------------------------------------------------- responses


class AssignmentOut(Model):
    status: str
    contact_id: str | None
    property_id: str | None
    unit_id: str | None
    method: str | None
    score: float
    evidence: list[str]
    candidates: list[dict[str, Any]]
    decided_by: str | None
    deferred: bool = False

    @classmethod
    def of(cls, a: Assignment) -> AssignmentOut:
        return cls(
            status=a.status.value,
            contact_id=a.contact_id,
            property_id=a.property_id,
            unit_id=a.unit_id,
            method=a.method.value if a.method else None,
            score=a.score,
            evidence=a.evidence,
            candidates=[c.model_dump(mode="json") for c in a.candidates],
            decided_by=a.decided_by,
            deferred=a.deferred,
        )


class PartOut(Model):
    part_id: str
    document_id: str
    index: int
    first_page: int
    last_page: int
    page_count: int
    storage_key: str
    thumbnail_key: str | None
    size_bytes: int
    address_lines: list[str]
    identifiers: list[str]
    property_refs: list[str]
    unit_refs: list[str]
    split_warnings: list[str]
    assignment: AssignmentOut | None
    warnings: list[AssignmentWarning]

    @classmethod
    def of(cls, p: Part, warnings: list[AssignmentWarning]) -> PartOut:
        return cls(
            part_id=p.part_id,
            document_id=p.document_id,
            index=p.index,
            first_page=p.first_page,
            last_page=p.last_page,
            page_count=p.page_count,
            storage_key=p.storage_key,
            thumbnail_key=p.thumbnail_key,
            size_bytes=p.size_bytes,
            address_lines=p.address_lines,
            identifiers=p.identifiers,
            property_refs=p.property_refs,
            unit_refs=p.unit_refs,
            split_warnings=p.split_warnings,
            assignment=AssignmentOut.of(p.assignment) if p.assignment else None,
            warnings=[w for w in warnings if w.part_id == p.part_id],  # callers pass this part's warnings
        )


class DocumentOut(Model):
    document_id: str
    position: int
    filename: str
    role: DocumentRole
    rule: SplitRule | None
    status: DocumentStatus
    source_key: str
    size_bytes: int
    sha256: str
    page_count: int | None
    failure: SplitFailure | None
    split_warnings: list[str]
    warnings: list[AssignmentWarning] = Field(
        description="assignment warnings of this document (with ?parts=none only those of no single part)"
    )
    parts: list[PartOut] = Field(description="empty with ?parts=none: page them with GET /letters/{id}/parts")
    part_count: int = 0
    source_erased: bool = Field(
        default=False,
        description="the uploaded file and its thumbnails were deleted by a GDPR erasure (parts stay; no re-split)",
    )

    @classmethod
    def of(cls, d: SourceDocument, position: int, *, with_parts: bool = True) -> DocumentOut:
        by_part: dict[str | None, list[AssignmentWarning]] = {}
        for w in d.assignment_warnings:
            by_part.setdefault(w.part_id, []).append(w)
        return cls(
            document_id=d.document_id,
            position=position,
            filename=d.filename,
            role=d.role,
            rule=d.rule,
            status=d.status,
            source_key=d.source_key,
            size_bytes=d.size_bytes,
            sha256=d.sha256,
            page_count=d.page_count,
            failure=d.failure,
            split_warnings=d.split_warnings,
            warnings=d.assignment_warnings if with_parts else by_part.get(None, []),
            parts=[PartOut.of(p, by_part.get(p.part_id, [])) for p in d.parts] if with_parts else [],
            part_count=len(d.parts),
            source_erased=d.source_erased,
        )


class ItemOut(Model):
    item_id: str
    document_id: str
    part_id: str
    contact_id: str
    property_id: str | None
    unit_id: str | None
    storage_key: str
    page_count: int
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    first_viewed_at: datetime | None


class ReleaseOut(Model):
    released_at: datetime
    released_by: str
    notify_by_email: bool


class PrintOrderOut(Model):
    print_order_id: str
    ordered_at: datetime | None
    options: PrintOptions
    mailpieces: list[MailpieceView]


class CountsOut(Model):
    documents: int
    parts: int
    assigned: int
    undecided: int
    discarded: int
    warnings: int
    released_items: int
    revoked_items: int


class LetterOut(Model):
    letter_id: str
    version: int
    status: LetterStatus
    title: str
    document_type: DocumentType
    recipient_groups: list[str]
    scope: LetterScope
    property_id: str | None
    include_archived: bool
    letter_date: date
    period_start: date | None = None
    period_end: date | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    documents: list[DocumentOut]
    counts: CountsOut
    release_blockers: list[str] = Field(description="why release is not possible now (empty when it is)")
    review_confirmed_by: str | None
    release: ReleaseOut | None
    items: list[ItemOut] = Field(description="empty with ?items=none (the number is in counts.released_items)")
    print_order: PrintOrderOut | None
    deleted_at: datetime | None
    # "Aufbewahrungsfrist abgelaufen": the retention period ended and the letter's files were removed.
    retention_expired_at: datetime | None = None
    publish_problem: str | None = Field(
        default=None, description="an event of this letter cannot be published (the relay is stuck on it)"
    )

    @classmethod
    def of(cls, letter: SerialLetter, *, with_parts: bool = True, with_items: bool = True) -> LetterOut:
        parts = letter.parts()
        blockers = letter._release_blockers()  # noqa: SLF001 - the same rule the aggregate enforces
        if letter.status == LetterStatus.IN_REVIEW:
            blockers = [*blockers, "the review has not been confirmed"]
        elif letter.status != LetterStatus.REVIEWED:
            blockers = [f"the letter is {letter.status.value}"]
        items = [
            ItemOut(
                **item.model_dump(),
                revoked_at=letter.revoked.get(item.item_id, {}).get("at"),
                revoked_by=letter.revoked.get(item.item_id, {}).get("by"),
                revoke_reason=letter.revoked.get(item.item_id, {}).get("reason"),
                first_viewed_at=letter.viewed.get(item.item_id),
            )
            for item in (letter.items.values() if with_items else ())
        ]
        return cls(
            letter_id=str(letter.id),
            version=letter.version,
            status=letter.status,
            title=letter.title,
            document_type=letter.document_type,
            recipient_groups=letter.recipient_groups,
            scope=letter.scope,
            property_id=letter.property_id,
            include_archived=letter.include_archived,
            letter_date=letter.letter_date,
            period_start=getattr(letter, "period_start", None),
            period_end=getattr(letter, "period_end", None),
            created_by=letter.created_by,
            created_at=letter.created_on,
            updated_at=letter.modified_on,
            documents=[DocumentOut.of(d, i, with_parts=with_parts) for i, d in enumerate(letter.documents)],
            counts=CountsOut(
                documents=len(letter.documents),
                parts=len(parts),
                assigned=sum(1 for p in parts if p.is_assigned),
                undecided=sum(1 for p in parts if not p.is_decided),
                discarded=sum(1 for p in parts if p.is_discarded),
                warnings=sum(len(d.assignment_warnings) + len(d.split_warnings) for d in letter.documents),
                released_items=len(letter.items),
                revoked_items=len(letter.revoked),
            ),
            release_blockers=blockers,
            review_confirmed_by=letter.review_confirmed_by,
            release=ReleaseOut(
                released_at=letter.released_at,
                released_by=letter.released_by or "",
                notify_by_email=bool(letter.notify_by_email),
            )
            if letter.released_at
            else None,
            items=items,
            print_order=PrintOrderOut(
                print_order_id=letter.print_order_id,
                ordered_at=letter.print_ordered_at,
                options=letter.print_options,
                mailpieces=list(letter.mailpieces.values()),
            )
            if letter.print_order_id and letter.print_options
            else None,
            deleted_at=letter.deleted_at,
            retention_expired_at=letter.retention_expired_at,
        )


PART_FILTERS = ("all", "review", "unassigned", "needs_review", "assigned", "discarded", "deferred", "warnings")


def part_filters(p: Part, warned: set[str], *, cross_property: bool = False) -> set[str]:
    """The review list's filters a part is in: zur Prüfung (review), nicht zugeordnet (unassigned), ... .

    Across properties a part assigned without its contract (property and unit) blocks the Endkontrolle, so it is
    "zur Prüfung" until staff pick the contract or discard it.
    """
    a = p.assignment
    status = a.status.value if a else "unmatched"
    deferred = a is not None and a.deferred
    found = {"all"}
    without_contract = cross_property and p.is_assigned and a is not None and not (a.property_id and a.unit_id)
    if not p.is_decided or without_contract:
        found.add("review")
    if status == "unmatched":
        found.add("unassigned")
    if status == "needs_review":
        found.add("needs_review")
    if p.is_assigned:
        found.add("assigned")
    if p.is_discarded:
        found.add("deferred" if deferred else "discarded")
    if p.part_id in warned:
        found.add("warnings")
    return found


class PropertyCountOut(Model):
    property_id: str | None
    parts: int
    undecided: int
    deferred: int


class BulkActionOut(Model):
    bulk_id: str
    action: str
    property_id: str | None
    parts: int
    by: str
    at: datetime
    undone: bool


class PartsPageOut(Model):
    """One page of a letter's parts (the review list), with the counts behind every filter."""

    letter_id: str
    version: int
    status: LetterStatus
    filter: str
    property_id: str | None
    total: int = Field(description="parts matching the filter (and property)")
    offset: int
    limit: int
    parts: list[PartOut]
    filter_counts: dict[str, int]
    properties: list[PropertyCountOut]
    bulk_actions: list[BulkActionOut]

    @classmethod
    def of(
        cls,
        letter: SerialLetter,
        *,
        part_filter: str,
        property_id: str | None,
        offset: int,
        limit: int,
    ) -> PartsPageOut:
        warnings_by_part: dict[str, list[AssignmentWarning]] = {}
        for d in letter.documents:
            for w in d.assignment_warnings:
                if w.part_id is not None:
                    warnings_by_part.setdefault(w.part_id, []).append(w)
        warned = set(warnings_by_part) | {p.part_id for p in letter.parts() if p.split_warnings}
        parts = letter.parts()
        in_property = [
            p
            for p in parts
            if property_id is None
            or (p.assignment.property_id if p.assignment else None) == (None if property_id == "none" else property_id)
        ]
        cross = letter.scope == LetterScope.CROSS_PROPERTY
        filters = [(p, part_filters(p, warned, cross_property=cross)) for p in in_property]
        matching = [p for p, found in filters if part_filter in found]
        properties: dict[str | None, list[Part]] = {}
        for p in parts:
            properties.setdefault(p.assignment.property_id if p.assignment else None, []).append(p)
        return cls(
            letter_id=str(letter.id),
            version=letter.version,
            status=letter.status,
            filter=part_filter,
            property_id=property_id,
            total=len(matching),
            offset=offset,
            limit=limit,
            parts=[PartOut.of(p, warnings_by_part.get(p.part_id, [])) for p in matching[offset : offset + limit]],
            filter_counts={f: sum(1 for _, found in filters if f in found) for f in PART_FILTERS},
            properties=[
                PropertyCountOut(
                    property_id=pid,
                    parts=len(ps),
                    undecided=sum(1 for p in ps if not p.is_decided),
                    deferred=sum(1 for p in ps if p.assignment is not None and p.assignment.deferred),
                )
                for pid, ps in sorted(properties.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
            ],
            bulk_actions=[BulkActionOut(bulk_id=k, **v) for k, v in letter.bulk_actions.items()],
        )


class LetterSummaryOut(Model):
    letter_id: str
    title: str
    document_type_id: str
    document_type_path: list[str]
    scope: LetterScope
    property_id: str | None
    status: LetterStatus
    letter_date: date
    documents: int
    parts: int
    assigned: int
    undecided: int
    discarded: int
    warnings: int
    released_items: int
    revoked_items: int
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class LetterListOut(Model):
    letters: list[LetterSummaryOut]


class AuditEntryOut(Model):
    version: int
    timestamp: datetime
    actor: str
    action: str
    command_id: str | None
    details: dict[str, Any]


class AuditLogOut(Model):
    letter_id: str
    entries: list[AuditEntryOut]


class DocumentTypeNodeOut(Model):
    id: str
    name: str
    parent_id: str | None
    path: list[str]
    depth: int


class DocumentTypeTreeOut(Model):
    version: int
    nodes: list[DocumentTypeNodeOut]
    created_id: str | None = None

    @classmethod
    def of(cls, tree: DocumentTypeTree | None, created_id: str | None = None) -> DocumentTypeTreeOut:
        if tree is None:
            return cls(version=0, nodes=[], created_id=created_id)
        nodes = []
        for node_id, node in tree.nodes.items():
            path = tree.path(node_id)
            nodes.append(
                DocumentTypeNodeOut(
                    id=node_id, name=str(node["name"]), parent_id=node["parent_id"], path=path, depth=len(path)
                )
            )
        nodes.sort(key=lambda n: [p.casefold() for p in n.path])
        return cls(version=tree.version, nodes=nodes, created_id=created_id)


class ErrorOut(Model):
    detail: str
    code: str
    current_version: int | None = None
