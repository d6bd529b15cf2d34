"""One realistic example message per event type and version (the source of the golden files)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from smartpost_shared.contracts import documents as d
from smartpost_shared.contracts import letters as lt
from smartpost_shared.contracts import masterdata as md
from smartpost_shared.contracts import portal as pt
from smartpost_shared.contracts import printing as pr
from smartpost_shared.contracts.common import DocumentType, LetterScope, PostalAddress, SplitRule, SplitStrategy
from smartpost_shared.contracts.envelope import make_envelope

if TYPE_CHECKING:
    from smartpost_shared.contracts.base import EventPayload

AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
DOC_TYPE = DocumentType(id="dt-abrechnung", path=["Abrechnungen", "Jahresabrechnung"])
ITEM = lt.ReleasedItem(
    item_id="L-1:P-1",
    document_id="D-1",
    part_id="P-1",
    contact_id="C-4711",
    property_id="P-WEG0815",
    unit_id="U-03",
    storage_key="accounts/acc-1/letters/L-1/parts/D-1/00000.pdf",
    page_count=3,
)
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def example_payloads() -> list[EventPayload]:
    return [
        md.PropertyUpserted(
            property_id="P-WEG0815",
            reference="WEG-0815",
            name="WEG Lindenstraße 5",
            address=PostalAddress(street="Lindenstraße 5", postal_code="10115", city="Berlin"),
        ),
        md.UnitUpserted(unit_id="U-03", property_id="P-WEG0815", number="WE 03", position="1. OG links"),
        md.ContactUpserted(
            contact_id="C-4711",
            reference_id="K-004711",
            salutation="Herr",
            first_name="Max",
            last_name="Müller",
            address=PostalAddress(street="Lindenstraße 5", postal_code="10115", city="Berlin"),
            email="max.mueller@example.org",
            channel_preference="online",
            portal_registered=True,
        ),
        md.ContactArchived(contact_id="C-4711"),
        md.ContactErasureRequested(
            erasure_id="e-0815", contact_id="C-4711", requested_by="admin@hv-muster.de", reason="Antrag vom 01.12."
        ),
        md.ContractUpserted(
            contract_id="V-1",
            contact_id="C-4711",
            unit_id="U-03",
            property_id="P-WEG0815",
            role="owner",
            start=date(2019, 4, 1),
            contract_number="E-0815-03",
        ),
        lt.LetterCreated(
            letter_id="L-1",
            title="Jahresabrechnung 2025",
            document_type=DOC_TYPE,
            recipient_groups=["owners"],
            scope=LetterScope.PROPERTY,
            property_id="P-WEG0815",
            letter_date=date(2026, 11, 27),
            created_by="sachbearbeiterin@hv-muster.de",
        ),
        lt.SplitRequested(
            letter_id="L-1",
            document_id="D-1",
            source_key="accounts/acc-1/letters/L-1/sources/D-1.pdf",
            filename="jahresabrechnung-2025.pdf",
            position=0,
            rule=SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"K-\d{6}"),
            attachment_keys=["accounts/acc-1/letters/L-1/sources/D-2.pdf"],
        ),
        lt.AssignmentCorrected(
            letter_id="L-1",
            document_id="D-1",
            part_id="P-1",
            action=lt.CorrectionAction.REASSIGN,
            contact_id="C-4711",
            property_id="P-WEG0815",
            unit_id="U-03",
            actor="sachbearbeiterin@hv-muster.de",
        ),
        lt.LetterReleased(
            letter_id="L-1",
            title="Jahresabrechnung 2025",
            document_type=DOC_TYPE,
            letter_date=date(2026, 11, 27),
            notify_by_email=True,
            released_by="teamleitung@hv-muster.de",
            items=[ITEM],
        ),
        lt.PrintOrdered(
            letter_id="L-1",
            print_order_id="PO-1",
            title="Jahresabrechnung 2025",
            options=lt.PrintOptions(recipient_filter=lt.RecipientFilter.POST_PREFERENCE, color=False, duplex=True),
            items=[ITEM],
            ordered_by="teamleitung@hv-muster.de",
        ),
        lt.LetterItemsRevoked(
            letter_id="L-1", item_ids=["L-1:P-1"], reason="Falscher Empfänger", actor="teamleitung@hv-muster.de"
        ),
        d.DocumentSplit(
            letter_id="L-1",
            document_id="D-1",
            source_key="accounts/acc-1/letters/L-1/sources/D-1.pdf",
            strategy=SplitStrategy.IDENTIFIER,
            source_page_count=3,
            parts=[
                d.SplitPart(
                    part_id="D-1-00000",
                    index=0,
                    first_page=1,
                    last_page=3,
                    page_count=3,
                    storage_key="accounts/acc-1/letters/L-1/parts/D-1/00000.pdf",
                    thumbnail_key="accounts/acc-1/letters/L-1/thumbnails/D-1/00000.png",
                    sha256=SHA,
                    size_bytes=84211,
                    address_lines=["Herrn", "Max Müller", "Lindenstraße 5", "10115 Berlin"],
                    identifiers=["K-004711"],
                    property_refs=["WEG-0815"],
                    unit_refs=["WE 03"],
                )
            ],
        ),
        d.DocumentSplitFailed(
            letter_id="L-1",
            document_id="D-1",
            source_key="accounts/acc-1/letters/L-1/sources/D-1.pdf",
            reason_code=d.SplitFailureReason.ENCRYPTED,
            reason="Die PDF-Datei ist passwortgeschützt und kann nicht getrennt werden.",
        ),
        d.PagesAssigned(
            letter_id="L-1",
            document_id="D-1",
            assignments=[
                d.PartAssignment(
                    part_id="D-1-00000",
                    status=d.AssignmentStatus.ASSIGNED,
                    contact_id="C-4711",
                    property_id="P-WEG0815",
                    unit_id="U-03",
                    method=d.AssignmentMethod.AUTO,
                    score=0.97,
                    evidence=["Kontakt-Nr. K-004711", "Name im Anschriftenfeld"],
                    candidates=[d.Candidate(contact_id="C-4711", score=0.97, property_id="P-WEG0815", unit_id="U-03")],
                )
            ],
            warnings=[
                d.AssignmentWarning(
                    code="contact_without_document",
                    message="Kontakt hat kein Dokument erhalten",
                    contact_id="C-0042",
                    property_id="P-WEG0815",
                )
            ],
        ),
        pt.DocumentPublished(
            document_id="doc-1",
            letter_id="L-1",
            item_id="L-1:P-1",
            contact_id="C-4711",
            property_id="P-WEG0815",
            unit_id="U-03",
            title="Jahresabrechnung 2025",
            folder=["Abrechnungen", "Jahresabrechnung"],
            letter_date=date(2026, 11, 27),
            notify_by_email=True,
            published_at=AT,
        ),
        pt.DocumentRevoked(
            document_id="doc-1", letter_id="L-1", item_id="L-1:P-1", contact_id="C-4711", reason="revoked by staff"
        ),
        pt.DocumentViewed(
            document_id="doc-1", letter_id="L-1", item_id="L-1:P-1", contact_id="C-4711", first_viewed_at=AT
        ),
        pt.NotificationSent(
            notification_id="n-1",
            kind=pt.NotificationKind.IMMEDIATE,
            contact_id="C-4711",
            document_ids=["doc-1"],
            letter_id="L-1",
            sent_at=AT,
        ),
        pr.PrintJobStatusChanged(
            print_order_id="PO-1",
            letter_id="L-1",
            mailpiece_id="MP-1",
            contact_id="C-4711",
            item_ids=["L-1:P-1"],
            status=pr.MailpieceStatus.SENT,
            provider="http",
            provider_ref="pingen-like-123",
            tracking_number="RR123456789DE",
            sheets=2,
            letter_class=pr.LetterClass.STANDARD,
            cost_cents=125,
        ),
    ]


def example_messages() -> dict[tuple[str, int], dict[str, Any]]:
    messages: dict[tuple[str, int], dict[str, Any]] = {}
    for n, payload in enumerate(example_payloads()):
        envelope = make_envelope(
            payload,
            account_id="acc-1",
            producer="examples",
            event_id=uuid.UUID(int=n + 1),
            correlation_id=uuid.UUID(int=1000),
            occurred_at=AT,
        )
        messages[(envelope.event_type, envelope.schema_version)] = envelope.to_json_dict()
    return messages
