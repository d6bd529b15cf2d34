"""Use cases of the assignment service.

Each runs inside one database transaction (``conn``): read-model changes, assignments and the outgoing
PagesAssigned (outbox) commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smartpost_assignment.adapters.db import AssignmentStore, StoredPart, delete_parts_except
from smartpost_assignment.adapters.locks import lock_letter
from smartpost_assignment.adapters.masterdata_queries import known_ids
from smartpost_assignment.domain.importing import ImportFormatError, ImportResult, KnownIds, parse_masterdata
from smartpost_assignment.domain.matching import (
    LetterContext,
    Matcher,
    MatchIndex,
    MatchPolicy,
    placement_for_contact,
    roles_for_groups,
)
from smartpost_assignment.domain.warnings import (
    correction_warnings,
    document_warnings,
    replaced_by_correction,
    target_of,
)
from smartpost_shared.contracts.common import LetterScope
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    DocumentSplit,
    PagesAssigned,
    PartAssignment,
    SplitPart,
)
from smartpost_shared.contracts.envelope import (
    Envelope,
    caused_by,
    deterministic_event_id,
    make_envelope,
    parse_envelope,
)
from smartpost_shared.contracts.letters import AssignmentCorrected, CorrectionAction, LetterCreated
from smartpost_shared.db import add_many_to_outbox, add_to_outbox
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import AccountSnapshot, MasterDataReader, apply_masterdata
from smartpost_shared.messaging import PermanentError, answer_key

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from smartpost_shared.contracts.base import EventPayload

log = get_logger(__name__)

PRODUCER = "assignment"
IMPORT_PRODUCER = "assignment-importer"


@dataclass(frozen=True)
class PreparedMatch:
    """A document's matches, made before its write transaction (see :meth:`AssignmentService.prepare_document`).

    A part's match depends on the parts of the document (letterhead lines), the letter (``context``) and the
    account's master data (``revision``): the write transaction uses these matches only while the letter and the
    revision are unchanged, and otherwise matches again (the result is the same either way).
    """

    revision: int
    context: LetterContext
    index: MatchIndex
    assignments: dict[str, PartAssignment]

    def holds(self, revision: int, context: LetterContext) -> bool:
        return self.revision == revision and self.context == context


@dataclass(frozen=True)
class DocumentOutcome:
    letter_id: str
    document_id: str
    assignments: list[PartAssignment]
    warnings: list[AssignmentWarning]


class AssignmentService:
    def __init__(self, policy: MatchPolicy | None = None, *, cached_accounts: int = 4) -> None:
        self.policy = policy or MatchPolicy()
        # Account snapshots by master-data revision: a correction or a letter reuses the loaded account while its
        # master data is unchanged (the revision is read in the same transaction, so never a stale snapshot).
        self._snapshots: dict[str, tuple[int, AccountSnapshot]] = {}
        self._cached_accounts = cached_accounts
        self._snapshot_lock = threading.Lock()
        self.snapshot_loads = 0

    def snapshot(self, conn: Connection, account_id: str) -> AccountSnapshot:
        return self.revision_and_snapshot(conn, account_id)[1]

    def revision_and_snapshot(self, conn: Connection, account_id: str) -> tuple[int, AccountSnapshot]:
        reader = MasterDataReader(conn)
        revision = reader.revision(account_id)
        with self._snapshot_lock:
            cached = self._snapshots.get(account_id)
        if cached is not None and cached[0] == revision and revision > 0:
            return cached
        snapshot = reader.snapshot(account_id)
        self.snapshot_loads += 1
        with self._snapshot_lock:
            self._snapshots.pop(account_id, None)
            self._snapshots[account_id] = (revision, snapshot)
            while len(self._snapshots) > self._cached_accounts:
                self._snapshots.pop(next(iter(self._snapshots)))
        return revision, snapshot

    # -- masterdata.events --
    def on_masterdata(self, envelope: Envelope, conn: Connection) -> None:
        apply_masterdata(conn, envelope)

    # -- letters.events: LetterCreated --
    def on_letter_created(self, envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, LetterCreated)
        context = LetterContext(
            account_id=envelope.account_id,
            letter_id=payload.letter_id,
            scope=payload.scope,
            property_id=payload.property_id,
            roles=roles_for_groups(payload.recipient_groups),
            include_archived=payload.include_archived,
            letter_date=payload.letter_date,
            period_start=payload.period_start,
            period_end=payload.period_end,
        )
        lock_letter(conn, envelope.account_id, payload.letter_id)
        store = AssignmentStore(conn)
        store.save_letter(context, list(payload.recipient_groups), payload.title)
        for raw in store.take_pending_splits(envelope.account_id, payload.letter_id):
            split_envelope = parse_envelope(raw)
            log.info("split.unparked", letter_id=payload.letter_id)
            self._assign_document(conn, split_envelope, context)

    # -- splitter.events: DocumentSplit --
    def prepare_document(
        self, conn: Connection, envelope: Envelope
    ) -> tuple[int, AccountSnapshot, LetterContext] | None:
        """Read, in a short transaction, what matching a DocumentSplit needs; None when the letter is unknown."""
        payload = envelope.payload
        assert isinstance(payload, DocumentSplit)
        context = AssignmentStore(conn).letter(envelope.account_id, payload.letter_id)
        if context is None:
            return None
        revision, snapshot = self.revision_and_snapshot(conn, envelope.account_id)
        return revision, snapshot, context

    def match_prepared(
        self, envelope: Envelope, revision: int, snapshot: AccountSnapshot, context: LetterContext
    ) -> PreparedMatch:
        """Match every part of a DocumentSplit outside any transaction (seconds for thousands of parts).

        Matching inside the write transaction held SQLite's write lock for ~10 s at 4,000 parts: the outbox relay
        and the lease renewals waited, and the relay once lost its lease. The transaction now only stores.
        """
        payload = envelope.payload
        assert isinstance(payload, DocumentSplit)
        index = MatchIndex(snapshot, context)
        matcher = Matcher(index, self.policy)
        matcher.note_document(list(payload.parts))
        assignments = {part.part_id: matcher.assign(part) for part in payload.parts}
        return PreparedMatch(revision, context, index, assignments)

    def on_document_split(self, envelope: Envelope, conn: Connection, prepared: PreparedMatch | None = None) -> None:
        payload = envelope.payload
        assert isinstance(payload, DocumentSplit)
        lock_letter(conn, envelope.account_id, payload.letter_id)
        store = AssignmentStore(conn)
        context = store.letter(envelope.account_id, payload.letter_id)
        if context is None:
            # Different topics race: keep the split until the letter's context arrives (never lost, never guessed).
            store.park_split(envelope.account_id, payload.letter_id, payload.document_id, envelope.to_bytes().decode())
            log.info("split.parked_until_letter_known", letter_id=payload.letter_id, document_id=payload.document_id)
            return
        self._assign_document(conn, envelope, context, prepared)

    def _assign_document(
        self,
        conn: Connection,
        split_envelope: Envelope,
        context: LetterContext,
        prepared: PreparedMatch | None = None,
    ) -> DocumentOutcome:
        payload = split_envelope.payload
        assert isinstance(payload, DocumentSplit)
        started = time.perf_counter()
        revision, snapshot = self.revision_and_snapshot(conn, context.account_id)
        if prepared is not None and not prepared.holds(revision, context):
            log.info("document.prepared_match_stale", letter_id=payload.letter_id, document_id=payload.document_id)
            prepared = None  # master data or the letter changed meanwhile: match again, inside
        outcome = self.match_document(
            conn, snapshot, context, payload.document_id, list(payload.parts), keep_confirmed=True, prepared=prepared
        )
        event = PagesAssigned(
            letter_id=payload.letter_id,
            document_id=payload.document_id,
            assignments=outcome.assignments,
            warnings=outcome.warnings,
        )
        add_to_outbox(
            conn,
            caused_by(
                split_envelope,
                event,
                producer=PRODUCER,
                event_id=deterministic_event_id(PRODUCER, "PagesAssigned", answer_key(split_envelope)),
            ),
        )
        log.info(
            "document.assigned",
            letter_id=payload.letter_id,
            document_id=payload.document_id,
            parts=len(outcome.assignments),
            prepared=prepared is not None,
            auto=sum(1 for a in outcome.assignments if a.method is AssignmentMethod.AUTO),
            warnings=len(outcome.warnings),
            seconds=round(time.perf_counter() - started, 3),
        )
        return outcome

    def match_document(
        self,
        conn: Connection,
        snapshot: AccountSnapshot,
        context: LetterContext,
        document_id: str,
        parts: list[SplitPart],
        *,
        keep_confirmed: bool,
        prepared: PreparedMatch | None = None,
    ) -> DocumentOutcome:
        """Match every part that staff have not decided; store assignments and warnings.

        ``prepared`` holds the matches of exactly these parts for this letter and master-data revision.
        """
        store = AssignmentStore(conn)
        existing = store.parts(context.account_id, context.letter_id, document_id)
        matcher = Matcher(prepared.index if prepared else MatchIndex(snapshot, context), self.policy)
        matcher.note_document(parts)
        assignments: list[PartAssignment] = []
        delete_parts_except(conn, context.account_id, context.letter_id, document_id, {p.part_id for p in parts})
        new_parts: list[tuple[int, PartAssignment]] = []
        for part in parts:
            stored = existing.get(part.part_id)
            if keep_confirmed and stored is not None and stored.confirmed:
                # Staff decided this part: later runs (new master data, re-delivery) never change it.
                assignments.append(stored.assignment)
                continue
            assignment = prepared.assignments.get(part.part_id) if prepared else None
            if assignment is None:
                assignment = matcher.assign(part)
            if stored is None:
                new_parts.append((part.index, assignment))  # inserted together below
            else:
                store.save_part(context.account_id, context.letter_id, document_id, part.index, assignment)
            assignments.append(assignment)
        store.insert_parts(context.account_id, context.letter_id, document_id, new_parts)
        warnings = document_warnings(snapshot, context, {p.part_id: p.page_count for p in parts}, assignments)
        store.save_document(context.account_id, context.letter_id, document_id, parts, warnings)
        return DocumentOutcome(context.letter_id, document_id, assignments, warnings)

    # -- letters.events: AssignmentCorrected --
    def on_assignment_corrected(self, envelope: Envelope, conn: Connection) -> None:
        """Apply one staff correction and echo it.

        No whole-document reload: only the corrected part's assignment is decoded and written; the warnings it can
        change are computed again, and the contract and channel warnings of every assigned part from columns (they
        follow master data); the rest stay as stored.
        """
        payload = envelope.payload
        assert isinstance(payload, AssignmentCorrected)
        account = envelope.account_id
        lock_letter(conn, account, payload.letter_id)
        store = AssignmentStore(conn)
        context = store.letter(account, payload.letter_id)
        stored_warnings = store.document_warnings_json(account, payload.letter_id, payload.document_id)
        if context is None or stored_warnings is None:
            raise PermanentError(f"correction for unknown letter/document {payload.letter_id}/{payload.document_id}")
        previous = store.part(account, payload.letter_id, payload.document_id, payload.part_id)
        if previous is None:
            raise PermanentError(f"correction for unknown part {payload.part_id} of document {payload.document_id}")
        snapshot = self.snapshot(conn, account)
        corrected = self._corrected(payload, snapshot, context, previous)
        store.save_part(
            account,
            payload.letter_id,
            payload.document_id,
            previous.index,
            corrected,
            confirmed=True,
            confirmed_by=payload.actor,
        )
        targets = {t for t in (target_of(previous.assignment), target_of(corrected)) if t is not None}
        property_scope = context.scope is LetterScope.PROPERTY
        kept = [
            w
            for w in stored_warnings
            if not replaced_by_correction(w, corrected.part_id, targets, property_scope=property_scope)
        ]
        fresh = correction_warnings(
            snapshot, context, corrected, targets, store.assigned_parts(account, payload.letter_id, payload.document_id)
        )
        store.save_document_warnings(
            account, payload.letter_id, payload.document_id, kept + [w.model_dump(mode="json") for w in fresh]
        )
        # The echo carries what changed: the corrected part and its warnings (the letter keeps the others).
        part_warnings = [AssignmentWarning.model_validate(w) for w in kept if w.get("part_id") == corrected.part_id]
        event = PagesAssigned(
            letter_id=payload.letter_id,
            document_id=payload.document_id,
            assignments=[corrected],
            warnings=part_warnings + [w for w in fresh if w.part_id == corrected.part_id],
            is_correction=True,
        )
        add_to_outbox(
            conn,
            caused_by(
                envelope,
                event,
                producer=PRODUCER,
                event_id=deterministic_event_id(PRODUCER, "PagesAssigned", "correction", envelope.event_id),
            ),
        )
        log.info("assignment.corrected", part_id=corrected.part_id, action=payload.action.value, actor=payload.actor)

    def _corrected(
        self,
        payload: AssignmentCorrected,
        snapshot: AccountSnapshot,
        context: LetterContext,
        previous: StoredPart | None,
    ) -> PartAssignment:
        candidates = previous.assignment.candidates if previous else []
        if payload.action is CorrectionAction.DISCARD:
            return PartAssignment(
                part_id=payload.part_id,
                status=AssignmentStatus.DISCARDED,
                method=AssignmentMethod.MANUAL,
                evidence=[f"von {payload.actor} verworfen"],
                candidates=candidates,
            )
        if payload.action is CorrectionAction.UNASSIGN:
            return PartAssignment(
                part_id=payload.part_id,
                status=AssignmentStatus.NEEDS_REVIEW,
                method=AssignmentMethod.MANUAL,
                evidence=[f"Zuordnung von {payload.actor} aufgehoben"],
                candidates=candidates,
            )
        if not payload.contact_id:
            raise PermanentError("reassign without contact_id")
        if payload.contact_id not in snapshot.contacts:
            # Never accept a contact this account does not have (also blocks cross-account ids).
            raise PermanentError(f"contact {payload.contact_id} is not a contact of this account")
        if payload.unit_id is not None:
            unit = snapshot.units.get(payload.unit_id)
            if unit is None or (payload.property_id is not None and unit.property_id != payload.property_id):
                raise PermanentError(f"unit {payload.unit_id} is not a unit of this account/property")
        if payload.property_id is not None and payload.property_id not in snapshot.properties:
            raise PermanentError(f"property {payload.property_id} is not a property of this account")
        property_id, unit_id = placement_for_contact(
            snapshot, context, payload.contact_id, payload.property_id, payload.unit_id
        )
        score = next((c.score for c in candidates if c.contact_id == payload.contact_id), 0.0)
        return PartAssignment(
            part_id=payload.part_id,
            status=AssignmentStatus.ASSIGNED,
            contact_id=payload.contact_id,
            property_id=property_id,
            unit_id=unit_id,
            method=AssignmentMethod.MANUAL,
            score=score,
            evidence=[f"manuell zugeordnet von {payload.actor}"],
            candidates=candidates,
        )

    # -- HTTP: re-run matching for a letter (e.g. after adding missing contacts or archived ones) --
    def rematch_letter(self, conn: Connection, account_id: str, letter_id: str, actor: str) -> list[DocumentOutcome]:
        lock_letter(conn, account_id, letter_id)
        store = AssignmentStore(conn)
        context = store.letter(account_id, letter_id)
        if context is None:
            raise LookupError(letter_id)
        snapshot = self.snapshot(conn, account_id)
        outcomes: list[DocumentOutcome] = []
        correlation = uuid.uuid4()
        for document in store.documents_of_letter(account_id, letter_id):
            outcome = self.match_document(
                conn, snapshot, context, document.document_id, document.parts, keep_confirmed=True
            )
            revision = store.document(account_id, letter_id, document.document_id)
            event = PagesAssigned(
                letter_id=letter_id,
                document_id=document.document_id,
                assignments=outcome.assignments,
                warnings=outcome.warnings,
            )
            add_to_outbox(
                conn,
                make_envelope(
                    event,
                    account_id=account_id,
                    producer=PRODUCER,
                    correlation_id=correlation,
                    event_id=deterministic_event_id(
                        PRODUCER,
                        "rematch",
                        account_id,
                        letter_id,
                        document.document_id,
                        revision.revision if revision else 0,
                    ),
                ),
            )
            outcomes.append(outcome)
        log.info("letter.rematched", letter_id=letter_id, documents=len(outcomes), actor=actor)
        return outcomes

    # -- HTTP: import master data --
    def import_masterdata(
        self, conn: Connection, account_id: str, raw: bytes, filename: str, actor: str
    ) -> tuple[ImportResult, str]:
        """Validate every row; queue the events in the outbox only if all rows are valid (nothing half-imported)."""
        props, unit_map, contact_ids = known_ids(conn, account_id)
        import_id = hashlib.sha256(account_id.encode() + b"\0" + raw).hexdigest()[:32]
        store = AssignmentStore(conn)
        try:
            result = parse_masterdata(
                raw,
                filename=filename,
                known=KnownIds(props, unit_map, contact_ids),
                account=account_id,
                only_account=True,
            )
        except ImportFormatError as exc:
            store.record_import(
                account_id, import_id, status="rejected", actor=actor, filename=filename, counts={},
                errors=[{"row": "", "record_type": "", "record_id": "", "message": str(exc)}], event_ids=[],
            )  # fmt: skip
            raise
        event_ids: list[str] = []
        if result.ok:
            envelopes = import_envelopes(result.events, account_id=account_id, import_id=import_id)
            add_many_to_outbox(conn, envelopes)
            event_ids = [str(envelope.event_id) for envelope in envelopes]
            log.info("masterdata.import_queued", import_id=import_id, actor=actor, **result.counts)
        errors = [
            {"row": e.row, "record_type": e.record_type, "record_id": e.record_id, "message": e.message}
            for e in result.errors
        ]
        store.record_import(
            account_id, import_id, status="received" if result.ok else "rejected", actor=actor, filename=filename,
            counts=result.counts if result.ok else {}, errors=errors, event_ids=event_ids,
        )  # fmt: skip
        return result, import_id


def import_envelopes(events: list[EventPayload], *, account_id: str, import_id: str) -> list[Envelope]:
    """Envelopes for imported master data; ids derive from content, so re-importing a file is deduplicated."""
    correlation = deterministic_event_id("import", account_id, import_id)
    envelopes = []
    for payload in events:
        content = json.dumps(payload.model_dump(mode="json"), sort_keys=True)
        envelopes.append(
            make_envelope(
                payload,
                account_id=account_id,
                producer=IMPORT_PRODUCER,
                correlation_id=correlation,
                event_id=deterministic_event_id("import", account_id, payload.event_type, content),
            )
        )
    return envelopes


def letter_view(conn: Connection, account_id: str, letter_id: str) -> dict[str, Any] | None:
    """Current assignments and warnings of a letter as this service sees them (GET /letters/{id}/assignments)."""
    store = AssignmentStore(conn)
    context = store.letter(account_id, letter_id)
    if context is None:
        return None
    docs: list[dict[str, Any]] = []
    for document in store.documents_of_letter(account_id, letter_id):
        stored = store.parts(account_id, letter_id, document.document_id)
        pages = {p.part_id: p for p in document.parts}
        parts_out = []
        for part_id, sp in stored.items():
            item = sp.assignment.model_dump(mode="json")
            split = pages.get(part_id)
            item.update(
                confirmed=sp.confirmed,
                confirmed_by=sp.confirmed_by,
                index=sp.index,
                first_page=split.first_page if split else None,
                last_page=split.last_page if split else None,
                page_count=split.page_count if split else None,
            )
            parts_out.append(item)
        docs.append(
            {
                "document_id": document.document_id,
                "revision": document.revision,
                "parts": parts_out,
                "warnings": [w.model_dump(mode="json") for w in document.warnings],
            }
        )
    return {
        "letter_id": letter_id,
        "scope": context.scope.value,
        "property_id": context.property_id,
        "roles": sorted(context.roles),
        "include_archived": context.include_archived,
        "letter_date": context.letter_date.isoformat(),
        "documents": docs,
    }
