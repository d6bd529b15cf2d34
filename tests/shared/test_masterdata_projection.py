"""The shared master-data read model, on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.common import PostalAddress
from smartpost_shared.contracts.masterdata import (
    ContactArchived,
    ContactUpserted,
    ContractUpserted,
    PropertyUpserted,
    UnitUpserted,
)
from smartpost_shared.db import make_engine
from smartpost_shared.masterdata import MasterDataReader, apply_masterdata, create_masterdata_tables


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.real)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_projection_applies_upserts_and_keeps_accounts_apart(database_url: str) -> None:
    engine = make_engine(database_url)
    create_masterdata_tables(engine)

    def ev(payload, account="acc-a"):
        return make_envelope(payload, account_id=account, producer="test")

    with engine.begin() as conn:
        apply_masterdata(conn, ev(PropertyUpserted(property_id="p1", reference="WEG-1", name="WEG Eins")))
        apply_masterdata(conn, ev(UnitUpserted(unit_id="u1", property_id="p1", number="WE 01", position="EG")))
        apply_masterdata(
            conn,
            ev(
                ContactUpserted(
                    contact_id="c1",
                    salutation="Frau",
                    first_name="Jörg",
                    last_name="Groß",
                    address=PostalAddress(street="Weg 1", postal_code="1010", city="Wien", country="AT"),
                )
            ),
        )
        apply_masterdata(
            conn,
            ev(
                ContractUpserted(
                    contract_id="k1",
                    contact_id="c1",
                    unit_id="u1",
                    property_id="p1",
                    role="owner",
                    start=date(2020, 1, 1),
                    end=date(2025, 6, 30),
                )
            ),
        )
        # same ids in another account: separate rows
        apply_masterdata(conn, ev(ContactUpserted(contact_id="c1", last_name="Fremd"), account="acc-b"))
        # upsert again: replaces, does not duplicate
        apply_masterdata(conn, ev(UnitUpserted(unit_id="u1", property_id="p1", number="WE 01", position="EG links")))
        apply_masterdata(conn, ev(ContactArchived(contact_id="c1")))
    with engine.connect() as conn:
        reader = MasterDataReader(conn)
        contact = reader.contact("acc-a", "c1")
        assert contact is not None
        assert contact.archived
        assert contact.postal_lines() == ["Frau Jörg Groß", "Weg 1", "1010 Wien", "ÖSTERREICH"]
        other = reader.contact("acc-b", "c1")
        assert other is not None
        assert other.last_name == "Fremd"
        assert reader.unit("acc-a", "u1").position == "EG links"  # type: ignore[union-attr]
        (contract,) = reader.contracts_of_contact("acc-a", "c1")
        assert contract.valid_on(date(2025, 6, 30))
        assert not contract.valid_on(date(2025, 7, 1))
        assert reader.contracts_of_contact("acc-b", "c1") == []
        assert [c.contact_id for c in reader.search_contacts("acc-a", "gro")] == ["c1"]
        snapshot = reader.snapshot("acc-a")
        assert set(snapshot.contacts) == {"c1"}
        assert len(snapshot.contracts) == 1
    engine.dispose()


def _stream(account: str) -> list:
    """Upserts, re-sends with changes, an archive between two upserts of the same contact, two accounts."""

    def ev(payload, acc=account):
        return make_envelope(payload, account_id=acc, producer="test")

    events = [ev(PropertyUpserted(property_id="p1", reference="WEG-1", name="WEG Eins"))]
    for i in range(30):
        events.append(ev(UnitUpserted(unit_id=f"u{i}", property_id="p1", number=f"WE {i:02d}")))
        events.append(ev(ContactUpserted(contact_id=f"c{i}", last_name=f"Name{i}", email=f"c{i}@example.org")))
        events.append(
            ev(
                ContractUpserted(
                    contract_id=f"k{i}", contact_id=f"c{i}", unit_id=f"u{i}", property_id="p1", role="owner",
                    start=date(2020, 1, 1),
                )
            )
        )  # fmt: skip
    events.append(ev(ContactUpserted(contact_id="c3", last_name="Neu", email="neu@example.org")))
    events.append(ev(ContactArchived(contact_id="c4")))
    events.append(ev(ContactUpserted(contact_id="c5", last_name="Fünf")))
    events.append(ev(ContactArchived(contact_id="c5")))
    events.append(ev(ContactUpserted(contact_id="c5", last_name="Fünf wieder da")))  # upsert after archive wins
    events.append(ev(ContactUpserted(contact_id="c1", last_name="Anderes Konto"), acc=f"{account}-other"))
    events.append(ev(PropertyUpserted(property_id="p1", reference="WEG-1", name="WEG Eins (neu)")))
    return events


def _dump(conn, account: str) -> tuple:
    reader = MasterDataReader(conn)
    snap = reader.snapshot(account)
    return (
        sorted(snap.properties.items()),
        sorted(snap.units.items()),
        sorted(snap.contacts.items()),
        sorted(snap.contracts, key=lambda c: c.contract_id),
        sorted(reader.snapshot(f"{account}-other").contacts.items()),
    )


def test_batch_apply_equals_one_by_one(database_url: str) -> None:
    from smartpost_shared.masterdata import apply_masterdata_batch

    engine = make_engine(database_url)
    create_masterdata_tables(engine)
    one, batch = _stream("acc-one"), _stream("acc-batch")
    with engine.begin() as conn:
        for envelope in one:
            apply_masterdata(conn, envelope)
    with engine.begin() as conn:
        apply_masterdata_batch(conn, batch[:50])
    with engine.begin() as conn:
        apply_masterdata_batch(conn, batch[50:])
        apply_masterdata_batch(conn, batch[50:])  # a re-delivered batch changes nothing

    def normalised(dump: tuple, account: str) -> str:
        return repr(dump).replace(account, "ACC")

    with engine.connect() as conn:
        expected = _dump(conn, "acc-one")
        got = _dump(conn, "acc-batch")
        assert normalised(got, "acc-batch") == normalised(expected, "acc-one")
        contacts = dict(expected[2])
        assert contacts["c4"].archived
        assert not contacts["c5"].archived
        assert contacts["c5"].last_name == "Fünf wieder da"
        assert MasterDataReader(conn).revision("acc-batch") == 3
        assert MasterDataReader(conn).revision("acc-one") == len(one) - 1
