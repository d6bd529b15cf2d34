"""GDPR erasure in print dispatch: unsubmitted mailpieces are cancelled, submitted ones keep no address."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import insert, select

from smartpost_print_dispatch.adapters.db import mailpieces, metadata
from smartpost_print_dispatch.application import PrintDispatch
from smartpost_print_dispatch.privacy import export_contact, make_erase
from smartpost_print_dispatch.settings import Settings
from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested, ContactUpserted
from smartpost_shared.db import create_platform_tables, make_engine, outbox
from smartpost_shared.masterdata import apply_masterdata, create_masterdata_tables
from smartpost_shared.storage import MemoryStore

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _piece(mailpiece_id: str, contact: str, stage: str, status: str, print_key: str | None) -> dict[str, object]:
    return {
        "account_id": "acc-1",
        "mailpiece_id": mailpiece_id,
        "print_order_id": "po-1",
        "letter_id": "L-1",
        "contact_id": contact,
        "item_ids": json.dumps([f"item-{mailpiece_id}"]),
        "segments": "[]",
        "provider": "fake",
        "status": status,
        "stage": stage,
        "provider_ref": "lt_1" if stage == "tracking" else None,
        "address_lines": json.dumps([f"Name von {contact}", "Am Markt 2", "04109 Leipzig"]),
        "findings": json.dumps(["Anschrift geprüft"]),
        "print_key": print_key,
        "correlation_id": "00000000-0000-0000-0000-000000000001",
        "causation_id": "00000000-0000-0000-0000-000000000002",
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_erasure_cancels_unsubmitted_mailpieces_and_strips_addresses_of_submitted_ones(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/print.sqlite3")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    metadata.create_all(engine)
    from smartpost_shared.privacy import create_privacy_tables

    create_privacy_tables(engine)
    store = MemoryStore()
    for key in ("print/planned.pdf", "print/sent.pdf", "print/other.pdf"):
        store.put(key, b"%PDF")
    dispatch = PrintDispatch(engine, store, {}, Settings(data_dir=str(tmp_path)), clock=lambda: NOW)
    with engine.begin() as conn:
        apply_masterdata(
            conn, make_envelope(ContactUpserted(contact_id="C-9", last_name="Weiß"), account_id="acc-1", producer="t")
        )
        conn.execute(insert(mailpieces), [
            _piece("mp-ready", "C-9", "ready", "created", "print/planned.pdf"),
            _piece("mp-sent", "C-9", "tracking", "submitted", "print/sent.pdf"),
            _piece("mp-other", "C-1", "ready", "created", "print/other.pdf"),
        ])  # fmt: skip
    request = ContactErasureRequested(erasure_id="e1", contact_id="C-9", requested_by="admin@hv.de")
    with engine.begin() as conn:
        counts = make_erase(dispatch)(conn, make_envelope(request, account_id="acc-1", producer="assignment"))
    assert counts["sendungen"] == 2
    assert counts["sendungen_storniert"] == 1
    assert counts["druckdateien"] == 2
    assert counts["stammdaten_kontakt"] == 1
    with engine.connect() as conn:
        rows = {r.mailpiece_id: r for r in conn.execute(select(mailpieces))}
        published = [json.loads(r.body) for r in conn.execute(select(outbox))]
        exported = export_contact(conn, "acc-1", "C-9")
    assert rows["mp-ready"].status == "cancelled"
    assert rows["mp-sent"].status == "submitted"  # the provider has it: kept as proof and for billing
    assert rows["mp-sent"].provider_ref == "lt_1"
    for mp in ("mp-ready", "mp-sent"):
        assert json.loads(rows[mp].address_lines) == []
        assert json.loads(rows[mp].findings) == []
        assert rows[mp].print_key is None
    assert json.loads(rows["mp-other"].address_lines)[0] == "Name von C-1"
    assert not store.exists("print/planned.pdf")
    assert not store.exists("print/sent.pdf")
    assert store.exists("print/other.pdf")
    assert "Kontakt" not in exported
    assert [p["Anschrift"] for p in exported["Briefsendungen"]] == [[], []]
    assert "Leipzig" not in json.dumps(exported, ensure_ascii=False)
    # The letter learns of the cancellation (PrintJobStatusChanged through the outbox); nothing for the others.
    assert [(p["event_type"], p["payload"]["mailpiece_id"], p["payload"]["status"]) for p in published] == [
        ("PrintJobStatusChanged", "mp-ready", "cancelled")
    ]
