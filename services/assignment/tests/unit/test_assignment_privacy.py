"""GDPR in the assignment service: who may request an erasure, what it queues, what the erasure scrubs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from smartpost_assignment.adapters.db import create_tables, documents, part_assignments
from smartpost_assignment.app import create_app
from smartpost_assignment.privacy import erase_contact, export_contact
from smartpost_assignment.settings import Settings
from smartpost_shared.contracts import make_envelope, parse_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested, ContactUpserted
from smartpost_shared.db import create_platform_tables, outbox
from smartpost_shared.masterdata import MasterDataReader, apply_masterdata, create_masterdata_tables
from smartpost_shared.privacy import create_privacy_tables
from smartpost_shared.testing.identity import caller_headers

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _app(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3", log_json=False))
    engine = app.state.engine
    for create in (create_platform_tables, create_masterdata_tables, create_tables, create_privacy_tables):
        create(engine)
    with engine.begin() as conn:
        for contact, name in (("C-1", "Müller"), ("C-2", "Schmidt")):
            payload = ContactUpserted(contact_id=contact, last_name=name, email=f"{contact.lower()}@example.org")
            apply_masterdata(conn, make_envelope(payload, account_id="acc-1", producer="t"))
    return app, engine


def _assignment(part: str, contact: str, candidates: list[tuple[str, str]]) -> dict[str, object]:
    return {
        "part_id": part,
        "status": "assigned",
        "contact_id": contact,
        "evidence": [f"Name {contact} auf Seite 1"],
        "candidates": [{"contact_id": c, "score": 5.0, "evidence": [e]} for c, e in candidates],
    }


def test_only_an_admin_of_the_contacts_account_queues_an_erasure(tmp_path) -> None:
    app, engine = _app(tmp_path)
    client = TestClient(app)  # no lifespan: nothing is published, the outbox shows what would be
    url = "/internal/contacts/C-1/erasure"
    assert client.post(url, json={}).status_code == 401
    assert client.post(url, json={}, headers=caller_headers("acc-1", "anna", audience="assignment")).status_code == 403
    foreign = caller_headers("acc-2", "olga", audience="assignment", roles=("admin",))
    assert client.post(url, json={}, headers=foreign).status_code == 404
    admin = caller_headers("acc-1", "clara", audience="assignment", roles=("admin",))
    r = client.post(url, json={"reason": "Antrag vom 30.11."}, headers=admin)
    assert r.status_code == 202, r.text
    with engine.connect() as conn:
        queued = [parse_envelope(row.body) for row in conn.execute(select(outbox))]
    assert len(queued) == 1
    envelope = queued[0]
    assert envelope.account_id == "acc-1"
    assert envelope.payload == ContactErasureRequested(
        erasure_id=r.json()["erasure_id"], contact_id="C-1", requested_by="clara", reason="Antrag vom 30.11."
    )


def test_erasure_scrubs_master_data_and_the_evidence_about_the_contact_only(tmp_path) -> None:
    _, engine = _app(tmp_path)
    with engine.begin() as conn:
        rows = [
            ("p1", "C-1", [("C-1", "Kundennr. K-1"), ("C-2", "Name Schmidt")]),
            ("p2", "C-2", [("C-2", "Name Schmidt"), ("C-1", "Straße von Müller")]),
        ]
        for index, (part, contact, candidates) in enumerate(rows):
            conn.execute(
                insert(part_assignments).values(
                    account_id="acc-1", letter_id="L-1", document_id="D-1", part_id=part, part_index=index,
                    status="assigned", contact_id=contact, score=5.0,
                    assignment=json.dumps(_assignment(part, contact, candidates)),
                )
            )  # fmt: skip
        parts = [
            {
                "part_id": "p1",
                "address_lines": ["Herrn Müller", "Am Markt 2"],
                "identifiers": ["K-1"],
                "context_lines": ["Sehr geehrter Herr Müller,"],
            },
            {"part_id": "p2", "address_lines": ["Frau Schmidt"], "identifiers": ["K-2"]},
        ]
        conn.execute(
            insert(documents).values(
                account_id="acc-1",
                letter_id="L-1",
                document_id="D-1",
                parts=json.dumps(parts),
                updated_at=NOW,
                warnings=json.dumps(
                    [
                        {"code": "missing", "message": "Herr Müller hat keinen Brief erhalten", "contact_id": "C-1"},
                        {"code": "missing", "message": "Frau Schmidt hat keinen Brief erhalten", "contact_id": "C-2"},
                    ]
                ),
            )
        )
        assert export_contact(conn, "acc-1", "C-1")["Zuordnungen"][0]["Belege"] == ["Name C-1 auf Seite 1"]
        request = ContactErasureRequested(erasure_id="e1", contact_id="C-1", requested_by="clara")
        counts = erase_contact(conn, make_envelope(request, account_id="acc-1", producer="assignment"))
    assert counts == {
        "stammdaten_kontakt": 1,
        "stammdaten_vertraege": 0,
        "zuordnungen_bereinigt": 2,
        "seitenauszuege_bereinigt": 1,
        "warnungen": 1,
    }
    with engine.connect() as conn:
        assert MasterDataReader(conn).contact("acc-1", "C-1") is None
        assert MasterDataReader(conn).contact("acc-1", "C-2") is not None
        stored = {r.part_id: json.loads(r.assignment) for r in conn.execute(select(part_assignments))}
        split = {p["part_id"]: p for p in json.loads(conn.execute(select(documents.c.parts)).scalar_one())}
        warnings = json.loads(conn.execute(select(documents.c.warnings)).scalar_one())
        exported = export_contact(conn, "acc-1", "C-1")
    assert stored["p1"]["evidence"] == ["[gelöscht]"]
    assert [c["evidence"] for c in stored["p1"]["candidates"]] == [["[gelöscht]"], ["Name Schmidt"]]
    assert stored["p2"]["evidence"] == ["Name C-2 auf Seite 1"]
    assert [c["evidence"] for c in stored["p2"]["candidates"]] == [["Name Schmidt"], ["[gelöscht]"]]
    assert split["p1"]["address_lines"] == ["[gelöscht]"]
    assert split["p1"]["context_lines"] == ["[gelöscht]"]
    assert split["p1"]["identifiers"] == []
    assert split["p2"]["address_lines"] == ["Frau Schmidt"]
    assert [w["message"] for w in warnings] == ["[gelöscht]", "Frau Schmidt hat keinen Brief erhalten"]
    assert "Kontakt" not in exported
    assert [z["Belege"] for z in exported["Zuordnungen"]] == [["[gelöscht]"]]
