"""Staff contact search finds by name, number, street and property (SQLite read model, no servers)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import create_engine

from smartpost_assignment.adapters.masterdata_queries import search_contacts
from smartpost_shared.contracts.common import ContractRole, PostalAddress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.masterdata import apply_masterdata, create_masterdata_tables


def engine_with_masterdata(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'md.sqlite3'}")
    create_masterdata_tables(engine)
    payloads = [
        PropertyUpserted(
            property_id="P-PARK",
            reference="WEG-0900",
            name="WEG Parkallee 7",
            address=PostalAddress(street="Parkallee 7", postal_code="20144", city="Hamburg"),
        ),
        UnitUpserted(unit_id="U-1", property_id="P-PARK", number="WE 01"),
        ContactUpserted(
            contact_id="C-weiss",
            reference_id="K-2002",
            first_name="Jürgen",
            last_name="Weiß",
            address=PostalAddress(street="Birkenweg 4", postal_code="22111", city="Hamburg"),
        ),
        ContactUpserted(
            contact_id="C-lang",
            reference_id="K-2003",
            first_name="Lena",
            last_name="Lang",
            address=PostalAddress(street="Parkstraße 1", postal_code="20144", city="Hamburg"),
        ),
        ContractUpserted(
            contract_id="V-1",
            contact_id="C-weiss",
            unit_id="U-1",
            property_id="P-PARK",
            role=ContractRole.OWNER,
            start=date(2019, 1, 1),
        ),
    ]
    with engine.begin() as conn:
        for payload in payloads:
            apply_masterdata(conn, make_envelope(payload, account_id="acc", producer="erp-integration"))
    return engine


def found(engine, text: str, account: str = "acc") -> list[str]:
    with engine.connect() as conn:
        return [c.contact_id for c in search_contacts(conn, account, text)]


def test_search_by_name_number_street_and_property(tmp_path):
    engine = engine_with_masterdata(tmp_path)
    assert found(engine, "Weiß") == ["C-weiss"]
    assert found(engine, "K-2003") == ["C-lang"]
    assert found(engine, "Birkenweg") == ["C-weiss"]  # the contact's own street
    assert found(engine, "Parkstraße") == ["C-lang"]
    assert found(engine, "Parkallee") == ["C-weiss"]  # owner in the property at Parkallee 7
    assert found(engine, "WEG-0900") == ["C-weiss"]  # the property's reference
    assert sorted(found(engine, "Park")) == ["C-lang", "C-weiss"]
    assert found(engine, "Parkallee", account="other") == []
