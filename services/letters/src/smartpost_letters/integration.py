"""Integration events: which wire events (``letters.events``) a stored domain event stands for.

Pure mapping, no I/O. The envelope's ``event_id`` is derived from the stored event (letter id, version and the
index within that event), so a re-publish after a crash carries the same id and consumers dedupe it. The
correlation id of everything a letter emits is the letter id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_letters.domain.letter import SerialLetter, wire_event_id
from smartpost_shared.contracts.common import LetterScope
from smartpost_shared.contracts.envelope import Envelope, make_envelope
from smartpost_shared.contracts.letters import (
    AssignmentCorrected,
    CorrectionAction,
    LetterCreated,
    LetterItemsRevoked,
    LetterReleased,
    PrintOrdered,
    SplitRequested,
)

if TYPE_CHECKING:
    from smartpost_shared.contracts.base import EventPayload

PRODUCER = "letters"


def wire_payloads(event: object) -> list[EventPayload]:  # noqa: PLR0911 - one branch per event type
    """The wire payloads for one stored domain event, in publishing order (empty for internal events)."""
    if not isinstance(event, SerialLetter.Event):
        return []
    letter_id = str(event.originator_id)
    if isinstance(event, SerialLetter.Created):
        return [
            LetterCreated(
                letter_id=letter_id,
                title=event.title,
                document_type=event.document_type,
                recipient_groups=event.recipient_groups,
                scope=LetterScope(event.scope),
                property_id=event.property_id,
                include_archived=event.include_archived,
                letter_date=event.letter_date,
                created_by=event.actor,
                period_start=getattr(event, "period_start", None),
                period_end=getattr(event, "period_end", None),
            )
        ]
    if isinstance(event, SerialLetter.SplitStarted):
        return [
            SplitRequested(
                letter_id=letter_id,
                document_id=r.document_id,
                source_key=r.source_key,
                filename=r.filename,
                position=r.position,
                rule=r.rule,
                attachment_keys=r.attachment_keys,
            )
            for r in event.requests
        ]
    if isinstance(event, SerialLetter.PartCorrected):
        return [
            AssignmentCorrected(
                letter_id=letter_id,
                document_id=event.document_id,
                part_id=event.part_id,
                action=CorrectionAction(event.action),
                contact_id=event.contact_id,
                property_id=event.property_id,
                unit_id=event.unit_id,
                actor=event.actor,
            )
        ]
    if isinstance(event, SerialLetter.Released):
        return [
            LetterReleased(
                letter_id=letter_id,
                title=event.title,
                document_type=event.document_type,
                letter_date=event.letter_date,
                notify_by_email=event.notify_by_email,
                released_by=event.actor,
                items=event.items,
                period_start=getattr(event, "period_start", None),
                period_end=getattr(event, "period_end", None),
            )
        ]
    if isinstance(event, SerialLetter.PrintOrderPlaced):
        return [
            PrintOrdered(
                letter_id=letter_id,
                print_order_id=event.print_order_id,
                title=event.title,
                options=event.options,
                items=event.items,
                ordered_by=event.actor,
            )
        ]
    if isinstance(event, SerialLetter.ItemsRevoked):
        return [
            LetterItemsRevoked(letter_id=letter_id, item_ids=event.item_ids, reason=event.reason, actor=event.actor)
        ]
    if isinstance(event, SerialLetter.Deleted) and event.revoked_item_ids:
        return [
            LetterItemsRevoked(
                letter_id=letter_id,
                item_ids=event.revoked_item_ids,
                reason=event.reason,
                actor=event.actor,
                letter_deleted=True,
            )
        ]
    return []


def wire_envelopes(event: object) -> list[Envelope]:
    """Envelopes for one stored domain event, with ids that are the same every time they are built."""
    payloads = wire_payloads(event)
    if not payloads:
        return []
    assert isinstance(event, SerialLetter.Event)
    return [
        make_envelope(
            payload,
            account_id=event.account_id,
            producer=PRODUCER,
            correlation_id=event.originator_id,
            event_id=wire_event_id(event.originator_id, event.originator_version, index),
            occurred_at=event.timestamp,
        )
        for index, payload in enumerate(payloads)
    ]
