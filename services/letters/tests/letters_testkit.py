"""Test kit of the letters service: a letter driven to any state with realistic inbound events."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Any

from smartpost_letters.domain.letter import Actor, SerialLetter
from smartpost_letters.domain.models import DocumentRole
from smartpost_shared.contracts.common import DocumentType, LetterScope, SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    PartAssignment,
    SplitPart,
)

STAFF = Actor("staff:anna")
SPLITTER = Actor("service:splitter")
ASSIGNER = Actor("service:assignment")
DOCTYPE = DocumentType(id="dt-abrechnung", path=["Abrechnungen", "Heizkosten"])
RULE = SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK)


def make_parts(
    account: str, letter_id: str, document_id: str, count: int, pages: int = 2, *, thumbnail_pack: bool = False
) -> list[SplitPart]:
    """Parts as the splitter reports them; ``thumbnail_pack``: thumbnails as 10-byte ranges of one pack object."""
    pack = f"accounts/{account}/letters/{letter_id}/thumbnails/{document_id}/thumbnails.pngpack"
    return [
        SplitPart(
            part_id=f"{document_id}-p{i}",
            index=i,
            first_page=i * pages + 1,
            last_page=i * pages + pages,
            page_count=pages,
            storage_key=f"accounts/{account}/letters/{letter_id}/parts/{document_id}/{i:05d}.pdf",
            thumbnail_key=pack
            if thumbnail_pack
            else f"accounts/{account}/letters/{letter_id}/thumbnails/{document_id}/{i:05d}.png",
            thumbnail_offset=i * 10 if thumbnail_pack else None,
            thumbnail_size=10 if thumbnail_pack else None,
            sha256=hashlib.sha256(f"{document_id}{i}".encode()).hexdigest(),
            size_bytes=1000 + i,
            address_lines=[f"Kontakt {i}", "Hauptstr. 1", "10115 Berlin"],
        )
        for i in range(count)
    ]


def assigned(
    part: SplitPart,
    contact: str,
    *,
    unit: str | None = None,
    prop: str | None = "prop-1",
    status: AssignmentStatus = AssignmentStatus.ASSIGNED,
) -> PartAssignment:
    return PartAssignment(
        part_id=part.part_id,
        status=status,
        contact_id=contact if status != AssignmentStatus.UNMATCHED else None,
        property_id=prop,
        unit_id=unit,
        method=AssignmentMethod.AUTO,
        score=0.95,
        evidence=["name matched"],
    )


class LetterBuilder:
    def __init__(
        self,
        *,
        account: str = "acc-1",
        scope: LetterScope = LetterScope.PROPERTY,
        period: tuple[date, date] | None = None,
    ) -> None:
        self.account = account
        self.letter = SerialLetter.create(
            letter_id=uuid.uuid4(),
            account_id=account,
            title="Heizkostenabrechnung 2025",
            document_type=DOCTYPE,
            recipient_groups=["owners", "tenants"],
            scope=scope,
            property_id="prop-1" if scope == LetterScope.PROPERTY else None,
            include_archived=False,
            letter_date=date(2026, 3, 1),
            actor=STAFF,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
        )
        self.inbound = 0
        self.parts: dict[str, list[SplitPart]] = {}

    @property
    def lid(self) -> str:
        return str(self.letter.id)

    def event_id(self) -> str:
        self.inbound += 1
        return str(uuid.uuid4())

    def attach(self, document_id: str = "doc-1", role: DocumentRole = DocumentRole.SPLIT) -> LetterBuilder:
        self.letter.attach_document(
            document_id=document_id,
            filename=f"{document_id}.pdf",
            role=role,
            rule=RULE if role == DocumentRole.SPLIT else None,
            source_key=f"accounts/{self.account}/letters/{self.lid}/sources/{document_id}.pdf",
            size_bytes=1234,
            sha256="0" * 64,
            actor=STAFF,
        )
        return self

    def split(self, document_id: str = "doc-1", count: int = 3) -> LetterBuilder:
        parts = make_parts(self.account, self.lid, document_id, count)
        self.parts[document_id] = parts
        self.letter.record_split(
            inbound_event_id=self.event_id(),
            document_id=document_id,
            source_page_count=count * 2,
            parts=parts,
            warnings=[],
            actor=SPLITTER,
        )
        return self

    def assign(
        self,
        document_id: str = "doc-1",
        statuses: list[AssignmentStatus] | None = None,
        warnings: list[AssignmentWarning] | None = None,
    ) -> LetterBuilder:
        parts = self.parts[document_id]
        statuses = statuses or [AssignmentStatus.ASSIGNED] * len(parts)
        self.letter.record_assignments(
            inbound_event_id=self.event_id(),
            document_id=document_id,
            assignments=[
                assigned(p, f"contact-{i}", unit=f"unit-{i}", status=s)
                for i, (p, s) in enumerate(zip(parts, statuses, strict=True))
            ],
            warnings=warnings or [],
            is_correction=False,
            actor=ASSIGNER,
        )
        return self

    def to_review(self, count: int = 3) -> LetterBuilder:
        self.attach()
        self.letter.start_split(actor=STAFF)
        return self.split(count=count).assign()

    def to_released(self, count: int = 3, *, notify: bool = True) -> LetterBuilder:
        self.to_review(count)
        self.letter.confirm_review(actor=STAFF)
        self.letter.release(notify_by_email=notify, actor=STAFF)
        return self


def tiny_pdf(pages: int = 1, *, password: str | None = None) -> bytes:
    """A real (readable) PDF with blank A4 pages; ``password`` encrypts it."""
    import io

    import pikepdf

    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    out = io.BytesIO()
    if password is not None:
        pdf.save(out, encryption=pikepdf.Encryption(user=password, owner=password))
    else:
        pdf.save(out)
    return out.getvalue()


def now() -> datetime:
    return datetime.now(UTC)


def as_dict(obj: Any) -> Any:
    return obj.model_dump(mode="json")


async def read_topic(bootstrap: str, topic: str, predicate, *, until, timeout: float = 20.0) -> list[Any]:
    """Read ``topic`` from the beginning (no consumer group) until ``until(matches)`` or timeout.

    Returns the matching messages as (envelope dict, headers dict) pairs, in partition order.
    """
    import asyncio
    import json

    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        matches: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value)
                    headers = {k: v.decode() for k, v in (record.headers or [])}
                    if predicate(body, headers):
                        matches.append((body, headers))
            if until(matches):
                return matches
        return matches
    finally:
        await consumer.stop()
