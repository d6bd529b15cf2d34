"""A contact's personal data erased from a letter (GDPR Art. 17), as an event of the letter's history.

The stored events keep the data sealed with per-part keys (``adapters.subject_keys``); deleting the keys makes it
unreadable. This event records the erasure in the letter's audit trail (who, which contact, which parts; no
personal data) and replaces the values in every copy of the letter already in memory (other replicas' caches
fast-forward to it), so nobody sees them again without a reload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_letters.domain.letter import SerialLetter
from smartpost_letters.domain.models import Assignment, BulkChange, DocumentRole

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smartpost_letters.domain.letter import Actor

ERASED = "[gelöscht]"


def _scrubbed(assignment: Assignment | None) -> Assignment | None:
    if assignment is None:
        return None
    return assignment.model_copy(
        update={
            "evidence": [ERASED] if assignment.evidence else [],
            "candidates": [
                c.model_copy(update={"evidence": [ERASED] if c.evidence else []}) for c in assignment.candidates
            ],
        }
    )


class PersonalDataErased(SerialLetter.Event):
    """The pages' text and matching evidence of these parts (assigned to ``contact_id``) were erased."""

    erasure_id: str
    contact_id: str
    part_ids: list[str]

    def effect(self, letter: SerialLetter) -> None:
        erased = set(self.part_ids)
        for doc in letter.documents:
            doc.assignment_warnings = [
                w.model_copy(update={"message": ERASED})
                if w.contact_id == self.contact_id or (w.part_id is not None and w.part_id in erased)
                else w
                for w in doc.assignment_warnings
            ]
        for part in letter.parts():
            if part.part_id in erased:
                part.address_lines = [ERASED] if part.address_lines else []
                part.identifiers = []
                part.assignment = _scrubbed(part.assignment)
        for bulk_id, changes in list(letter.bulk_changes.items()):
            letter.bulk_changes[bulk_id] = [
                BulkChange(
                    part_id=c.part_id,
                    document_id=c.document_id,
                    before=_scrubbed(c.before),
                    after=_scrubbed(c.after) or c.after,
                )
                if c.part_id in erased
                else c
                for c in changes
            ]
        for doc in letter.documents:
            pending = doc.pending_assignment
            if pending is None:
                continue
            assignments = []
            for a in pending.assignments:
                if a.get("part_id") in erased:
                    a = {**a, "evidence": [ERASED]}  # noqa: PLW2901 - a scrubbed copy
                    candidates = a.get("candidates")
                    if isinstance(candidates, list):
                        a["candidates"] = [
                            {**c, "evidence": [ERASED]} if isinstance(c, dict) else c for c in candidates
                        ]
                assignments.append(a)
            doc.pending_assignment = pending.model_copy(update={"assignments": assignments})


class SourceFilesErased(SerialLetter.Event):
    """Files that held the erased contact's pages next to other recipients' were deleted from storage.

    The uploaded source PDF of each split document with a part of ``contact_id`` (all recipients in one file) and
    the document's thumbnail pack (first-page images of all its parts). The split part PDFs of the other
    recipients stay (portal, print and legal retention need them); the review shows a placeholder instead of the
    thumbnails, and the document cannot be split again (``SourceDocument.source_erased``).
    """

    erasure_id: str
    contact_id: str
    document_ids: list[str]
    storage_keys: list[str]

    def effect(self, letter: SerialLetter) -> None:
        erased = set(self.document_ids)
        for doc in letter.documents:
            if doc.document_id in erased:
                doc.source_erased = True


def shared_files_of(letter: SerialLetter, part_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(document ids, storage keys) of the shared files holding these parts' pages: sources and thumbnail packs.

    Attachments (the same pages for every recipient) hold nobody's personal data and are kept. Documents whose
    source is already erased are listed again, so a redelivered erasure deletes what a crash left behind.
    """
    wanted = set(part_ids)
    documents: list[str] = []
    keys: list[str] = []
    for doc in letter.documents:
        if doc.role != DocumentRole.SPLIT or not any(p.part_id in wanted for p in doc.parts):
            continue
        documents.append(doc.document_id)
        keys.append(doc.source_key)
        keys.extend(p.thumbnail_key for p in doc.parts if p.thumbnail_key and p.thumbnail_offset is not None)
    return documents, list(dict.fromkeys(keys))


def erase_source_files(
    letter: SerialLetter, *, erasure_id: str, contact_id: str, part_ids: Sequence[str], actor: Actor
) -> list[str]:
    """Record that the shared files of these parts are deleted; returns their storage keys (to delete)."""
    documents, keys = shared_files_of(letter, part_ids)
    if not documents:
        return []
    new = [d for d in documents if not letter.document(d).source_erased]
    if new:
        letter._emit(  # noqa: SLF001 - an event of the aggregate, defined next to the GDPR code
            SourceFilesErased, actor, erasure_id=erasure_id, contact_id=contact_id, document_ids=new, storage_keys=keys
        )
    return keys


def erase_personal_data(
    letter: SerialLetter, *, erasure_id: str, contact_id: str, part_ids: Sequence[str], actor: Actor
) -> list[str]:
    """Record the erasure of these parts' personal data (and of warnings naming the contact) on the letter.

    Returns the parts the letter has.
    """
    known = {p.part_id for p in letter.parts()}
    parts = [p for p in part_ids if p in known]
    named = any(w.contact_id == contact_id for d in letter.documents for w in d.assignment_warnings)
    if parts or named:
        letter._emit(  # noqa: SLF001 - an event of the aggregate, defined next to the GDPR code
            PersonalDataErased, actor, erasure_id=erasure_id, contact_id=contact_id, part_ids=sorted(parts)
        )
    return parts
