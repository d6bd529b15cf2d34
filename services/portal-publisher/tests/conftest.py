"""Scenario builders for the portal publisher's tests (exposed as fixtures; importlib mode has no test imports)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from smartpost_shared.contracts.common import ContractRole, DocumentType
from smartpost_shared.contracts.envelope import Envelope, make_envelope
from smartpost_shared.contracts.letters import LetterItemsRevoked, LetterReleased, ReleasedItem
from smartpost_shared.contracts.masterdata import (
    ContactUpserted,
    ContractUpserted,
    PropertyUpserted,
    UnitUpserted,
)
from smartpost_shared.storage import part_key


@dataclass
class Scenario:
    """One account with two properties (cross-property letter), a unit each, two tenants and a third contact."""

    account_id: str
    letter_id: str = field(default_factory=lambda: f"letter-{uuid.uuid4().hex[:8]}")
    document_id: str = "doc-1"
    today: date = field(default_factory=date.today)

    @property
    def contacts(self) -> dict[str, tuple[str, str]]:
        # contact -> (property, unit)
        return {"c-anna": ("p-lind", "u-lind-1"), "c-bert": ("p-eich", "u-eich-7"), "c-carl": ("p-lind", "u-lind-2")}

    def masterdata(self, *, bert_contract_end: date | None = None) -> list[Envelope]:
        a = self.account_id
        payloads = [
            PropertyUpserted(property_id="p-lind", reference="WEG-01", name="Lindenstraße 1"),
            PropertyUpserted(property_id="p-eich", reference="WEG-02", name="Eichenweg 7"),
            UnitUpserted(unit_id="u-lind-1", property_id="p-lind", number="1.OG links"),
            UnitUpserted(unit_id="u-lind-2", property_id="p-lind", number="2.OG rechts"),
            UnitUpserted(unit_id="u-eich-7", property_id="p-eich", number="EG"),
            ContactUpserted(
                contact_id="c-anna",
                first_name="Anna",
                last_name="Arendt",
                email="anna@example.org",
                portal_registered=True,
            ),
            ContactUpserted(contact_id="c-bert", first_name="Bert", last_name="Brandt", email="bert@example.org"),
            ContactUpserted(contact_id="c-carl", first_name="Carl", last_name="Claus"),
            ContractUpserted(
                contract_id="k-anna",
                contact_id="c-anna",
                unit_id="u-lind-1",
                property_id="p-lind",
                role=ContractRole.TENANT,
                start=self.today - timedelta(days=400),
            ),
            ContractUpserted(
                contract_id="k-bert",
                contact_id="c-bert",
                unit_id="u-eich-7",
                property_id="p-eich",
                role=ContractRole.OWNER,
                start=self.today - timedelta(days=900),
                end=bert_contract_end,
            ),
            ContractUpserted(
                contract_id="k-carl",
                contact_id="c-carl",
                unit_id="u-lind-2",
                property_id="p-lind",
                role=ContractRole.TENANT,
                start=self.today - timedelta(days=30),
            ),
        ]
        return [make_envelope(p, account_id=a, producer="erp-integration") for p in payloads]

    def contract_update(self, contact_id: str, *, end: date | None) -> Envelope:
        prop, unit = self.contacts[contact_id]
        start = self.today - timedelta(days=900)
        payload = ContractUpserted(
            contract_id=f"k-{contact_id.removeprefix('c-')}",
            contact_id=contact_id,
            unit_id=unit,
            property_id=prop,
            role=ContractRole.TENANT,
            start=start,
            end=end,
        )
        return make_envelope(payload, account_id=self.account_id, producer="erp-integration")

    def key(self, index: int) -> str:
        return part_key(self.account_id, self.letter_id, self.document_id, index)

    def item(self, index: int, contact_id: str) -> ReleasedItem:
        prop, unit = self.contacts[contact_id]
        return ReleasedItem(
            item_id=f"{self.letter_id}-item-{index}",
            document_id=self.document_id,
            part_id=f"part-{index}",
            contact_id=contact_id,
            property_id=prop,
            unit_id=unit,
            storage_key=self.key(index),
            page_count=2,
        )

    def release(
        self, items: list[ReleasedItem], *, notify: bool = True, period: tuple[date, date] | None = None
    ) -> Envelope:
        payload = LetterReleased(
            letter_id=self.letter_id,
            title="Heizkostenabrechnung 2025",
            document_type=DocumentType(id="dt-hk", path=["Abrechnungen", "Heizkosten"]),
            letter_date=self.today,
            notify_by_email=notify,
            released_by="staff@hv.example",
            items=items,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
        )
        return make_envelope(payload, account_id=self.account_id, producer="letters")

    def revoke(self, item_ids: list[str], *, letter_deleted: bool = False) -> Envelope:
        payload = LetterItemsRevoked(
            letter_id=self.letter_id,
            item_ids=item_ids,
            reason="falscher Empfänger",
            actor="staff@hv.example",
            letter_deleted=letter_deleted,
        )
        return make_envelope(payload, account_id=self.account_id, producer="letters")


@functools.cache
def pdf_bytes(label: str) -> bytes:
    """A small, valid two-page PDF whose bytes identify ``label`` (cached: the same label gives the same bytes)."""
    import io

    import pikepdf

    pdf = pikepdf.new()
    for _ in range(2):
        pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = label
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture
def scenario() -> Scenario:
    return Scenario(account_id=f"acct-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_pdf():
    return pdf_bytes
