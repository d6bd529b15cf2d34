"""Every transition and invariant of the serial-letter aggregate (pure domain, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from letters_testkit import ASSIGNER, DOCTYPE, RULE, SPLITTER, STAFF, LetterBuilder, assigned, make_parts

from smartpost_letters.domain.errors import (
    DocumentError,
    IllegalTransitionError,
    InboundMismatchError,
    InvalidLetterError,
    PartError,
    ReleaseBlockedError,
)
from smartpost_letters.domain.letter import Actor, InboundOutcome, SerialLetter
from smartpost_letters.domain.models import DocumentRole, DocumentStatus, LetterStatus, MailpieceView
from smartpost_shared.contracts.common import LetterScope
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    PartAssignment,
    SplitFailureReason,
)
from smartpost_shared.contracts.letters import PrintOptions
from smartpost_shared.contracts.printing import MailpieceStatus

TODAY = datetime.now(UTC).date()


def create(**overrides):
    args = {
        "letter_id": uuid.uuid4(),
        "account_id": "acc-1",
        "title": "Jahresabrechnung",
        "document_type": DOCTYPE,
        "recipient_groups": ["owners"],
        "scope": LetterScope.PROPERTY,
        "property_id": "prop-1",
        "include_archived": False,
        "letter_date": date(2026, 1, 5),
        "actor": STAFF,
    }
    args.update(overrides)
    return SerialLetter.create(**args)


# ------------------------------------------------------------------------------------------------ creation


def test_create_property_letter_starts_in_draft():
    letter = create(actor=Actor("staff:anna", "cmd-1"))
    assert letter.status == LetterStatus.DRAFT
    assert letter.scope == LetterScope.PROPERTY
    assert letter.property_id == "prop-1"
    assert letter.has_processed_command("cmd-1")
    assert letter.created_by == "staff:anna"


def test_cross_property_letter_must_not_name_a_property():
    with pytest.raises(InvalidLetterError, match="cross-property"):
        create(scope=LetterScope.CROSS_PROPERTY, property_id="prop-1")
    letter = create(scope=LetterScope.CROSS_PROPERTY, property_id=None)
    assert letter.property_id is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"property_id": None}, "needs a property"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "200"),
        ({"recipient_groups": []}, "recipient group"),
        ({"recipient_groups": ["owners", "owners"]}, "repeat"),
        ({"account_id": ""}, "account"),
    ],
)
def test_create_rejects_inconsistent_parameters(overrides, message):
    with pytest.raises(InvalidLetterError, match=message):
        create(**overrides)


# ------------------------------------------------------------------------------------------------ documents


def test_first_document_must_be_split_and_attachments_follow():
    b = LetterBuilder()
    with pytest.raises(DocumentError, match="cover letter"):
        b.attach("att", DocumentRole.ATTACHMENT)
    b.attach("doc-1").attach("att", DocumentRole.ATTACHMENT).attach("doc-2")
    assert [d.document_id for d in b.letter.documents] == ["doc-1", "att", "doc-2"]
    with pytest.raises(DocumentError, match="already attached"):
        b.attach("doc-1")


def test_attach_requires_rule_for_split_and_a_non_empty_file():
    b = LetterBuilder()
    with pytest.raises(DocumentError, match="split rule"):
        b.letter.attach_document(
            document_id="d",
            filename="d.pdf",
            role=DocumentRole.SPLIT,
            rule=None,
            source_key="k",
            size_bytes=10,
            sha256="0" * 64,
            actor=STAFF,
        )
    with pytest.raises(DocumentError, match="empty"):
        b.letter.attach_document(
            document_id="d",
            filename="d.pdf",
            role=DocumentRole.SPLIT,
            rule=RULE,
            source_key="k",
            size_bytes=0,
            sha256="0" * 64,
            actor=STAFF,
        )


def test_reorder_keeps_cover_letter_first_and_needs_a_permutation():
    b = LetterBuilder().attach("doc-1").attach("att", DocumentRole.ATTACHMENT).attach("doc-2")
    b.letter.reorder_documents(order=["doc-2", "att", "doc-1"], actor=STAFF)
    assert [d.document_id for d in b.letter.documents] == ["doc-2", "att", "doc-1"]
    with pytest.raises(DocumentError, match="cover letter"):
        b.letter.reorder_documents(order=["att", "doc-1", "doc-2"], actor=STAFF)
    with pytest.raises(DocumentError, match="exactly once"):
        b.letter.reorder_documents(order=["doc-1", "doc-2"], actor=STAFF)
    with pytest.raises(DocumentError, match="exactly once"):
        b.letter.reorder_documents(order=["doc-1", "doc-1", "att"], actor=STAFF)


def test_change_role_and_remove_respect_cover_letter_rule():
    b = LetterBuilder().attach("doc-1").attach("doc-2")
    with pytest.raises(DocumentError, match="cover letter"):
        b.letter.change_document(document_id="doc-1", role=DocumentRole.ATTACHMENT, rule=None, actor=STAFF)
    b.letter.change_document(document_id="doc-2", role=DocumentRole.ATTACHMENT, rule=None, actor=STAFF)
    assert b.letter.document("doc-2").role == DocumentRole.ATTACHMENT
    assert b.letter.document("doc-2").rule is None
    with pytest.raises(DocumentError, match="cover letter"):
        b.letter.remove_document(document_id="doc-1", actor=STAFF)
    b.letter.remove_document(document_id="doc-2", actor=STAFF)
    assert [d.document_id for d in b.letter.documents] == ["doc-1"]
    with pytest.raises(DocumentError, match="not part"):
        b.letter.remove_document(document_id="nope", actor=STAFF)


def test_documents_cannot_change_after_split_started():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="splitting"):
        b.attach("doc-2")
    with pytest.raises(IllegalTransitionError):
        b.letter.reorder_documents(order=["doc-1"], actor=STAFF)
    with pytest.raises(IllegalTransitionError):
        b.letter.remove_document(document_id="doc-1", actor=STAFF)


# ------------------------------------------------------------------------------------------------ split


def test_start_split_requests_every_split_document_with_attachment_keys():
    b = LetterBuilder().attach("doc-1").attach("att", DocumentRole.ATTACHMENT).attach("doc-2")
    requests = b.letter.start_split(actor=STAFF)
    assert [r.document_id for r in requests] == ["doc-1", "doc-2"]
    assert [r.position for r in requests] == [0, 2]
    assert requests[0].attachment_keys == [b.letter.document("att").source_key]
    assert b.letter.status == LetterStatus.SPLITTING
    assert b.letter.document("att").status == DocumentStatus.UPLOADED
    assert b.letter.document("doc-2").status == DocumentStatus.SPLITTING


def test_start_split_needs_documents_and_draft_state():
    b = LetterBuilder()
    with pytest.raises(DocumentError, match="cover letter"):
        b.letter.start_split(actor=STAFF)
    b.attach()
    b.letter.start_split(actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="start the split"):
        b.letter.start_split(actor=STAFF)


def test_split_results_move_to_assigning_only_when_all_documents_are_split():
    b = LetterBuilder().attach("doc-1").attach("doc-2")
    b.letter.start_split(actor=STAFF)
    b.split("doc-1", 2)
    assert b.letter.status == LetterStatus.SPLITTING
    b.split("doc-2", 1)
    assert b.letter.status == LetterStatus.ASSIGNING
    assert len(b.letter.parts()) == 3


def test_split_result_is_idempotent_per_inbound_event():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    parts = make_parts("acc-1", b.lid, "doc-1", 2)
    kwargs = {
        "inbound_event_id": "evt-1",
        "document_id": "doc-1",
        "source_page_count": 4,
        "parts": parts,
        "warnings": [],
        "actor": SPLITTER,
    }
    assert b.letter.record_split(**kwargs) == InboundOutcome.APPLIED
    version = b.letter.version
    assert b.letter.record_split(**kwargs) == InboundOutcome.DUPLICATE
    # Another answer while the letter is no longer splitting is recorded as superseded (once), nothing else changes.
    parts_before = b.letter.parts()
    assert b.letter.record_split(**{**kwargs, "inbound_event_id": "evt-2"}) == InboundOutcome.SUPERSEDED
    assert b.letter.version == version + 1
    assert b.letter.record_split(**{**kwargs, "inbound_event_id": "evt-2"}) == InboundOutcome.DUPLICATE
    assert b.letter.version == version + 1
    assert b.letter.parts() == parts_before


def test_split_result_with_pages_outside_the_document_or_duplicate_parts_is_rejected():
    b = LetterBuilder().attach("doc-1").attach("doc-2")
    b.letter.start_split(actor=STAFF)
    parts = make_parts("acc-1", b.lid, "doc-1", 2)
    with pytest.raises(InboundMismatchError, match="outside"):
        b.letter.record_split(
            inbound_event_id="e", document_id="doc-1", source_page_count=3, parts=parts, warnings=[], actor=SPLITTER
        )
    with pytest.raises(InboundMismatchError, match="unique"):
        b.letter.record_split(
            inbound_event_id="e",
            document_id="doc-1",
            source_page_count=4,
            parts=[parts[0], parts[0]],
            warnings=[],
            actor=SPLITTER,
        )
    b.letter.record_split(
        inbound_event_id="e1", document_id="doc-1", source_page_count=4, parts=parts, warnings=[], actor=SPLITTER
    )
    with pytest.raises(InboundMismatchError, match="unique"):
        b.letter.record_split(
            inbound_event_id="e2", document_id="doc-2", source_page_count=4, parts=parts, warnings=[], actor=SPLITTER
        )
    with pytest.raises(DocumentError):
        b.letter.record_split(
            inbound_event_id="e3", document_id="nope", source_page_count=4, parts=parts, warnings=[], actor=SPLITTER
        )


def test_split_failure_returns_to_draft_with_reason_and_late_results_are_stale():
    b = LetterBuilder().attach("doc-1").attach("doc-2")
    b.letter.start_split(actor=STAFF)
    b.split("doc-1", 2)
    outcome = b.letter.record_split_failure(
        inbound_event_id="f1",
        document_id="doc-2",
        reason_code=SplitFailureReason.ENCRYPTED,
        reason="PDF is password-protected",
        failed_at=datetime.now(UTC),
        actor=SPLITTER,
    )
    assert outcome == InboundOutcome.APPLIED
    assert b.letter.status == LetterStatus.DRAFT
    failed = b.letter.document("doc-2")
    assert failed.status == DocumentStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.reason == "PDF is password-protected"
    assert b.letter.document("doc-1").parts == []
    assert b.letter.document("doc-1").status == DocumentStatus.UPLOADED
    # A late split result of the failed round changes nothing.
    parts = make_parts("acc-1", b.lid, "doc-2", 1)
    assert (
        b.letter.record_split(
            inbound_event_id="late", document_id="doc-2", source_page_count=2, parts=parts, warnings=[], actor=SPLITTER
        )
        == InboundOutcome.SUPERSEDED
    )
    assert b.letter.status == LetterStatus.DRAFT
    # Staff can replace the document and split again.
    b.letter.remove_document(document_id="doc-2", actor=STAFF)
    b.letter.start_split(actor=STAFF)
    assert b.letter.status == LetterStatus.SPLITTING


# ------------------------------------------------------------------------------------------------ assignment


def test_assignments_move_to_review_and_keep_warnings():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=2)
    warning = AssignmentWarning(code="duplicate_contact", message="contact found twice", part_id="doc-1-p1")
    b.assign(statuses=[AssignmentStatus.ASSIGNED, AssignmentStatus.NEEDS_REVIEW], warnings=[warning])
    assert b.letter.status == LetterStatus.IN_REVIEW
    doc = b.letter.document("doc-1")
    assert doc.assignment_warnings == [warning]
    assert [p.is_decided for p in doc.parts] == [True, False]


def test_assignment_arriving_before_the_split_is_kept_until_the_split_is_recorded():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    parts = make_parts("acc-1", b.lid, "doc-1", 2)
    outcome = b.letter.record_assignments(
        inbound_event_id="a1",
        document_id="doc-1",
        assignments=[assigned(p, f"c{i}") for i, p in enumerate(parts)],
        warnings=[],
        is_correction=False,
        actor=ASSIGNER,
    )
    assert outcome == InboundOutcome.APPLIED
    assert b.letter.status == LetterStatus.SPLITTING
    b.letter.record_split(
        inbound_event_id="s1", document_id="doc-1", source_page_count=4, parts=parts, warnings=[], actor=SPLITTER
    )
    assert b.letter.status == LetterStatus.IN_REVIEW
    assert [p.assignment.contact_id for p in b.letter.parts()] == ["c0", "c1"]


def test_assignment_for_unknown_part_is_rejected_and_duplicates_are_ignored():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=1)
    bogus = PartAssignment(part_id="zzz", status=AssignmentStatus.ASSIGNED, contact_id="c")
    with pytest.raises(InboundMismatchError, match="unknown part"):
        b.letter.record_assignments(
            inbound_event_id="x",
            document_id="doc-1",
            assignments=[bogus],
            warnings=[],
            is_correction=False,
            actor=ASSIGNER,
        )
    good = [assigned(b.parts["doc-1"][0], "c0")]
    assert (
        b.letter.record_assignments(
            inbound_event_id="y",
            document_id="doc-1",
            assignments=good,
            warnings=[],
            is_correction=False,
            actor=ASSIGNER,
        )
        == InboundOutcome.APPLIED
    )
    version = b.letter.version
    assert (
        b.letter.record_assignments(
            inbound_event_id="y",
            document_id="doc-1",
            assignments=good,
            warnings=[],
            is_correction=False,
            actor=ASSIGNER,
        )
        == InboundOutcome.DUPLICATE
    )
    assert b.letter.version == version


def test_automatic_reassignment_never_overwrites_a_manual_decision():
    b = LetterBuilder().to_review(2)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="manual-c", property_id=None, unit_id="u9", actor=STAFF)
    rerun = [assigned(p, "auto-c") for p in b.parts["doc-1"]]
    b.letter.record_assignments(
        inbound_event_id="rerun",
        document_id="doc-1",
        assignments=rerun,
        warnings=[],
        is_correction=False,
        actor=ASSIGNER,
    )
    assert b.letter.part("doc-1-p0").assignment.contact_id == "manual-c"
    assert b.letter.part("doc-1-p1").assignment.contact_id == "auto-c"


def test_correction_echo_enriches_matching_manual_decision_and_stale_echo_is_ignored():
    b = LetterBuilder().to_review(1)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c-new", property_id=None, unit_id=None, actor=STAFF)
    echo = PartAssignment(
        part_id="doc-1-p0",
        status=AssignmentStatus.ASSIGNED,
        contact_id="c-new",
        property_id="prop-1",
        unit_id="unit-7",
        method=AssignmentMethod.MANUAL,
        score=1.0,
    )
    b.letter.record_assignments(
        inbound_event_id="echo1",
        document_id="doc-1",
        assignments=[echo],
        warnings=[],
        is_correction=True,
        actor=ASSIGNER,
    )
    a = b.letter.part("doc-1-p0").assignment
    assert (a.contact_id, a.unit_id, a.method, a.decided_by) == (
        "c-new",
        "unit-7",
        AssignmentMethod.MANUAL,
        "staff:anna",
    )
    stale = echo.model_copy(update={"contact_id": "c-old", "unit_id": "unit-1"})
    b.letter.record_assignments(
        inbound_event_id="echo0",
        document_id="doc-1",
        assignments=[stale],
        warnings=[],
        is_correction=True,
        actor=ASSIGNER,
    )
    assert b.letter.part("doc-1-p0").assignment.contact_id == "c-new"


def test_echo_of_a_correction_after_the_review_was_confirmed_keeps_the_confirmation():
    """Staff discard a part, confirm at once; the assignment service's echo arrives after the confirmation."""
    b = LetterBuilder().to_review(2)
    b.letter.discard_part(part_id="doc-1-p1", actor=STAFF)
    b.letter.confirm_review(actor=Actor("staff:bernd"))
    version = b.letter.version
    echo = PartAssignment(
        part_id="doc-1-p1",
        status=AssignmentStatus.DISCARDED,
        method=AssignmentMethod.MANUAL,
        evidence=["von staff:anna verworfen"],
    )
    outcome = b.letter.record_assignments(
        inbound_event_id="echo-discard",
        document_id="doc-1",
        assignments=[echo],
        warnings=[],
        is_correction=True,
        actor=ASSIGNER,
    )
    assert outcome == InboundOutcome.UNCHANGED
    assert b.letter.version == version  # no event for an echo that changes nothing
    assert b.letter.status == LetterStatus.REVIEWED
    assert b.letter.review_confirmed_by == "staff:bernd"


def test_echo_that_completes_the_placement_after_confirmation_keeps_the_confirmation():
    b = LetterBuilder().to_review(1)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c-new", property_id=None, unit_id=None, actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    echo = PartAssignment(
        part_id="doc-1-p0",
        status=AssignmentStatus.ASSIGNED,
        contact_id="c-new",
        property_id="prop-1",
        unit_id="unit-7",
        method=AssignmentMethod.MANUAL,
        score=1.0,
        evidence=["manuell zugeordnet von staff:anna"],
    )
    outcome = b.letter.record_assignments(
        inbound_event_id="echo-unit",
        document_id="doc-1",
        assignments=[echo],
        warnings=[],
        is_correction=True,
        actor=ASSIGNER,
    )
    assert outcome == InboundOutcome.APPLIED
    assert b.letter.part("doc-1-p0").assignment.unit_id == "unit-7"
    assert b.letter.status == LetterStatus.REVIEWED
    assert b.letter.review_confirmed_by == "staff:anna"


# ------------------------------------------------------------------------------------------------ review


def test_manual_reassign_unassign_discard_and_scope_check():
    b = LetterBuilder().to_review(3)
    with pytest.raises(PartError, match="not the letter's property"):
        b.letter.reassign_part(part_id="doc-1-p0", contact_id="c", property_id="prop-2", unit_id=None, actor=STAFF)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c-x", property_id=None, unit_id="u", actor=STAFF)
    assert b.letter.part("doc-1-p0").assignment.property_id == "prop-1"
    b.letter.unassign_part(part_id="doc-1-p1", actor=STAFF)
    assert b.letter.part("doc-1-p1").assignment.status == AssignmentStatus.UNMATCHED
    b.letter.discard_part(part_id="doc-1-p2", actor=STAFF)
    assert b.letter.part("doc-1-p2").is_discarded
    with pytest.raises(PartError, match="not part"):
        b.letter.discard_part(part_id="nope", actor=STAFF)
    with pytest.raises(PartError, match="contact is required"):
        b.letter.reassign_part(part_id="doc-1-p0", contact_id="", property_id=None, unit_id=None, actor=STAFF)


def test_cross_property_reassign_keeps_the_given_property():
    b = LetterBuilder(scope=LetterScope.CROSS_PROPERTY).to_review(1)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c", property_id="prop-9", unit_id="u", actor=STAFF)
    assert b.letter.part("doc-1-p0").assignment.property_id == "prop-9"


def test_cross_property_release_needs_a_contract_for_every_assigned_part():
    b = LetterBuilder(scope=LetterScope.CROSS_PROPERTY).to_review(2)
    b.letter.reassign_part(part_id="doc-1-p1", contact_id="c-weiss", property_id=None, unit_id=None, actor=STAFF)
    with pytest.raises(ReleaseBlockedError, match=r"1 part\(s\) have no contract .*: doc-1-p1"):
        b.letter.confirm_review(actor=STAFF)
    with pytest.raises(ReleaseBlockedError, match="no contract"):
        b.letter.release(notify_by_email=False, actor=STAFF)
    b.letter.reassign_part(part_id="doc-1-p1", contact_id="c-weiss", property_id="prop-9", unit_id=None, actor=STAFF)
    with pytest.raises(ReleaseBlockedError, match="no contract"):
        b.letter.confirm_review(actor=STAFF)
    b.letter.reassign_part(
        part_id="doc-1-p1", contact_id="c-weiss", property_id="prop-9", unit_id="unit-9", actor=STAFF
    )
    b.letter.confirm_review(actor=STAFF)
    items = b.letter.release(notify_by_email=False, actor=STAFF)
    assert (items[1].property_id, items[1].unit_id) == ("prop-9", "unit-9")


def test_property_letter_still_accepts_a_contact_without_unit():
    b = LetterBuilder().to_review(1)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c-beirat", property_id=None, unit_id=None, actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    assert b.letter.status == LetterStatus.REVIEWED


def test_corrections_are_not_allowed_before_review_or_after_release():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=1)
    with pytest.raises(IllegalTransitionError, match="assigning"):
        b.letter.discard_part(part_id="doc-1-p0", actor=STAFF)
    released = LetterBuilder().to_released(1)
    with pytest.raises(IllegalTransitionError, match="released"):
        released.letter.unassign_part(part_id="doc-1-p0", actor=STAFF)


def test_confirm_review_needs_every_part_decided_and_one_assigned():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=2).assign(statuses=[AssignmentStatus.ASSIGNED, AssignmentStatus.UNMATCHED])
    with pytest.raises(ReleaseBlockedError, match="neither assigned nor discarded: doc-1-p1"):
        b.letter.confirm_review(actor=STAFF)
    b.letter.discard_part(part_id="doc-1-p1", actor=STAFF)
    b.letter.discard_part(part_id="doc-1-p0", actor=STAFF)
    with pytest.raises(ReleaseBlockedError, match="at least one part"):
        b.letter.confirm_review(actor=STAFF)
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c", property_id=None, unit_id=None, actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    assert b.letter.status == LetterStatus.REVIEWED
    assert b.letter.review_confirmed_by == "staff:anna"


def test_a_correction_after_confirmation_requires_a_new_confirmation():
    b = LetterBuilder().to_review(2)
    b.letter.confirm_review(actor=STAFF)
    b.letter.discard_part(part_id="doc-1-p1", actor=STAFF)
    assert b.letter.status == LetterStatus.IN_REVIEW
    with pytest.raises(ReleaseBlockedError, match="review has not been confirmed"):
        b.letter.release(notify_by_email=False, actor=STAFF)


def test_reopen_drops_split_results_and_goes_back_to_draft():
    b = LetterBuilder().to_review(2)
    b.letter.reopen(actor=STAFF)
    assert b.letter.status == LetterStatus.DRAFT
    assert b.letter.parts() == []
    b.attach("doc-2")
    with pytest.raises(IllegalTransitionError):
        b.letter.reopen(actor=STAFF)


# ------------------------------------------------------------------------------------------------ release


def test_release_with_unassigned_parts_is_blocked():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=2).assign(statuses=[AssignmentStatus.ASSIGNED, AssignmentStatus.NEEDS_REVIEW])
    with pytest.raises(ReleaseBlockedError, match="neither assigned nor discarded"):
        b.letter.release(notify_by_email=True, actor=STAFF)


def test_release_before_split_is_an_illegal_transition():
    b = LetterBuilder().attach()
    with pytest.raises(IllegalTransitionError, match="release while the letter is draft"):
        b.letter.release(notify_by_email=True, actor=STAFF)


def test_release_creates_one_item_per_assigned_part_with_deterministic_ids():
    b = LetterBuilder().to_review(3)
    b.letter.discard_part(part_id="doc-1-p2", actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    items = b.letter.release(notify_by_email=True, actor=STAFF)
    assert [i.item_id for i in items] == [f"{b.lid}:doc-1-p0", f"{b.lid}:doc-1-p1"]
    assert items[0].contact_id == "contact-0"
    assert items[0].unit_id == "unit-0"
    assert items[0].page_count == 2
    assert b.letter.status == LetterStatus.RELEASED
    assert b.letter.notify_by_email is True
    with pytest.raises(IllegalTransitionError):
        b.letter.release(notify_by_email=True, actor=STAFF)


def test_four_eyes_release_needs_a_second_person():
    b = LetterBuilder().to_review(2)
    b.letter.confirm_review(actor=STAFF)
    with pytest.raises(ReleaseBlockedError, match="four-eyes"):
        b.letter.release(notify_by_email=False, actor=Actor(STAFF.name.upper()), four_eyes=True)
    assert b.letter.status == LetterStatus.REVIEWED
    b.letter.release(notify_by_email=False, actor=Actor("teamleitung@hv.de"), four_eyes=True)
    assert b.letter.status == LetterStatus.RELEASED


# ------------------------------------------------------------------------------------------------ print


def test_print_only_after_release_and_only_once():
    b = LetterBuilder().to_review(2)
    with pytest.raises(IllegalTransitionError, match="order postal dispatch"):
        b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    b.letter.release(notify_by_email=False, actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="past"):
        b.letter.order_print(options=PrintOptions(dispatch_date=TODAY - timedelta(days=1)), today=TODAY, actor=STAFF)
    order_id = b.letter.order_print(options=PrintOptions(color=True), today=TODAY, actor=STAFF)
    assert b.letter.status == LetterStatus.PRINT_ORDERED
    assert b.letter.print_order_id == order_id
    with pytest.raises(IllegalTransitionError, match="already ordered"):
        b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)


def test_print_after_everything_revoked_is_refused():
    b = LetterBuilder().to_released(1)
    b.letter.revoke(unit_id="unit-0", item_ids=None, reason="falscher Empfänger", actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="nothing to print"):
        b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)


def test_mailpiece_status_keeps_the_latest_per_mailpiece_and_rejects_foreign_orders():
    b = LetterBuilder().to_released(2)
    order_id = b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)

    def piece(status, mailpiece="m1", order=order_id):
        return MailpieceView(
            mailpiece_id=mailpiece,
            print_order_id=order,
            contact_id="contact-0",
            status=status,
            provider="filedrop",
            updated_at=datetime.now(UTC),
        )

    assert (
        b.letter.record_mailpiece_status(
            inbound_event_id="p1", mailpiece=piece(MailpieceStatus.SUBMITTED), actor=SPLITTER
        )
        == InboundOutcome.APPLIED
    )
    assert (
        b.letter.record_mailpiece_status(
            inbound_event_id="p1", mailpiece=piece(MailpieceStatus.SUBMITTED), actor=SPLITTER
        )
        == InboundOutcome.DUPLICATE
    )
    b.letter.record_mailpiece_status(inbound_event_id="p2", mailpiece=piece(MailpieceStatus.SENT), actor=SPLITTER)
    assert b.letter.mailpieces["m1"].status == MailpieceStatus.SENT
    with pytest.raises(InboundMismatchError, match="does not belong"):
        b.letter.record_mailpiece_status(
            inbound_event_id="p3", mailpiece=piece(MailpieceStatus.SENT, order="other"), actor=SPLITTER
        )


# ------------------------------------------------------------------------------------------------ revoke, delete


def test_revoke_one_unit_then_not_again():
    b = LetterBuilder().to_released(3)
    with pytest.raises(IllegalTransitionError, match="reason"):
        b.letter.revoke(unit_id="unit-1", item_ids=None, reason=" ", actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="either a unit or"):
        b.letter.revoke(unit_id="unit-1", item_ids=["x"], reason="r", actor=STAFF)
    revoked = b.letter.revoke(unit_id="unit-1", item_ids=None, reason="Mieterwechsel", actor=STAFF)
    assert revoked == [f"{b.lid}:doc-1-p1"]
    assert b.letter.revoked[revoked[0]]["reason"] == "Mieterwechsel"
    with pytest.raises(IllegalTransitionError, match="no released"):
        b.letter.revoke(unit_id="unit-1", item_ids=None, reason="again", actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="already revoked"):
        b.letter.revoke(unit_id=None, item_ids=revoked, reason="again", actor=STAFF)
    with pytest.raises(IllegalTransitionError, match="unknown item"):
        b.letter.revoke(unit_id=None, item_ids=["nope"], reason="x", actor=STAFF)
    assert len(b.letter.active_item_ids()) == 2


def test_revoke_before_release_is_illegal():
    b = LetterBuilder().to_review(1)
    with pytest.raises(IllegalTransitionError, match="revoke"):
        b.letter.revoke(unit_id="unit-0", item_ids=None, reason="x", actor=STAFF)


def test_delete_after_release_revokes_the_remaining_items_and_is_terminal():
    b = LetterBuilder().to_released(3)
    b.letter.revoke(unit_id="unit-0", item_ids=None, reason="r", actor=STAFF)
    revoked = b.letter.delete(reason="falsche Abrechnung", actor=STAFF)
    assert revoked == [f"{b.lid}:doc-1-p1", f"{b.lid}:doc-1-p2"]
    assert b.letter.status == LetterStatus.DELETED
    with pytest.raises(IllegalTransitionError, match="already deleted"):
        b.letter.delete(reason="x", actor=STAFF)
    with pytest.raises(IllegalTransitionError):
        b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)
    # Late inbound results for a deleted letter are recorded as superseded and change nothing.
    assert (
        b.letter.record_split(
            inbound_event_id="late",
            document_id="doc-1",
            source_page_count=6,
            parts=b.parts["doc-1"],
            warnings=[],
            actor=SPLITTER,
        )
        == InboundOutcome.SUPERSEDED
    )


def test_delete_a_draft_revokes_nothing():
    b = LetterBuilder().attach()
    assert b.letter.delete(reason="", actor=STAFF) == []
    assert b.letter.status == LetterStatus.DELETED


def test_viewed_records_first_view_only_for_released_items():
    b = LetterBuilder().to_released(1)
    item = f"{b.lid}:doc-1-p0"
    t1 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert (
        b.letter.record_viewed(inbound_event_id="v1", item_id=item, first_viewed_at=t1, actor=SPLITTER)
        == InboundOutcome.APPLIED
    )
    assert (
        b.letter.record_viewed(
            inbound_event_id="v2", item_id=item, first_viewed_at=t1 + timedelta(hours=1), actor=SPLITTER
        )
        == InboundOutcome.DUPLICATE
    )
    assert b.letter.viewed[item] == t1
    with pytest.raises(InboundMismatchError):
        b.letter.record_viewed(inbound_event_id="v3", item_id="other", first_viewed_at=t1, actor=SPLITTER)


def test_every_event_names_its_actor_and_the_history_replays_to_the_same_state():
    b = LetterBuilder().to_released(2)
    events = b.letter.collect_events()
    assert all(e.actor for e in events)
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed.status == LetterStatus.RELEASED
    assert replayed.items == b.letter.items


# ------------------------------------------------------------------------------------------------ bulk review


def _proposals(b: LetterBuilder) -> None:
    """p0 assigned, p1 a safe proposal, p2 an unsafe one (two close candidates), p3 unmatched, p4 unmatched with a
    candidate (someone must look), p5 assigned in prop-2."""
    from smartpost_shared.contracts.documents import Candidate

    parts = b.parts["doc-1"]
    strong = ["Name im Anschriftenfeld", "Straße und Hausnummer"]
    proposals = [
        assigned(parts[0], "c0", unit="u0"),
        PartAssignment(
            part_id=parts[1].part_id,
            status=AssignmentStatus.NEEDS_REVIEW,
            contact_id="c1",
            property_id="prop-1",
            candidates=[
                Candidate(contact_id="c1", score=11.0, property_id="prop-1", unit_id="u1", evidence=strong),
                Candidate(contact_id="c9", score=4.0, evidence=["Postleitzahl"]),
            ],
        ),
        PartAssignment(
            part_id=parts[2].part_id,
            status=AssignmentStatus.NEEDS_REVIEW,
            contact_id="c2",
            candidates=[
                Candidate(contact_id="c2", score=10.0, unit_id="u2", evidence=strong),
                Candidate(contact_id="c2b", score=9.0, unit_id="u2", evidence=strong),
            ],
        ),
        PartAssignment(part_id=parts[3].part_id, status=AssignmentStatus.UNMATCHED),
        PartAssignment(
            part_id=parts[4].part_id,
            status=AssignmentStatus.UNMATCHED,
            candidates=[Candidate(contact_id="c4", score=3.0, evidence=["Postleitzahl"])],
        ),
        assigned(parts[5], "c5", unit="u5", prop="prop-2"),
    ]
    b.letter.record_assignments(
        inbound_event_id=b.event_id(),
        document_id="doc-1",
        assignments=proposals,
        warnings=[],
        is_correction=False,
        actor=ASSIGNER,
    )


def _bulk_letter() -> LetterBuilder:
    b = LetterBuilder(scope=LetterScope.CROSS_PROPERTY).attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=6)
    _proposals(b)
    return b


def _status(b: LetterBuilder, i: int) -> str:
    a = b.letter.part(f"doc-1-p{i}").assignment
    return a.status.value


def test_bulk_discard_unmatched_is_one_event_and_leaves_parts_with_candidates_to_staff():
    from smartpost_letters.domain.models import BulkAction

    b = _bulk_letter()
    version = b.letter.version
    changes = b.letter.bulk_review(bulk_id="b1", action=BulkAction.DISCARD_UNMATCHED, actor=STAFF)
    assert [c.part_id for c in changes] == ["doc-1-p3"]
    assert b.letter.version == version + 1
    assert _status(b, 3) == "discarded"
    assert _status(b, 4) == "unmatched"
    assert b.letter.part("doc-1-p3").assignment.decided_by == "staff:anna"
    with pytest.raises(PartError, match="finds no part"):
        b.letter.bulk_review(bulk_id="b2", action=BulkAction.DISCARD_UNMATCHED, actor=STAFF)


def test_bulk_accept_safe_takes_only_a_unique_top_candidate_with_strong_evidence_and_can_be_undone():
    from smartpost_letters.domain.models import BulkAction

    b = _bulk_letter()
    b.letter.reassign_part(part_id="doc-1-p0", contact_id="c0", property_id="prop-1", unit_id="u0", actor=STAFF)
    changes = b.letter.bulk_review(bulk_id="b1", action=BulkAction.ACCEPT_SAFE, actor=STAFF)
    assert [c.part_id for c in changes] == ["doc-1-p1"]
    accepted = b.letter.part("doc-1-p1").assignment
    assert (accepted.status.value, accepted.contact_id, accepted.unit_id, accepted.method) == (
        "assigned",
        "c1",
        "u1",
        AssignmentMethod.MANUAL,
    )
    assert _status(b, 2) == "needs_review"  # two candidates within the margin: staff decide
    for i in (2, 3, 4):
        b.letter.discard_part(part_id=f"doc-1-p{i}", actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    b.letter.undo_bulk_review(bulk_id="b1", actor=STAFF)
    assert _status(b, 1) == "needs_review"
    assert b.letter.status == LetterStatus.IN_REVIEW
    assert b.letter.bulk_actions["b1"]["undone"] is True
    with pytest.raises(PartError, match="already undone"):
        b.letter.undo_bulk_review(bulk_id="b1", actor=STAFF)


def test_bulk_accept_safe_never_takes_a_candidate_without_contract_in_a_cross_property_letter():
    """Found by the 10k system benchmark: such a part blocked the Endkontrolle ("no contract (property and unit)")
    while it was no longer in the "zur Prüfung" list."""
    from smartpost_letters.domain.models import BulkAction
    from smartpost_shared.contracts.documents import Candidate

    b = LetterBuilder(scope=LetterScope.CROSS_PROPERTY).attach()
    b.letter.start_split(actor=STAFF)
    b.split(count=2)
    strong = ["Name im Anschriftenfeld", "Straße und Hausnummer"]
    parts = b.parts["doc-1"]
    b.letter.record_assignments(
        inbound_event_id=b.event_id(),
        document_id="doc-1",
        assignments=[
            PartAssignment(
                part_id=parts[0].part_id,
                status=AssignmentStatus.NEEDS_REVIEW,
                contact_id="c1",
                candidates=[Candidate(contact_id="c1", score=11.0, evidence=strong)],
            ),
            PartAssignment(
                part_id=parts[1].part_id,
                status=AssignmentStatus.NEEDS_REVIEW,
                contact_id="c2",
                candidates=[
                    Candidate(contact_id="c2", score=11.0, property_id="prop-1", unit_id="u2", evidence=strong)
                ],
            ),
        ],
        warnings=[],
        is_correction=False,
        actor=ASSIGNER,
    )
    changes = b.letter.bulk_review(bulk_id="b1", action=BulkAction.ACCEPT_SAFE, actor=STAFF)
    assert [c.part_id for c in changes] == [parts[1].part_id]
    assert _status(b, 0) == "needs_review"
    # Assigned by hand without a contract, the part stays in "zur Prüfung": staff must find what blocks them.
    from smartpost_letters.schemas import PartsPageOut

    b.letter.reassign_part(part_id=parts[0].part_id, contact_id="c1", property_id=None, unit_id=None, actor=STAFF)
    page = PartsPageOut.of(b.letter, part_filter="review", property_id=None, offset=0, limit=10)
    assert [p.part_id for p in page.parts] == [parts[0].part_id]
    assert any("no contract" in blocker for blocker in b.letter._release_blockers())


def test_defer_property_sets_its_letters_aside_from_the_release_and_undo_brings_them_back():
    from smartpost_letters.domain.models import BulkAction

    b = _bulk_letter()
    changes = b.letter.bulk_review(bulk_id="b1", action=BulkAction.DEFER_PROPERTY, property_id="prop-2", actor=STAFF)
    assert [c.part_id for c in changes] == ["doc-1-p5"]
    deferred = b.letter.part("doc-1-p5").assignment
    assert (deferred.deferred, deferred.status.value, deferred.contact_id) == (True, "discarded", "c5")
    b.letter.bulk_review(bulk_id="b2", action=BulkAction.DISCARD_UNMATCHED, actor=STAFF)
    for i in (1, 2, 4):
        b.letter.discard_part(part_id=f"doc-1-p{i}", actor=STAFF)
    b.letter.undo_bulk_review(bulk_id="b1", actor=STAFF)
    assert b.letter.part("doc-1-p5").assignment.contact_id == "c5"
    assert not b.letter.part("doc-1-p5").assignment.deferred
    b.letter.bulk_review(bulk_id="b3", action=BulkAction.DEFER_PROPERTY, property_id="prop-2", actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    items = b.letter.release(notify_by_email=False, actor=STAFF)
    assert [i.part_id for i in items] == ["doc-1-p0"]  # prop-2's letter stays back
    with pytest.raises(IllegalTransitionError):
        b.letter.undo_bulk_review(bulk_id="b3", actor=STAFF)


def test_undo_skips_parts_staff_changed_after_the_bulk_action():
    from smartpost_letters.domain.models import BulkAction

    b = _bulk_letter()
    b.letter.bulk_review(bulk_id="b1", action=BulkAction.DISCARD_UNMATCHED, actor=STAFF)
    b.letter.reassign_part(part_id="doc-1-p3", contact_id="c3", property_id="prop-1", unit_id=None, actor=STAFF)
    restored = b.letter.undo_bulk_review(bulk_id="b1", actor=STAFF)
    assert restored == []
    assert b.letter.part("doc-1-p3").assignment.contact_id == "c3"


# ------------------------------------------------------------------------------------------------ every "again" is new


def _split_kwargs(b: LetterBuilder, event_id: str, answer_to: str, count: int = 2) -> dict:
    return {
        "inbound_event_id": event_id,
        "document_id": "doc-1",
        "source_page_count": count * 2,
        "parts": make_parts("acc-1", b.lid, "doc-1", count),
        "warnings": [],
        "actor": SPLITTER,
        "answer_to": answer_to,
    }


def test_each_split_round_has_a_new_request_id_matching_the_wire_event():
    from smartpost_letters.integration import wire_envelopes

    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    first = b.letter.document("doc-1").split_request_id
    b.letter.reopen(actor=STAFF)
    b.letter.start_split(actor=STAFF)
    second = b.letter.document("doc-1").split_request_id
    assert first
    assert second
    assert first != second
    started = [e for e in b.letter.collect_events() if isinstance(e, SerialLetter.SplitStarted)]
    wire_ids = [str(env.event_id) for e in started for env in wire_envelopes(e)]
    assert wire_ids == [first, second]


def test_the_same_answer_event_id_for_a_new_request_is_not_a_duplicate():
    """The splitter answers an unchanged file with the same event id every round: the request tells them apart."""
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    round1 = b.letter.document("doc-1").split_request_id
    assert b.letter.record_split(**_split_kwargs(b, "split-x", round1)) == InboundOutcome.APPLIED
    b.letter.reopen(actor=STAFF)
    b.letter.start_split(actor=STAFF)
    round2 = b.letter.document("doc-1").split_request_id
    assert b.letter.record_split(**_split_kwargs(b, "split-x", round1)) == InboundOutcome.DUPLICATE
    assert b.letter.record_split(**_split_kwargs(b, "split-x", round2)) == InboundOutcome.APPLIED
    assert b.letter.status == LetterStatus.ASSIGNING


def test_an_answer_to_an_earlier_request_is_recorded_as_superseded():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    round1 = b.letter.document("doc-1").split_request_id
    b.letter.reopen(actor=STAFF)
    b.letter.start_split(actor=STAFF)
    # The late answer of round 1 arrives while round 2 is running: recorded, the letter keeps waiting for round 2.
    outcome = b.letter.record_split_failure(
        inbound_event_id="fail-1",
        document_id="doc-1",
        reason_code=SplitFailureReason.NO_LETTER_FOUND,
        reason="kein Brief",
        failed_at=datetime.now(UTC),
        actor=SPLITTER,
        answer_to=round1,
    )
    assert outcome == InboundOutcome.SUPERSEDED
    assert b.letter.status == LetterStatus.SPLITTING
    superseded = [e for e in b.letter.collect_events() if isinstance(e, SerialLetter.AnswerSuperseded)]
    assert [(e.inbound_event_id, e.answer_to, e.event_type) for e in superseded] == [
        ("fail-1", round1, "DocumentSplitFailed")
    ]


def test_assignments_answering_another_split_result_are_superseded():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    request = b.letter.document("doc-1").split_request_id
    b.letter.record_split(**_split_kwargs(b, "split-2", request))
    parts = b.letter.document("doc-1").parts

    def assign(event_id: str, answer_to: str) -> InboundOutcome:
        return b.letter.record_assignments(
            inbound_event_id=event_id,
            document_id="doc-1",
            assignments=[assigned(p, f"c{i}") for i, p in enumerate(parts)],
            warnings=[],
            is_correction=False,
            actor=ASSIGNER,
            answer_to=answer_to,
        )

    assert assign("pa-1", "split-1") == InboundOutcome.SUPERSEDED
    assert b.letter.status == LetterStatus.ASSIGNING
    assert assign("pa-2", "split-2") == InboundOutcome.APPLIED
    assert b.letter.status == LetterStatus.IN_REVIEW


def test_deferred_assignments_of_another_split_result_are_not_applied():
    b = LetterBuilder().attach()
    b.letter.start_split(actor=STAFF)
    request = b.letter.document("doc-1").split_request_id
    parts = make_parts("acc-1", b.lid, "doc-1", 2)
    b.letter.record_assignments(
        inbound_event_id="pa-old",
        document_id="doc-1",
        assignments=[assigned(p, f"c{i}") for i, p in enumerate(parts)],
        warnings=[],
        is_correction=False,
        actor=ASSIGNER,
        answer_to="split-old",
    )
    b.letter.record_split(**_split_kwargs(b, "split-new", request))
    assert b.letter.status == LetterStatus.ASSIGNING
    assert all(p.assignment is None for p in b.letter.parts())


def test_waiting_for_names_the_service_and_the_time_the_wait_began():
    b = LetterBuilder().attach()
    assert b.letter.waiting_for() is None
    b.letter.start_split(actor=STAFF)
    what, since_split = b.letter.waiting_for()
    assert what == "splitter"
    b.split(count=2)
    what, since_assign = b.letter.waiting_for()
    assert what == "assignment"
    assert since_assign >= since_split
    b.assign()
    assert b.letter.waiting_for() is None  # in review: staff are next
    with pytest.raises(IllegalTransitionError):
        b.letter.record_resend(waiting_for="splitter", event_ids=[], actor=STAFF)
    b.letter.confirm_review(actor=STAFF)
    b.letter.release(notify_by_email=True, actor=STAFF)
    b.letter.order_print(options=PrintOptions(), today=TODAY, actor=STAFF)
    assert b.letter.waiting_for()[0] == "print-dispatch"


def test_billing_period_is_optional_complete_and_ordered():
    letter = create(period_start=date(2024, 1, 1), period_end=date(2024, 12, 31))
    assert (letter.period_start, letter.period_end) == (date(2024, 1, 1), date(2024, 12, 31))
    assert create().period_start is None
    with pytest.raises(InvalidLetterError, match="start and its end"):
        create(period_start=date(2024, 1, 1))
    with pytest.raises(InvalidLetterError, match="ends before it starts"):
        create(period_start=date(2024, 12, 31), period_end=date(2024, 1, 1))


def test_release_carries_the_billing_period_to_the_wire_event():
    from smartpost_letters.integration import wire_payloads
    from smartpost_shared.contracts.letters import LetterReleased

    for period in ((date(2025, 1, 1), date(2025, 12, 31)), None):
        b = LetterBuilder(period=period).to_review(1)
        b.letter.confirm_review(actor=STAFF)
        b.letter.release(notify_by_email=False, actor=STAFF)
        released = [p for e in b.letter.collect_events() for p in wire_payloads(e) if isinstance(p, LetterReleased)]
        assert len(released) == 1
        assert (released[0].period_start, released[0].period_end) == (period or (None, None))
