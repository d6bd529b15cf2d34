"""Paper filters and the portal's verdict: a letter the portal hides from its recipient is printed for them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import create_engine

from smartpost_print_dispatch.adapters.db import metadata
from smartpost_print_dispatch.application import PrintDispatch
from smartpost_print_dispatch.settings import Settings
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import PrintOptions, RecipientFilter, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.portal import DocumentPublished
from smartpost_shared.db import create_platform_tables
from smartpost_shared.masterdata import apply_masterdata, create_masterdata_tables
from smartpost_shared.storage import MemoryStore

ACCOUNT = "acc-visibility"


def _item(n: int, contact: str) -> ReleasedItem:
    return ReleasedItem(
        item_id=f"i{n}",
        document_id="d1",
        part_id=f"p{n}",
        contact_id=contact,
        property_id="prop-1",
        unit_id=f"unit-{n}",
        storage_key=f"accounts/{ACCOUNT}/letters/l1/parts/d1/{n:05d}.pdf",
        page_count=2,
    )


def _published(item: ReleasedItem, *, visible: bool) -> DocumentPublished:
    return DocumentPublished(
        document_id=f"doc-{item.item_id}",
        letter_id="l1",
        item_id=item.item_id,
        contact_id=item.contact_id,
        property_id=item.property_id,
        unit_id=item.unit_id,
        title="Hausgeldabrechnung 2024",
        folder=["Abrechnungen"],
        letter_date=date(2025, 3, 1),
        notify_by_email=True,
        published_at=datetime(2025, 3, 1, tzinfo=UTC),
        visible_on_publication=visible,
    )


def test_registered_former_owner_gets_paper_only_when_the_portal_hides_the_letter(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'pd.sqlite3'}")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    metadata.create_all(engine)
    dispatch = PrintDispatch(engine, MemoryStore(), {}, Settings(database_url=f"sqlite:///{tmp_path / 'pd.sqlite3'}"))
    with engine.begin() as conn:
        for contact in ("c-former", "c-current"):
            upsert = ContactUpserted(
                contact_id=contact,
                last_name=contact,
                street="Weg 1",
                postal_code="10115",
                city="Berlin",
                portal_registered=True,
                channel_preference="online",
            )
            apply_masterdata(conn, make_envelope(upsert, account_id=ACCOUNT, producer="erp"))
    former, current = _item(1, "c-former"), _item(2, "c-current")
    options = PrintOptions(recipient_filter=RecipientFilter.NOT_REGISTERED)
    # Before the portal said anything both are registered, so neither gets paper.
    assert dispatch.estimate(ACCOUNT, [former, current], options)["mailpieces"] == []
    # The portal hides the former owner's letter (contract over, the period does not cover it): paper for them.
    with engine.begin() as conn:
        for payload in (_published(former, visible=False), _published(current, visible=True)):
            dispatch.on_document_published(make_envelope(payload, account_id=ACCOUNT, producer="portal"), conn)
    estimate = dispatch.estimate(ACCOUNT, [former, current], options)
    assert [m["contact_id"] for m in estimate["mailpieces"]] == ["c-former"]
    # Re-published readable (e.g. a release with a billing period the contract overlaps): online again.
    with engine.begin() as conn:
        dispatch.on_document_published(
            make_envelope(_published(former, visible=True), account_id=ACCOUNT, producer="portal"), conn
        )
    assert dispatch.estimate(ACCOUNT, [former, current], options)["mailpieces"] == []
