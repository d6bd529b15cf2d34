"""Inbound events: split results, assignments, print status and first views, recorded on the letter.

Idempotency lives in the aggregate (it remembers inbound event ids), so re-delivery changes nothing. An event for
an unknown letter, another account's letter or a part the letter does not have is dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from eventsourcing.persistence import PersistenceError

from smartpost_letters.application import LetterNotFoundError
from smartpost_letters.domain.errors import DomainError
from smartpost_letters.domain.letter import InboundOutcome
from smartpost_letters.domain.models import MailpieceView
from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, PagesAssigned
from smartpost_shared.contracts.portal import DocumentViewed
from smartpost_shared.contracts.printing import PrintJobStatusChanged
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import EventConsumer, PermanentError, TransientError
from smartpost_shared.topics import ASSIGNMENT, PORTAL, PRINT, SPLITTER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from smartpost_letters.application import LetterService
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.messaging import Handler
    from smartpost_shared.settings import KafkaSettings
    from smartpost_shared.topics import Topic

log = get_logger(__name__)
T = TypeVar("T")
Status = tuple[str, MailpieceView, str]  # (inbound event id, mailpiece, actor)


def _letter_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise PermanentError(f"letter id {raw!r} is not a letter of this service") from None


class InboundHandlers:
    def __init__(self, service: LetterService) -> None:
        self.service = service

    async def _run(self, envelope: Envelope, letter_id: str, record: Callable[[uuid.UUID], InboundOutcome]) -> None:
        outcome = await self._recorded(envelope.account_id, letter_id, record)
        log.info("inbound.recorded", letter_id=letter_id, event_type=envelope.event_type, outcome=outcome.value)

    @staticmethod
    async def _recorded(account_id: str, letter_id: str, record: Callable[[uuid.UUID], T]) -> T:
        lid = _letter_id(letter_id)
        try:
            return await asyncio.to_thread(record, lid)
        except LetterNotFoundError:
            raise PermanentError(f"unknown letter {letter_id} for account {account_id}") from None
        except DomainError as exc:
            raise PermanentError(f"{exc.code}: {exc}") from exc
        except PersistenceError as exc:
            # Event store unreachable or busy: retry forever, never dead-letter a message for an outage.
            raise TransientError(f"event store: {exc}") from exc

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

    async def on_print_statuses(self, envelopes: list[Envelope]) -> None:
        """A batch of print status changes: one save per letter instead of one per status.

        969 mailpieces of a 10,000-page letter are ~3,000 status events. Any failure falls back to
        :meth:`on_print_status` one by one (the consumer does that), which skips what this already recorded (the
        letter knows the event ids).
        """
        by_letter: dict[tuple[str, str], list[Envelope]] = defaultdict(list)
        for envelope in envelopes:
            assert isinstance(envelope.payload, PrintJobStatusChanged)
            by_letter[(envelope.account_id, envelope.payload.letter_id)].append(envelope)
        for (account_id, letter_id), group in by_letter.items():
            statuses = [(str(e.event_id), self._mailpiece(e), self._actor(e)) for e in group]

            def record(
                lid: uuid.UUID, account: str = account_id, todo: Sequence[Status] = statuses
            ) -> list[InboundOutcome]:
                return self.service.record_mailpiece_statuses(account, lid, todo)

            outcomes = await self._recorded(account_id, letter_id, record)
            applied = outcomes.count(InboundOutcome.APPLIED)
            log.info("inbound.recorded_group", letter_id=letter_id, events=len(group), applied=applied)

    @staticmethod
    def _mailpiece(envelope: Envelope) -> MailpieceView:
        p = envelope.payload
        assert isinstance(p, PrintJobStatusChanged)
        return MailpieceView(
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

    async def on_documents_viewed(self, envelopes: list[Envelope]) -> None:
        """First views, one after the other (they are few; the group saves the offset commits around them)."""
        for envelope in envelopes:
            await self.on_document_viewed(envelope)

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
    # Print status changes come by the thousand after a big print order: consumed in groups, one save per letter.
    consumer.subscribe_grouped(
        PRINT,
        {"PrintJobStatusChanged": handlers.on_print_status},
        handlers.on_print_statuses,
        group_id=group_id,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
    # portal.events carries a DocumentPublished per released letter (4,000 for a big release) that letters passes
    # over: consumed in groups too, so that skipping them costs one offset commit per batch, not one per event.
    consumer.subscribe_grouped(
        PORTAL,
        {"DocumentViewed": handlers.on_document_viewed},
        handlers.on_documents_viewed,
        group_id=group_id,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
