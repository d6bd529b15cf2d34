"""GDPR building blocks: erasure inside a master-data batch (in order, recorded once), and the export."""

from __future__ import annotations

from datetime import date

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested, ContactUpserted, ContractUpserted
from smartpost_shared.db import create_platform_tables, make_engine
from smartpost_shared.masterdata import MasterDataReader, apply_masterdata_batch, create_masterdata_tables
from smartpost_shared.messaging import SqlIdempotency
from smartpost_shared.privacy import (
    contact_masterdata_export,
    create_privacy_tables,
    erase_contact_masterdata,
    erasure_aware_batch,
    erasures_of,
)


def ev(payload, account: str = "acc-a"):
    return make_envelope(payload, account_id=account, producer="test")


def test_an_erasure_in_a_batch_applies_after_earlier_upserts_before_later_ones_and_is_recorded_once(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/md.sqlite3")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    create_privacy_tables(engine)
    erased: list[str] = []

    def erase(conn, envelope):
        erased.append(envelope.payload.contact_id)
        return erase_contact_masterdata(conn, envelope.account_id, envelope.payload.contact_id)

    apply = erasure_aware_batch(apply_masterdata_batch, erase, "test-service")
    idempotency = SqlIdempotency(engine, "test")
    contract = ContractUpserted(
        contract_id="V-1", contact_id="C-1", unit_id="U-1", property_id="P-1", role="owner", start=date(2020, 1, 1)
    )
    batch = [
        ev(ContactUpserted(contact_id="C-1", last_name="Müller", email="m@example.org")),
        ev(ContactUpserted(contact_id="C-2", last_name="Schmidt")),
        ev(ContactUpserted(contact_id="C-1", last_name="Müller", email="m@example.org"), account="acc-b"),
        ev(contract),
        ev(ContactErasureRequested(erasure_id="e1", contact_id="C-1", requested_by="admin@hv.de", reason="Antrag")),
        ev(ContactUpserted(contact_id="C-3", last_name="Weiß")),
    ]
    idempotency.run_batch({}, batch, apply)
    idempotency.run_batch({}, batch, apply)  # redelivered: nothing twice
    assert erased == ["C-1"]
    with engine.connect() as conn:
        reader = MasterDataReader(conn)
        assert reader.contact("acc-a", "C-1") is None
        assert reader.contracts_of_contact("acc-a", "C-1") == []
        assert reader.contact("acc-a", "C-2") is not None
        assert reader.contact("acc-a", "C-3") is not None
        assert reader.contact("acc-b", "C-1") is not None  # the same id in another account is someone else
        assert contact_masterdata_export(conn, "acc-a", "C-1") == {}
        assert contact_masterdata_export(conn, "acc-b", "C-1")["Kontakt"]["E-Mail"] == "m@example.org"
        records = erasures_of(conn, "acc-a", "C-1")
        assert erasures_of(conn, "acc-b", "C-1") == []
    assert [(r["erasure_id"], r["service"], r["requested_by"]) for r in records] == [
        ("e1", "test-service", "admin@hv.de")
    ]
    assert records[0]["counts"] == {"stammdaten_kontakt": 1, "stammdaten_vertraege": 1}
