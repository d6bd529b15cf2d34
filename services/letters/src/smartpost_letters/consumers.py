"""Inbound events: split results, assignments, print status and first views, recorded on the letter.

Idempotency lives in the aggregate (it remembers inbound event ids), so re-delivery changes nothing. An event for
an unknown letter, another account's letter or a part the letter does not have is dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventsourcing.persistence import PersistenceError

from smartpost_letters.application import LetterNotFoundError
from smartpost_letters.domain.errors import DomainError
from smartpost_letters.domain.models import MailpieceView
from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, PagesAssigned
from smartpost_shared.contracts.portal import DocumentViewed
from smartpost_shared.contracts.printing import PrintJobStatusChanged
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import EventConsumer, PermanentError, TransientError
from smartpost_shared.topics import ASSIGNMENT, PORTAL, PRINT, SPLITTER

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_letters.application import LetterService
    from smartpost_letters.domain.letter import InboundOutcome
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.messaging import Handler
    from smartpost_shared.settings import KafkaSettings
    from smartpost_shared.topics import Topic

log = get_logger(__name__)


def _letter_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise PermanentError(f"letter id {raw!r} is not a letter of this service") from None


class InboundHandlers:
    def __init__(self, service: LetterService) -> None:
        self.service = service

    async def _run(self, envelope: Envelope, letter_id: str, record: Callable[[uuid.UUID], InboundOutcome]) -> None:
        lid = _letter_id(letter_id)
        try:
            outcome = await asyncio.to_thread(record, lid)
        except LetterNotFoundError:
            raise PermanentError(f"unknown letter {letter_id} for account {envelope.account_id}") from None
        except DomainError as exc:
            raise PermanentError(f"{exc.code}: {exc}") from exc
        except PersistenceError as exc:
            # Event store unreachable or busy: retry forever, never dead-letter a message for an outage.
            raise TransientError(f"event store: {exc}") from exc
        log.info("inbound.recorded", letter_id=letter_id, event_type=envelope.event_type, outcome=outcome.value)

    @staticmethod
    def _actor(envelope: Envelope) -> str:
        return f"service:{envelope.producer}"

    @staticmethod
    def _answer_to(envelope: Envelope) -> str:
        """The request an answer belongs to (its causation): a re-answer to a new request is never a duplicate."""
        return str(envelope.causation_id) if envelope.causation_id else ""

    async def on_document_split(self, envelope: Envelope) -> None:
        p = envelope.payload
        assert isinstance(p, DocumentSplit)
        await self._run(
            envelope,
            p.letter_id,
            lambda lid: self.service.record_split(
                envelope.account_id,
                lid,
                inbound_event_id=str(envelope.event_id),
                document_id=p.document_id,
                source_page_count=p.source_page_count,
                parts=p.parts,
                warnings=p.warnings,
                actor=self._actor(envelope),
                answer_to=self._answer_to(envelope),
            ),
        )

    async def on_document_split_failed(self, envelope: Envelope) -> None:
        p = envelope.payload
        assert isinstance(p, DocumentSplitFailed)
        await self._run(
            envelope,
            p.letter_id,
            lambda lid: self.service.record_split_failure(
                envelope.account_id,
                lid,
                inbound_event_id=str(envelope.event_id),
                document_id=p.document_id,
                reason_code=p.reason_code,
                reason=p.reason,
                failed_at=envelope.occurred_at,
                actor=self._actor(envelope),
                answer_to=self._answer_to(envelope),
            ),
        )

    async def on_pages_assigned(self, envelope: Envelope) -> None:
        p = envelope.payload
        assert isinstance(p, PagesAssigned)
        await self._run(
            envelope,
            p.letter_id,
            lambda lid: self.service.record_assignments(
                envelope.account_id,
                lid,
                inbound_event_id=str(envelope.event_id),
                document_id=p.document_id,
                assignments=p.assignments,
                warnings=p.warnings,
                is_correction=p.is_correction,
                actor=self._actor(envelope),
                answer_to=self._answer_to(envelope),
            ),
        )

    async def on_print_status(self, envelope: Envelope) -> None:
        p = envelope.payload
        assert isinstance(p, PrintJobStatusChanged)
        mailpiece = MailpieceView(
            mailpiece_id=p.mailpiece_id,
            print_order_id=p.print_order_id,
            contact_id=p.contact_id,
            item_ids=list(p.item_ids),
            status=p.status,
            provider=p.provider,
            provider_ref=p.provider_ref,
            tracking_number=p.tracking_number,
            reason=p.reason,
            sheets=p.sheets,
            cost_cents=p.cost_cents,
            updated_at=envelope.occurred_at.astimezone(UTC),
        )
        await self._run(
            envelope,
            p.letter_id,
            lambda lid: self.service.record_mailpiece_status(
                envelope.account_id,
                lid,
                inbound_event_id=str(envelope.event_id),
                mailpiece=mailpiece,
                actor=self._actor(envelope),
            ),
        )

    async def on_document_viewed(self, envelope: Envelope) -> None:
        p = envelope.payload
        assert isinstance(p, DocumentViewed)
        viewed_at: datetime = p.first_viewed_at.astimezone(UTC)
        await self._run(
            envelope,
            p.letter_id,
            lambda lid: self.service.record_viewed(
                envelope.account_id,
                lid,
                inbound_event_id=str(envelope.event_id),
                item_id=p.item_id,
                first_viewed_at=viewed_at,
                actor=self._actor(envelope),
            ),
        )


def subscribe_all(consumer: EventConsumer, handlers: InboundHandlers, kafka: KafkaSettings, group_id: str) -> None:
    def subscribe(topic: Topic, handlers_by_type: dict[str, Handler]) -> None:
        consumer.subscribe(
            topic,
            handlers_by_type,
            group_id=group_id,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        )

    subscribe(
        SPLITTER,
        {"DocumentSplit": handlers.on_document_split, "DocumentSplitFailed": handlers.on_document_split_failed},
    )
    subscribe(ASSIGNMENT, {"PagesAssigned": handlers.on_pages_assigned})
    subscribe(PRINT, {"PrintJobStatusChanged": handlers.on_print_status})
    subscribe(PORTAL, {"DocumentViewed": handlers.on_document_viewed})
