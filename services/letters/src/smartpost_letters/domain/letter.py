"""The serial letter (Serienbrief) aggregate: event-sourced, pure (no I/O), the source of truth of its life cycle.

Every command method checks its invariants first and raises a :class:`DomainError` subclass; only then it triggers
one event. Events carry everything their ``apply`` needs and everything the outbox needs to build the wire event,
so the integration mapping never has to reconstruct the aggregate. Inbound results (split, assignment, print
status, viewed) are recorded idempotently: the inbound event id is remembered inside the aggregate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime  # noqa: TC003 - event fields are resolved at runtime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate

from smartpost_letters.domain.errors import (
    DocumentError,
    IllegalTransitionError,
    InboundMismatchError,
    InvalidLetterError,
    PartError,
    ReleaseBlockedError,
    SourceErasedError,
)
from smartpost_letters.domain.models import (
    Assignment,
    BulkAction,
    BulkChange,
    DocumentRole,
    DocumentStatus,
    LetterStatus,
    MailpieceView,
    Part,
    PendingAssignment,
    SafeProposalPolicy,
    SourceDocument,
    SplitFailure,
    SplitRequest,
)
from smartpost_shared.contracts.common import DocumentType, LetterScope, SplitRule
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    Candidate,
    PartAssignment,
    SplitFailureReason,
    SplitPart,
)
from smartpost_shared.contracts.envelope import deterministic_event_id
from smartpost_shared.contracts.letters import CorrectionAction, PrintOptions, ReleasedItem

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

MAX_TITLE_LENGTH = 200
EDITABLE_REVIEW_STATES = frozenset({LetterStatus.IN_REVIEW, LetterStatus.REVIEWED})
RELEASED_STATES = frozenset({LetterStatus.RELEASED, LetterStatus.PRINT_ORDERED})
PRINT_ORDER_NAMESPACE = uuid.UUID("5b0f6c55-2f0e-4c52-9a57-1d2b1b0d3e11")
PRODUCER = "letters"


class InboundOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same inbound event was recorded before: nothing changes
    STALE = "stale"  # kept for callers of older versions; answers of earlier rounds are now SUPERSEDED
    SUPERSEDED = "superseded"  # answers an earlier request (round): recorded as such, changes nothing else
    UNCHANGED = "unchanged"  # an echo of a command already applied that adds nothing: no event, no state change


def wire_event_id(letter_id: uuid.UUID, version: int, index: int) -> uuid.UUID:
    """The envelope id of the ``index``-th wire event of the stored event at ``version`` (new for every event)."""
    return deterministic_event_id(PRODUCER, letter_id, version, index)


def inbound_key(inbound_event_id: str, answer_to: str) -> str:
    """How an inbound answer is remembered: its event id, and the request it answers when that is known.

    A service that re-answers a NEW request with an event id it used before (same input, deterministic id) is
    then never mistaken for a redelivery of its earlier answer.
    """
    return f"{inbound_event_id}>{answer_to}" if answer_to else inbound_event_id


@dataclass(frozen=True)
class Actor:
    """Who issued a command, and the client's command id (empty when the client sent none)."""

    name: str
    command_id: str = ""


def item_id_for(letter_id: uuid.UUID, part_id: str) -> str:
    return f"{letter_id}:{part_id}"


class SerialLetter(Aggregate):
    """A serial letter of one account. ``status`` follows the state diagram in the service README."""

    # Set when the retention period ended and the files were removed (class default: letters stored before).
    retention_expired_at: datetime | None = None

    class Event(Aggregate.Event):
        account_id: str
        actor: str
        command_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, SerialLetter)
            if self.command_id:
                aggregate.processed_commands[self.command_id] = self.originator_version
            inbound = getattr(self, "inbound_event_id", "")
            if inbound:
                key = inbound_key(inbound, getattr(self, "answer_to", ""))
                aggregate.processed_inbound[key] = self.originator_version
            self.effect(aggregate)

        def effect(self, letter: SerialLetter) -> None:
            """Changes the letter's state; overridden by each event."""

    class Created(Event, Aggregate.Created):
        title: str
        document_type: DocumentType
        recipient_groups: list[str]
        scope: str
        property_id: str | None
        include_archived: bool
        letter_date: date
        # Optional billing period (added 2026-11; events stored before carry neither field).
        period_start: date | None = None
        period_end: date | None = None

    def __init__(  # noqa: PLR0913 - the Created event's fields
        self,
        *,
        account_id: str,
        actor: str,
        command_id: str,
        title: str,
        document_type: DocumentType,
        recipient_groups: list[str],
        scope: str,
        property_id: str | None,
        include_archived: bool,
        letter_date: date,
        period_start: date | None = None,
        period_end: date | None = None,
    ) -> None:
        self.account_id = account_id
        self.period_start = period_start
        self.period_end = period_end
        self.created_by = actor
        self.title = title
        self.document_type = document_type
        self.recipient_groups = list(recipient_groups)
        self.scope_value = str(scope)
        self.property_id = property_id
        self.include_archived = include_archived
        self.letter_date = letter_date
        self.status_value = str(LetterStatus.DRAFT)
        self.documents: list[SourceDocument] = []
        self.review_confirmed_by: str | None = None
        self.released_at: datetime | None = None
        self.released_by: str | None = None
        self.notify_by_email: bool | None = None
        self.items: dict[str, ReleasedItem] = {}
        self.revoked: dict[str, dict[str, Any]] = {}
        self.viewed: dict[str, datetime] = {}
        self.print_order_id: str | None = None
        self.print_options: PrintOptions | None = None
        self.print_ordered_at: datetime | None = None
        self.mailpieces: dict[str, MailpieceView] = {}
        self.deleted_at: datetime | None = None
        self.processed_commands: dict[str, int] = {command_id: 1} if command_id else {}
        self.processed_inbound: dict[str, int] = {}
        self.waiting_since: datetime | None = None  # since when the letter waits for another service

    # ----------------------------------------------------------------------------------------------- creation

    @classmethod
    def create(  # noqa: PLR0913 - the basic parameters of a serial letter
        cls,
        *,
        letter_id: uuid.UUID,
        account_id: str,
        title: str,
        document_type: DocumentType,
        recipient_groups: Sequence[str],
        scope: LetterScope,
        property_id: str | None,
        include_archived: bool,
        letter_date: date,
        actor: Actor,
        period_start: date | None = None,
        period_end: date | None = None,
    ) -> SerialLetter:
        title = title.strip()
        if not title:
            raise InvalidLetterError("the title must not be empty")
        if len(title) > MAX_TITLE_LENGTH:
            raise InvalidLetterError(f"the title must have at most {MAX_TITLE_LENGTH} characters")
        groups = [g.strip() for g in recipient_groups if g.strip()]
        if not groups:
            raise InvalidLetterError("at least one recipient group (e.g. owners, tenants) is required")
        if len(set(groups)) != len(groups):
            raise InvalidLetterError("recipient groups must not repeat")
        if scope == LetterScope.CROSS_PROPERTY and property_id:
            raise InvalidLetterError("a cross-property letter must not name a property")
        if scope == LetterScope.PROPERTY and not property_id:
            raise InvalidLetterError("a property letter needs a property")
        if not account_id:
            raise InvalidLetterError("the account is missing")
        if (period_start is None) != (period_end is None):
            raise InvalidLetterError("a billing period needs both its start and its end")
        if period_start is not None and period_end is not None and period_end < period_start:
            raise InvalidLetterError("the billing period ends before it starts")
        return cls._create(
            cls.Created,
            id=letter_id,
            account_id=account_id,
            actor=actor.name,
            command_id=actor.command_id,
            title=title,
            document_type=document_type,
            recipient_groups=groups,
            scope=str(scope),
            property_id=property_id,
            include_archived=include_archived,
            letter_date=letter_date,
            period_start=period_start,
            period_end=period_end,
        )

    # ----------------------------------------------------------------------------------------------- views

    @property
    def status(self) -> LetterStatus:
        return LetterStatus(self.status_value)

    @property
    def scope(self) -> LetterScope:
        return LetterScope(self.scope_value)

    def has_processed_command(self, command_id: str) -> bool:
        return bool(command_id) and command_id in self.processed_commands

    def document(self, document_id: str) -> SourceDocument:
        for doc in self.documents:
            if doc.document_id == document_id:
                return doc
        raise DocumentError(f"document {document_id} is not part of this letter")

    def parts(self) -> list[Part]:
        return [p for d in self.documents if d.role == DocumentRole.SPLIT for p in d.parts]

    def part(self, part_id: str) -> Part:
        for p in self.parts():
            if p.part_id == part_id:
                return p
        raise PartError(f"part {part_id} is not part of this letter")

    def active_item_ids(self) -> list[str]:
        return [i for i in self.items if i not in self.revoked]

    def split_documents(self) -> list[SourceDocument]:
        return [d for d in self.documents if d.role == DocumentRole.SPLIT]

    def undecided_parts(self) -> list[Part]:
        return [p for p in self.parts() if not p.is_decided]

    # ----------------------------------------------------------------------------------------------- helpers

    def _require(self, allowed: Iterable[LetterStatus], what: str) -> None:
        allowed_set = frozenset(allowed)
        if self.status not in allowed_set:
            names = ", ".join(sorted(s.value for s in allowed_set))
            raise IllegalTransitionError(f"cannot {what} while the letter is {self.status.value} (allowed: {names})")

    def _emit(self, event_class: type[SerialLetter.Event], actor: Actor, **fields: Any) -> None:
        self.trigger_event(
            event_class, account_id=self.account_id, actor=actor.name, command_id=actor.command_id, **fields
        )

    @staticmethod
    def _check_order(documents: Sequence[SourceDocument]) -> None:
        if documents and documents[0].role != DocumentRole.SPLIT:
            raise DocumentError(
                "the first document is the cover letter and is always split; an attachment cannot come first"
            )

    # ----------------------------------------------------------------------------------------------- documents

    class DocumentAttached(Event):
        document: SourceDocument

        def effect(self, letter: SerialLetter) -> None:
            letter.documents.append(self.document.model_copy(deep=True))

    def attach_document(
        self,
        *,
        document_id: str,
        filename: str,
        role: DocumentRole,
        rule: SplitRule | None,
        source_key: str,
        size_bytes: int,
        sha256: str,
        actor: Actor,
    ) -> None:
        self._require({LetterStatus.DRAFT}, "attach a document")
        if any(d.document_id == document_id for d in self.documents):
            raise DocumentError(f"document {document_id} is already attached")
        if size_bytes <= 0:
            raise DocumentError("the document is empty")
        if role == DocumentRole.SPLIT and rule is None:
            raise DocumentError("a document that is split needs a split rule")
        document = SourceDocument(
            document_id=document_id,
            filename=filename or f"{document_id}.pdf",
            role=role,
            rule=rule if role == DocumentRole.SPLIT else None,
            source_key=source_key,
            size_bytes=size_bytes,
            sha256=sha256,
        )
        self._check_order([*self.documents, document])
        self._emit(self.DocumentAttached, actor, document=document)

    class DocumentChanged(Event):
        document_id: str
        role: str
        rule: SplitRule | None

        def effect(self, letter: SerialLetter) -> None:
            doc = letter.document(self.document_id)
            doc.role = DocumentRole(self.role)
            doc.rule = self.rule
            doc.status = DocumentStatus.UPLOADED
            doc.failure = None

    def change_document(self, *, document_id: str, role: DocumentRole, rule: SplitRule | None, actor: Actor) -> None:
        self._require({LetterStatus.DRAFT}, "change a document")
        doc = self.document(document_id)
        if role == DocumentRole.SPLIT and rule is None:
            rule = doc.rule
            if rule is None:
                raise DocumentError("a document that is split needs a split rule")
        changed = doc.model_copy(update={"role": role})
        self._check_order([changed if d.document_id == document_id else d for d in self.documents])
        self._emit(
            self.DocumentChanged,
            actor,
            document_id=document_id,
            role=str(role),
            rule=rule if role == DocumentRole.SPLIT else None,
        )

    class DocumentRemoved(Event):
        document_id: str

        def effect(self, letter: SerialLetter) -> None:
            letter.documents = [d for d in letter.documents if d.document_id != self.document_id]

    def remove_document(self, *, document_id: str, actor: Actor) -> None:
        self._require({LetterStatus.DRAFT}, "remove a document")
        self.document(document_id)
        self._check_order([d for d in self.documents if d.document_id != document_id])
        self._emit(self.DocumentRemoved, actor, document_id=document_id)

    class DocumentsReordered(Event):
        order: list[str]

        def effect(self, letter: SerialLetter) -> None:
            by_id = {d.document_id: d for d in letter.documents}
            letter.documents = [by_id[i] for i in self.order]

    def reorder_documents(self, *, order: Sequence[str], actor: Actor) -> None:
        self._require({LetterStatus.DRAFT}, "reorder documents")
        current = [d.document_id for d in self.documents]
        if sorted(order) != sorted(current) or len(set(order)) != len(order):
            raise DocumentError("the new order must list every attached document exactly once")
        by_id = {d.document_id: d for d in self.documents}
        self._check_order([by_id[i] for i in order])
        self._emit(self.DocumentsReordered, actor, order=list(order))

    # ----------------------------------------------------------------------------------------------- splitting

    class SplitStarted(Event):
        requests: list[SplitRequest]

        def effect(self, letter: SerialLetter) -> None:
            requested = {
                r.document_id: str(wire_event_id(letter.id, self.originator_version, index))
                for index, r in enumerate(self.requests)
            }
            for doc in letter.documents:
                doc.failure = None
                doc.parts = []
                doc.split_warnings = []
                doc.assignment_warnings = []
                doc.pending_assignment = None
                doc.page_count = None
                doc.status = DocumentStatus.SPLITTING if doc.document_id in requested else DocumentStatus.UPLOADED
                doc.split_request_id = requested.get(doc.document_id)
                doc.split_event_id = None
            letter.review_confirmed_by = None
            letter.status_value = str(LetterStatus.SPLITTING)
            letter.waiting_since = self.timestamp

    def start_split(self, *, actor: Actor) -> list[SplitRequest]:
        self._require({LetterStatus.DRAFT}, "start the split")
        if not self.documents:
            raise DocumentError("attach at least the cover letter before splitting")
        self._check_order(self.documents)
        attachment_keys = [d.source_key for d in self.documents if d.role == DocumentRole.ATTACHMENT]
        requests: list[SplitRequest] = []
        for position, doc in enumerate(self.documents):
            if doc.role != DocumentRole.SPLIT:
                continue
            if doc.rule is None:
                raise DocumentError(f"document {doc.filename} has no split rule")
            if doc.source_erased:
                raise SourceErasedError(
                    f"the file of document {doc.filename} was deleted by a data erasure; upload it again to split"
                )
            requests.append(
                SplitRequest(
                    document_id=doc.document_id,
                    source_key=doc.source_key,
                    filename=doc.filename,
                    position=position,
                    rule=doc.rule,
                    attachment_keys=attachment_keys,
                )
            )
        self._emit(self.SplitStarted, actor, requests=requests)
        return requests

    class SplitRecorded(Event):
        inbound_event_id: str
        document_id: str
        page_count: int
        parts: list[Part]
        warnings: list[str]
        answer_to: str = ""

        def effect(self, letter: SerialLetter) -> None:
            doc = letter.document(self.document_id)
            doc.status = DocumentStatus.SPLIT
            doc.page_count = self.page_count
            doc.parts = [p.model_copy(deep=True) for p in self.parts]
            doc.split_warnings = list(self.warnings)
            doc.split_event_id = self.inbound_event_id
            letter.waiting_since = self.timestamp  # from now on: waiting for this document's assignment
            pending = doc.pending_assignment
            doc.pending_assignment = None
            if pending is not None and pending.answer_to in {"", self.inbound_event_id}:
                assignments = [PartAssignment.model_validate(a) for a in pending.assignments]
                if {a.part_id for a in assignments} <= {p.part_id for p in doc.parts}:
                    _apply_assignments(doc, assignments, pending.warnings, is_correction=False)
            letter.advance_after_inbound()

    def record_split(
        self,
        *,
        inbound_event_id: str,
        document_id: str,
        source_page_count: int,
        parts: Sequence[SplitPart],
        warnings: Sequence[str],
        actor: Actor,
        answer_to: str = "",
    ) -> InboundOutcome:
        if inbound_key(inbound_event_id, answer_to) in self.processed_inbound:
            return InboundOutcome.DUPLICATE
        doc = self.document(document_id)
        superseded = self._superseded_split_answer(doc, answer_to)
        if superseded:
            return self._record_superseded(inbound_event_id, answer_to, document_id, "DocumentSplit", superseded, actor)
        if not parts:
            raise InboundMismatchError("a split result without parts")
        other_part_ids = {p.part_id for p in self.parts() if p.document_id != document_id}
        seen: set[str] = set()
        for part in parts:
            if part.part_id in seen or part.part_id in other_part_ids:
                raise InboundMismatchError(f"part id {part.part_id} is not unique within the letter")
            seen.add(part.part_id)
            if not 1 <= part.first_page <= part.last_page <= source_page_count:
                raise InboundMismatchError(
                    f"part {part.part_id} has pages {part.first_page}-{part.last_page} outside 1-{source_page_count}"
                )
        recorded = [
            Part(
                part_id=p.part_id,
                document_id=document_id,
                index=p.index,
                first_page=p.first_page,
                last_page=p.last_page,
                page_count=p.page_count,
                storage_key=p.storage_key,
                thumbnail_key=p.thumbnail_key,
                thumbnail_offset=p.thumbnail_offset,
                thumbnail_size=p.thumbnail_size,
                sha256=p.sha256,
                size_bytes=p.size_bytes,
                address_lines=list(p.address_lines),
                identifiers=list(p.identifiers),
                property_refs=list(p.property_refs),
                unit_refs=list(p.unit_refs),
                split_warnings=list(p.warnings),
            )
            for p in sorted(parts, key=lambda p: p.index)
        ]
        self._emit(
            self.SplitRecorded,
            actor,
            inbound_event_id=inbound_event_id,
            document_id=document_id,
            page_count=source_page_count,
            parts=recorded,
            warnings=list(warnings),
            answer_to=answer_to,
        )
        return InboundOutcome.APPLIED

    def _superseded_split_answer(self, doc: SourceDocument, answer_to: str) -> str:
        """Why a split answer (result or failure) no longer applies; empty when it answers the current request."""
        if self.status != LetterStatus.SPLITTING or doc.status != DocumentStatus.SPLITTING:
            return f"the letter is {self.status.value} and the document {doc.status.value}, not splitting"
        if answer_to and doc.split_request_id and answer_to != doc.split_request_id:
            return f"answers split request {answer_to}, the current one is {doc.split_request_id}"
        return ""

    class AnswerSuperseded(Event):
        """An inbound answer to an earlier request (round): kept in the history, changes nothing else."""

        inbound_event_id: str
        answer_to: str
        document_id: str
        event_type: str
        reason: str

    def _record_superseded(
        self, inbound_event_id: str, answer_to: str, document_id: str, event_type: str, reason: str, actor: Actor
    ) -> InboundOutcome:
        self._emit(
            self.AnswerSuperseded,
            actor,
            inbound_event_id=inbound_event_id,
            answer_to=answer_to,
            document_id=document_id,
            event_type=event_type,
            reason=reason,
        )
        return InboundOutcome.SUPERSEDED

    class SplitFailed(Event):
        inbound_event_id: str
        document_id: str
        failure: SplitFailure
        answer_to: str = ""

        def effect(self, letter: SerialLetter) -> None:
            for doc in letter.documents:
                doc.parts = []
                doc.pending_assignment = None
                doc.assignment_warnings = []
                if doc.document_id == self.document_id:
                    doc.status = DocumentStatus.FAILED
                    doc.failure = self.failure
                elif doc.status != DocumentStatus.FAILED:
                    doc.status = DocumentStatus.UPLOADED
            letter.status_value = str(LetterStatus.DRAFT)

    def record_split_failure(
        self,
        *,
        inbound_event_id: str,
        document_id: str,
        reason_code: SplitFailureReason,
        reason: str,
        failed_at: datetime,
        actor: Actor,
        answer_to: str = "",
    ) -> InboundOutcome:
        if inbound_key(inbound_event_id, answer_to) in self.processed_inbound:
            return InboundOutcome.DUPLICATE
        doc = self.document(document_id)
        superseded = self._superseded_split_answer(doc, answer_to)
        if superseded:
            return self._record_superseded(
                inbound_event_id, answer_to, document_id, "DocumentSplitFailed", superseded, actor
            )
        failure = SplitFailure(reason_code=reason_code, reason=reason, failed_at=failed_at)
        self._emit(
            self.SplitFailed,
            actor,
            inbound_event_id=inbound_event_id,
            document_id=document_id,
            failure=failure,
            answer_to=answer_to,
        )
        return InboundOutcome.APPLIED

    class Reopened(Event):
        def effect(self, letter: SerialLetter) -> None:
            for doc in letter.documents:
                doc.parts = []
                doc.pending_assignment = None
                doc.assignment_warnings = []
                doc.split_warnings = []
                if doc.status != DocumentStatus.FAILED:
                    doc.status = DocumentStatus.UPLOADED
            letter.review_confirmed_by = None
            letter.status_value = str(LetterStatus.DRAFT)

    def reopen(self, *, actor: Actor) -> None:
        """Back to draft ("Dokumente bearbeiten"): split results and assignments are dropped."""
        self._require(
            {LetterStatus.SPLITTING, LetterStatus.ASSIGNING, LetterStatus.IN_REVIEW, LetterStatus.REVIEWED},
            "reopen the documents",
        )
        self._emit(self.Reopened, actor)

    # ----------------------------------------------------------------------------------------------- assignment

    class AssignmentsRecorded(Event):
        inbound_event_id: str
        document_id: str
        assignments: list[PartAssignment]
        warnings: list[AssignmentWarning]
        is_correction: bool
        answer_to: str = ""

        def effect(self, letter: SerialLetter) -> None:
            doc = letter.document(self.document_id)
            changed = _apply_assignments(doc, self.assignments, self.warnings, is_correction=self.is_correction)
            # A correction echo only completes a decision staff already made (and saw when they confirmed): it
            # never takes the review confirmation back. New automatic proposals do.
            if changed and not self.is_correction and letter.status == LetterStatus.REVIEWED:
                letter.review_confirmed_by = None
                letter.status_value = str(LetterStatus.IN_REVIEW)
            letter.advance_after_inbound()

    class AssignmentsDeferred(Event):
        inbound_event_id: str
        document_id: str
        pending: PendingAssignment
        answer_to: str = ""

        def effect(self, letter: SerialLetter) -> None:
            letter.document(self.document_id).pending_assignment = self.pending

    def record_assignments(  # noqa: PLR0911 - one outcome per case
        self,
        *,
        inbound_event_id: str,
        document_id: str,
        assignments: Sequence[PartAssignment],
        warnings: Sequence[AssignmentWarning],
        is_correction: bool,
        actor: Actor,
        answer_to: str = "",
    ) -> InboundOutcome:
        if inbound_key(inbound_event_id, answer_to) in self.processed_inbound:
            return InboundOutcome.DUPLICATE
        doc = self.document(document_id)
        accepting = {LetterStatus.SPLITTING, LetterStatus.ASSIGNING, *EDITABLE_REVIEW_STATES}

        def superseded(reason: str) -> InboundOutcome:
            return self._record_superseded(inbound_event_id, answer_to, document_id, "PagesAssigned", reason, actor)

        if self.status not in accepting:
            return superseded(f"the letter is {self.status.value}")
        if doc.status == DocumentStatus.SPLITTING and not is_correction:
            # The assignment service consumed the split result before we did: keep it until the split arrives.
            pending = PendingAssignment(
                assignments=[a.model_dump(mode="json") for a in assignments],
                warnings=list(warnings),
                answer_to=answer_to,
            )
            self._emit(
                self.AssignmentsDeferred,
                actor,
                inbound_event_id=inbound_event_id,
                document_id=document_id,
                pending=pending,
                answer_to=answer_to,
            )
            return InboundOutcome.APPLIED
        if doc.status != DocumentStatus.SPLIT:
            return superseded(f"the document is {doc.status.value}, not split")
        if not is_correction and answer_to and doc.split_event_id and answer_to != doc.split_event_id:
            return superseded(f"answers split result {answer_to}, the current one is {doc.split_event_id}")
        known = {p.part_id for p in doc.parts}
        unknown = sorted({a.part_id for a in assignments} - known)
        if unknown:
            raise InboundMismatchError(f"assignments name unknown part(s) of document {document_id}: {unknown}")
        if is_correction and not _echo_adds_something(doc, assignments, warnings):
            return InboundOutcome.UNCHANGED
        self._emit(
            self.AssignmentsRecorded,
            actor,
            inbound_event_id=inbound_event_id,
            document_id=document_id,
            assignments=list(assignments),
            warnings=list(warnings),
            is_correction=is_correction,
            answer_to=answer_to,
        )
        return InboundOutcome.APPLIED

    def advance_after_inbound(self) -> None:
        """Move splitting -> assigning -> in_review as results come in (called from event effects only)."""
        split_docs = self.split_documents()
        if self.status == LetterStatus.SPLITTING and all(d.status == DocumentStatus.SPLIT for d in split_docs):
            self.status_value = str(LetterStatus.ASSIGNING)
        if self.status == LetterStatus.ASSIGNING and all(p.assignment is not None for p in self.parts()):
            self.status_value = str(LetterStatus.IN_REVIEW)

    class PartCorrected(Event):
        document_id: str
        part_id: str
        action: str
        contact_id: str | None
        property_id: str | None
        unit_id: str | None

        def effect(self, letter: SerialLetter) -> None:
            part = letter.part(self.part_id)
            previous = part.assignment
            status = {
                CorrectionAction.REASSIGN: AssignmentStatus.ASSIGNED,
                CorrectionAction.UNASSIGN: AssignmentStatus.UNMATCHED,
                CorrectionAction.DISCARD: AssignmentStatus.DISCARDED,
            }[CorrectionAction(self.action)]
            part.assignment = Assignment(
                status=status,
                contact_id=self.contact_id,
                property_id=self.property_id,
                unit_id=self.unit_id,
                method=AssignmentMethod.MANUAL,
                score=1.0 if status == AssignmentStatus.ASSIGNED else 0.0,
                evidence=[f"manual {self.action} by {self.actor}"],
                candidates=list(previous.candidates) if previous else [],
                decided_by=self.actor,
            )
            letter.review_confirmed_by = None
            letter.status_value = str(LetterStatus.IN_REVIEW)

    def reassign_part(
        self, *, part_id: str, contact_id: str, property_id: str | None, unit_id: str | None, actor: Actor
    ) -> None:
        self._require(EDITABLE_REVIEW_STATES, "reassign a part")
        part = self.part(part_id)
        if not contact_id:
            raise PartError("a contact is required to reassign a part")
        if self.scope == LetterScope.PROPERTY:
            if property_id and property_id != self.property_id:
                raise PartError(
                    f"property {property_id} is not the letter's property {self.property_id}; "
                    "use a cross-property letter for several properties"
                )
            property_id = self.property_id
        self._emit(
            self.PartCorrected,
            actor,
            document_id=part.document_id,
            part_id=part_id,
            action=str(CorrectionAction.REASSIGN),
            contact_id=contact_id,
            property_id=property_id,
            unit_id=unit_id,
        )

    def unassign_part(self, *, part_id: str, actor: Actor) -> None:
        self._correct_without_contact(part_id, CorrectionAction.UNASSIGN, actor)

    def discard_part(self, *, part_id: str, actor: Actor) -> None:
        self._correct_without_contact(part_id, CorrectionAction.DISCARD, actor)

    def _correct_without_contact(self, part_id: str, action: CorrectionAction, actor: Actor) -> None:
        self._require(EDITABLE_REVIEW_STATES, f"{action.value} a part")
        part = self.part(part_id)
        self._emit(
            self.PartCorrected,
            actor,
            document_id=part.document_id,
            part_id=part_id,
            action=str(action),
            contact_id=None,
            property_id=None,
            unit_id=None,
        )

    # ----------------------------------------------------------------------------------------------- bulk review

    class BulkReviewed(Event):
        """One bulk review action: every part it changed, before and after (undo restores ``before``)."""

        bulk_id: str
        action: str
        property_id: str | None
        changes: list[BulkChange]

        def effect(self, letter: SerialLetter) -> None:
            by_id = {p.part_id: p for p in letter.parts()}
            for change in self.changes:
                by_id[change.part_id].assignment = change.after
            letter.bulk_changes[self.bulk_id] = list(self.changes)
            letter.bulk_actions[self.bulk_id] = {
                "action": self.action,
                "property_id": self.property_id,
                "parts": len(self.changes),
                "by": self.actor,
                "at": self.timestamp,
                "undone": False,
            }
            letter.review_confirmed_by = None
            letter.status_value = str(LetterStatus.IN_REVIEW)

    class BulkReviewUndone(Event):
        bulk_id: str
        restored: list[BulkChange]  # after = what the part is again (the bulk action's ``before``)

        def effect(self, letter: SerialLetter) -> None:
            by_id = {p.part_id: p for p in letter.parts()}
            for change in self.restored:
                by_id[change.part_id].assignment = change.after
            if self.bulk_id in letter.bulk_actions:
                letter.bulk_actions[self.bulk_id] = {**letter.bulk_actions[self.bulk_id], "undone": True}
            letter.review_confirmed_by = None
            letter.status_value = str(LetterStatus.IN_REVIEW)

    def _manual(self, before: Assignment | None, actor: Actor, **fields: Any) -> Assignment:
        return Assignment(
            method=AssignmentMethod.MANUAL,
            decided_by=actor.name,
            candidates=list(before.candidates) if before else [],
            **fields,
        )

    def bulk_review(
        self,
        *,
        bulk_id: str,
        action: BulkAction,
        actor: Actor,
        property_id: str | None = None,
        policy: SafeProposalPolicy | None = None,
    ) -> list[BulkChange]:
        """One command for many parts. Parts staff assigned or discarded by hand are never touched."""
        self._require(EDITABLE_REVIEW_STATES, f"run the bulk action {action.value}")
        if bulk_id in self.bulk_actions:
            raise PartError(f"bulk action {bulk_id} was already recorded")
        if action == BulkAction.DEFER_PROPERTY and not property_id:
            raise PartError("a property is required to set its letters aside")
        policy = policy or SafeProposalPolicy()
        changes: list[BulkChange] = []
        for part in self.parts():
            before = part.assignment
            if before is not None and before.method == AssignmentMethod.MANUAL and part.is_decided:
                continue  # a decision staff made by hand is never overridden in bulk
            after = self._bulk_outcome(part, action, actor, property_id, policy)
            if after is not None:
                changes.append(
                    BulkChange(part_id=part.part_id, document_id=part.document_id, before=before, after=after)
                )
        if not changes:
            raise PartError(f"the bulk action {action.value} finds no part to change")
        self._emit(
            self.BulkReviewed, actor, bulk_id=bulk_id, action=str(action), property_id=property_id, changes=changes
        )
        return changes

    def _bulk_outcome(  # noqa: PLR0911 - one outcome per bulk action and case
        self, part: Part, action: BulkAction, actor: Actor, property_id: str | None, policy: SafeProposalPolicy
    ) -> Assignment | None:
        before = part.assignment
        if action == BulkAction.DISCARD_UNMATCHED:
            if before is not None and (before.status != AssignmentStatus.UNMATCHED or before.candidates):
                return None
            return self._manual(
                before, actor, status=AssignmentStatus.DISCARDED, evidence=["keinem Kontakt zuordenbar, verworfen"]
            )
        if action == BulkAction.DEFER_PROPERTY:
            if before is None or before.property_id != property_id or before.status == AssignmentStatus.DISCARDED:
                return None
            return before.model_copy(
                update={
                    "status": AssignmentStatus.DISCARDED,
                    "method": AssignmentMethod.MANUAL,
                    "decided_by": actor.name,
                    "deferred": True,
                    "evidence": [*before.evidence, f"Liegenschaft {property_id} zurückgestellt"],
                }
            )
        top = _safe_candidate(before, policy)
        if top is None:
            return None
        placement = top.property_id or (before.property_id if before else None)
        if self.scope == LetterScope.PROPERTY:
            placement = self.property_id
        elif not (placement and top.unit_id):
            # Across properties a letter is only released with its contract (property and unit): accepting a
            # candidate without one would only move the part from "zur Prüfung" to a blocked release.
            return None
        return self._manual(
            before,
            actor,
            status=AssignmentStatus.ASSIGNED,
            contact_id=top.contact_id,
            property_id=placement,
            unit_id=top.unit_id,
            score=top.score,
            evidence=[*top.evidence, "sicherer Vorschlag übernommen"],
        )

    def undo_bulk_review(self, *, bulk_id: str, actor: Actor) -> list[BulkChange]:
        """Restore what a bulk action changed, for every part nobody changed since (before release only)."""
        self._require(EDITABLE_REVIEW_STATES, "undo a bulk action")
        recorded = self.bulk_actions.get(bulk_id)
        if recorded is None:
            raise PartError(f"no bulk action {bulk_id} in this letter")
        if recorded["undone"]:
            raise PartError(f"bulk action {bulk_id} was already undone")
        by_id = {p.part_id: p for p in self.parts()}
        restored: list[BulkChange] = []
        for change in self._bulk_changes(bulk_id):
            part = by_id.get(change.part_id)
            if part is None or part.assignment != change.after or change.before is None:
                continue
            restored.append(change.model_copy(update={"before": change.after, "after": change.before}))
        self._emit(self.BulkReviewUndone, actor, bulk_id=bulk_id, restored=restored)
        return restored

    def _bulk_changes(self, bulk_id: str) -> list[BulkChange]:
        return list(self.bulk_changes.get(bulk_id, []))

    @property
    def bulk_actions(self) -> dict[str, dict[str, Any]]:
        """Bulk review actions of this letter (kept in state; letters stored before bulk actions have none)."""
        found: dict[str, dict[str, Any]] = self.__dict__.setdefault("bulk_action_log", {})
        return found

    @property
    def bulk_changes(self) -> dict[str, list[BulkChange]]:
        found: dict[str, list[BulkChange]] = self.__dict__.setdefault("bulk_change_log", {})
        return found

    # ----------------------------------------------------------------------------------------------- review, release

    def _release_blockers(self) -> list[str]:
        blockers: list[str] = []
        parts = self.parts()
        if not parts:
            blockers.append("the letter has no parts")
        undecided = [p.part_id for p in parts if not p.is_decided]
        if undecided:
            blockers.append(f"{len(undecided)} part(s) are neither assigned nor discarded: {', '.join(undecided)}")
        if parts and not any(p.is_assigned for p in parts):
            blockers.append("at least one part must be assigned to a contact")
        if self.scope == LetterScope.CROSS_PROPERTY:
            # Across properties the contact alone does not say which contract (property and unit) a letter is for:
            # the portal's access window, the unit shown to the recipient and the paper address depend on it.
            without = [
                p.part_id
                for p in parts
                if p.is_assigned
                and p.assignment is not None
                and not (p.assignment.property_id and p.assignment.unit_id)
            ]
            if without:
                blockers.append(
                    f"{len(without)} part(s) have no contract (property and unit) in a cross-property letter: "
                    + ", ".join(without)
                )
        return blockers

    class ReviewConfirmed(Event):
        def effect(self, letter: SerialLetter) -> None:
            letter.review_confirmed_by = self.actor
            letter.status_value = str(LetterStatus.REVIEWED)

    def confirm_review(self, *, actor: Actor) -> None:
        self._require({LetterStatus.IN_REVIEW}, "confirm the review")
        blockers = self._release_blockers()
        if blockers:
            raise ReleaseBlockedError("review cannot be confirmed: " + "; ".join(blockers))
        self._emit(self.ReviewConfirmed, actor)

    class Released(Event):
        title: str
        document_type: DocumentType
        letter_date: date
        notify_by_email: bool
        items: list[ReleasedItem]
        # The letter's billing period, carried to the portal (added 2026-11; older events carry neither field).
        period_start: date | None = None
        period_end: date | None = None

        def effect(self, letter: SerialLetter) -> None:
            letter.items = {i.item_id: i for i in self.items}
            letter.notify_by_email = self.notify_by_email
            letter.released_at = self.timestamp
            letter.released_by = self.actor
            letter.status_value = str(LetterStatus.RELEASED)

    def release(self, *, notify_by_email: bool, actor: Actor, four_eyes: bool = False) -> list[ReleasedItem]:
        if self.status == LetterStatus.IN_REVIEW:
            blockers = self._release_blockers() or ["the review has not been confirmed"]
            raise ReleaseBlockedError("cannot release: " + "; ".join(blockers))
        self._require({LetterStatus.REVIEWED}, "release")
        reviewer = self.review_confirmed_by
        if four_eyes and reviewer is not None and reviewer.casefold() == actor.name.casefold():
            raise ReleaseBlockedError(
                "four-eyes release: the review was confirmed by the same person; another person must release"
            )
        blockers = self._release_blockers()
        if blockers:
            raise ReleaseBlockedError("cannot release: " + "; ".join(blockers))
        items = [
            ReleasedItem(
                item_id=item_id_for(self.id, p.part_id),
                document_id=p.document_id,
                part_id=p.part_id,
                contact_id=p.assignment.contact_id,
                property_id=p.assignment.property_id,
                unit_id=p.assignment.unit_id,
                storage_key=p.storage_key,
                page_count=p.page_count,
            )
            for p in self.parts()
            if p.is_assigned and p.assignment is not None and p.assignment.contact_id is not None
        ]
        self._emit(
            self.Released,
            actor,
            title=self.title,
            document_type=self.document_type,
            letter_date=self.letter_date,
            notify_by_email=notify_by_email,
            items=items,
            period_start=getattr(self, "period_start", None),
            period_end=getattr(self, "period_end", None),
        )
        return items

    class PrintOrderPlaced(Event):
        print_order_id: str
        title: str
        options: PrintOptions
        items: list[ReleasedItem]

        def effect(self, letter: SerialLetter) -> None:
            letter.print_order_id = self.print_order_id
            letter.print_options = self.options
            letter.print_ordered_at = self.timestamp
            letter.status_value = str(LetterStatus.PRINT_ORDERED)

    def order_print(self, *, options: PrintOptions, today: date, actor: Actor) -> str:
        if self.status == LetterStatus.PRINT_ORDERED:
            raise IllegalTransitionError(f"postal dispatch was already ordered ({self.print_order_id})")
        self._require({LetterStatus.RELEASED}, "order postal dispatch")
        if options.dispatch_date is not None and options.dispatch_date < today:
            raise IllegalTransitionError("the dispatch date lies in the past")
        active = self.active_item_ids()
        if not active:
            raise IllegalTransitionError("every released letter has been revoked; nothing to print")
        print_order_id = str(uuid.uuid5(PRINT_ORDER_NAMESPACE, str(self.id)))
        self._emit(
            self.PrintOrderPlaced,
            actor,
            print_order_id=print_order_id,
            title=self.title,
            options=options,
            items=[self.items[i] for i in active],
        )
        return print_order_id

    # ----------------------------------------------------------------------------------------------- revoke, delete

    class ItemsRevoked(Event):
        item_ids: list[str]
        unit_id: str | None
        reason: str

        def effect(self, letter: SerialLetter) -> None:
            for item_id in self.item_ids:
                letter.revoked[item_id] = {"at": self.timestamp, "reason": self.reason, "by": self.actor}

    def revoke(self, *, unit_id: str | None, item_ids: Sequence[str] | None, reason: str, actor: Actor) -> list[str]:
        """Withdraw released letters of one unit (or the given items) from the portal."""
        self._require(RELEASED_STATES, "revoke released letters")
        if not reason.strip():
            raise IllegalTransitionError("a reason is required to revoke letters")
        if (unit_id is None) == (item_ids is None):
            raise IllegalTransitionError("name either a unit or the item ids to revoke")
        active = self.active_item_ids()
        if unit_id is not None:
            selected = [i for i in active if self.items[i].unit_id == unit_id]
            if not selected:
                raise IllegalTransitionError(f"no released, not yet revoked letter for unit {unit_id}")
        else:
            assert item_ids is not None
            unknown = sorted(set(item_ids) - set(self.items))
            if unknown:
                raise IllegalTransitionError(f"unknown item(s): {', '.join(unknown)}")
            already = sorted(set(item_ids) & set(self.revoked))
            if already:
                raise IllegalTransitionError(f"already revoked: {', '.join(already)}")
            selected = [i for i in active if i in set(item_ids)]
            if not selected:
                raise IllegalTransitionError("no item to revoke")
        self._emit(self.ItemsRevoked, actor, item_ids=selected, unit_id=unit_id, reason=reason.strip())
        return selected

    class Deleted(Event):
        reason: str
        title: str
        revoked_item_ids: list[str]

        def effect(self, letter: SerialLetter) -> None:
            for item_id in self.revoked_item_ids:
                letter.revoked[item_id] = {"at": self.timestamp, "reason": self.reason, "by": self.actor}
            letter.deleted_at = self.timestamp
            letter.status_value = str(LetterStatus.DELETED)

    def delete(self, *, reason: str, actor: Actor) -> list[str]:
        if self.status == LetterStatus.DELETED:
            raise IllegalTransitionError("the letter is already deleted")
        revoked = self.active_item_ids()
        self._emit(
            self.Deleted,
            actor,
            reason=reason.strip() or "serial letter deleted",
            title=self.title,
            revoked_item_ids=revoked,
        )
        return revoked

    # ----------------------------------------------------------------------------------------------- retention

    class RetentionExpired(Event):
        """The retention period ended and the letter's files were removed ("Aufbewahrungsfrist abgelaufen").

        The history stays: it is the audit record of what was removed, by whom and when.
        """

        document_type_path: list[str]
        retention_years: int
        retention_source: str
        retention_ended: date
        parts: int
        objects_deleted: int

        def effect(self, letter: SerialLetter) -> None:
            letter.retention_expired_at = self.timestamp

    def expire_retention(
        self,
        *,
        retention_years: int,
        retention_source: str,
        retention_ended: date,
        objects_deleted: int,
        actor: Actor,
    ) -> None:
        if self.retention_expired_at is not None:
            raise IllegalTransitionError("the retention period of this letter has already expired")
        self._emit(
            self.RetentionExpired,
            actor,
            document_type_path=list(self.document_type.path),
            retention_years=retention_years,
            retention_source=retention_source,
            retention_ended=retention_ended,
            parts=len(self.parts()),
            objects_deleted=objects_deleted,
        )

    def stored_files(self) -> list[str]:
        """Every storage key of this letter's files: uploaded sources, part PDFs and thumbnails (deduplicated)."""
        keys: list[str] = [document.source_key for document in self.documents]
        for part in self.parts():
            keys.append(part.storage_key)
            if part.thumbnail_key:
                keys.append(part.thumbnail_key)
        return list(dict.fromkeys(keys))

    # ----------------------------------------------------------------------------------------------- waiting

    def waiting_for(self) -> tuple[str, datetime] | None:
        """What the letter waits for from another service and since when; None when staff or nobody is next.

        ``splitter`` (split requested, no answer for every document), ``assignment`` (split, no assignments yet),
        ``print-dispatch`` (print ordered, no mailpiece status yet).
        """
        since: datetime = getattr(self, "waiting_since", None) or self.modified_on
        if self.status == LetterStatus.SPLITTING:
            return "splitter", since
        if self.status == LetterStatus.ASSIGNING:
            return "assignment", since
        if self.status == LetterStatus.PRINT_ORDERED and not self.mailpieces and self.print_ordered_at is not None:
            return "print-dispatch", self.print_ordered_at
        return None

    class RequestsResent(Event):
        """Staff re-sent the open requests ("erneut anstoßen"): the same events again, consumers dedupe them."""

        waiting_for: str
        event_ids: list[str]

    def record_resend(self, *, waiting_for: str, event_ids: Sequence[str], actor: Actor) -> None:
        current = self.waiting_for()
        if current is None or current[0] != waiting_for:
            raise IllegalTransitionError(f"the letter does not wait for {waiting_for} (it is {self.status.value})")
        self._emit(self.RequestsResent, actor, waiting_for=waiting_for, event_ids=list(event_ids))

    # ----------------------------------------------------------------------------------------------- print, portal

    class MailpieceStatusRecorded(Event):
        inbound_event_id: str
        mailpiece: MailpieceView

        def effect(self, letter: SerialLetter) -> None:
            letter.mailpieces[self.mailpiece.mailpiece_id] = self.mailpiece

    def record_mailpiece_status(
        self, *, inbound_event_id: str, mailpiece: MailpieceView, actor: Actor
    ) -> InboundOutcome:
        if inbound_event_id in self.processed_inbound:
            return InboundOutcome.DUPLICATE
        if self.print_order_id is None or mailpiece.print_order_id != self.print_order_id:
            raise InboundMismatchError(
                f"print order {mailpiece.print_order_id} does not belong to this letter "
                f"(ordered: {self.print_order_id})"
            )
        current = self.mailpieces.get(mailpiece.mailpiece_id)
        if current is not None and current.model_dump(exclude={"updated_at"}) == mailpiece.model_dump(
            exclude={"updated_at"}
        ):
            return InboundOutcome.DUPLICATE
        self._emit(self.MailpieceStatusRecorded, actor, inbound_event_id=inbound_event_id, mailpiece=mailpiece)
        return InboundOutcome.APPLIED

    class ItemViewed(Event):
        inbound_event_id: str
        item_id: str
        first_viewed_at: datetime

        def effect(self, letter: SerialLetter) -> None:
            letter.viewed[self.item_id] = self.first_viewed_at

    def record_viewed(
        self, *, inbound_event_id: str, item_id: str, first_viewed_at: datetime, actor: Actor
    ) -> InboundOutcome:
        if inbound_event_id in self.processed_inbound:
            return InboundOutcome.DUPLICATE
        if item_id not in self.items:
            raise InboundMismatchError(f"item {item_id} was not released by this letter")
        seen = self.viewed.get(item_id)
        if seen is not None and seen <= first_viewed_at:
            return InboundOutcome.DUPLICATE
        self._emit(
            self.ItemViewed,
            actor,
            inbound_event_id=inbound_event_id,
            item_id=item_id,
            first_viewed_at=first_viewed_at,
        )
        return InboundOutcome.APPLIED


def _safe_candidate(proposal: Assignment | None, policy: SafeProposalPolicy) -> Candidate | None:
    """The proposal's top candidate if it is safe to accept without looking.

    Safe: a proposal waiting for review, its top candidate alone at the top (no other contact or placement within
    ``min_margin``), scored at least ``min_score``, with at least ``min_evidence`` pieces of evidence. Anything
    less stays with staff.
    """
    if proposal is None or proposal.status != AssignmentStatus.NEEDS_REVIEW or not proposal.candidates:
        return None
    ranked = sorted(proposal.candidates, key=lambda c: c.score, reverse=True)
    top = ranked[0]
    if top.score < policy.min_score or len(top.evidence) < policy.min_evidence:
        return None
    if len(ranked) > 1 and top.score - ranked[1].score < policy.min_margin:
        return None
    if proposal.contact_id is not None and proposal.contact_id != top.contact_id:
        return None
    return top


def _echo_adds_something(
    doc: SourceDocument, assignments: Sequence[PartAssignment], warnings: Sequence[AssignmentWarning]
) -> bool:
    """Whether a correction echo changes more than wording.

    That is a placement staff left open, or the warnings of the corrected parts. Evidence alone is not worth an
    event (the audit log has the manual decision).
    """
    by_id = {p.part_id: p for p in doc.parts}
    touched: set[str] = set()
    for proposal in assignments:
        current = by_id[proposal.part_id].assignment
        if current is None or current.method != AssignmentMethod.MANUAL or current.contact_id != proposal.contact_id:
            continue
        if proposal.status not in {current.status, AssignmentStatus.ASSIGNED}:
            continue
        touched.add(proposal.part_id)
        if (proposal.property_id and proposal.property_id != current.property_id) or (
            proposal.unit_id and proposal.unit_id != current.unit_id
        ):
            return True
    before = [w for w in doc.assignment_warnings if w.part_id in touched]
    after = [w for w in warnings if w.part_id in touched]
    return before != after


def _apply_assignments(
    doc: SourceDocument,
    assignments: Sequence[PartAssignment],
    warnings: Sequence[AssignmentWarning],
    *,
    is_correction: bool,
) -> bool:
    """Put proposed assignments on the parts; manual decisions of staff are never overwritten by automation.

    A correction (the assignment service's echo of a manual correction) only enriches a part whose manual
    decision names the same contact; an echo that arrives after a newer manual decision is stale and ignored.
    Returns whether any part changed.
    """
    by_id = {p.part_id: p for p in doc.parts}
    changed = False
    touched: set[str] = set()
    for proposal in assignments:
        part = by_id[proposal.part_id]
        current = part.assignment
        manual = current is not None and current.method == AssignmentMethod.MANUAL
        if is_correction:
            if not manual or current is None or current.contact_id != proposal.contact_id:
                continue
            if proposal.status not in {current.status, AssignmentStatus.ASSIGNED}:
                continue
            new = current.model_copy(
                update={
                    "property_id": proposal.property_id or current.property_id,
                    "unit_id": proposal.unit_id or current.unit_id,
                    "evidence": list(dict.fromkeys([*current.evidence, *proposal.evidence])),
                }
            )
        else:
            if manual:
                continue
            new = Assignment(
                status=proposal.status,
                contact_id=proposal.contact_id,
                property_id=proposal.property_id,
                unit_id=proposal.unit_id,
                method=proposal.method or AssignmentMethod.AUTO,
                score=proposal.score,
                evidence=list(proposal.evidence),
                candidates=list(proposal.candidates),
            )
        touched.add(part.part_id)
        if new != current:
            part.assignment = new
            changed = True
    if is_correction:
        kept = [w for w in doc.assignment_warnings if w.part_id not in touched]
        doc.assignment_warnings = kept + [w for w in warnings if w.part_id in touched]
    else:
        manual_parts = {p.part_id for p in doc.parts if p.assignment and p.assignment.method == AssignmentMethod.MANUAL}
        doc.assignment_warnings = [w for w in warnings if w.part_id not in manual_parts]
    return changed
