"""Crypto-shredding: personal data in letter events is sealed per part; deleting a contact's keys erases it.

Real SQLite event store and letters database, in-memory object store (no Kafka: the erasure handler is called
with the envelope the consumer would pass).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from letters_testkit import SPLITTER, make_parts

from smartpost_letters.app import create_app
from smartpost_letters.application import LettersApplication, LetterService, event_store_env
from smartpost_letters.domain.erasure import ERASED
from smartpost_letters.settings import Settings
from smartpost_shared.contracts.documents import AssignmentStatus, AssignmentWarning, Candidate, PartAssignment
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers

ACCOUNT = "acc-1"


def headers(account: str = ACCOUNT) -> dict[str, str]:
    # "admin": the personal-data export needs it (the gateway's privacy routes sign for admins only).
    return caller_headers(account, "staff:anna", audience="letters", roles=["prepare", "release", "admin"])


def _letter_in_review(client: TestClient, app, store: MemoryStore, count: int = 3) -> tuple[str, list]:
    r = client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=headers())
    dt = r.json()["created_id"]
    body = {
        "title": "Heizkosten 2025",
        "document_type_id": dt,
        "recipient_groups": ["owners"],
        "scope": "property",
        "property_id": "prop-1",
    }
    letter_id = client.post("/v1/letters", json=body, headers=headers()).json()["letter_id"]
    from letters_testkit import tiny_pdf

    r = client.post(
        f"/v1/letters/{letter_id}/documents",
        files={"file": ("brief.pdf", tiny_pdf(2), "application/pdf")},
        data={"role": "split"},
        headers=headers(),
    )
    assert r.status_code in (200, 201), r.text
    r = client.post(f"/v1/letters/{letter_id}/split", headers=headers())
    doc_id = r.json()["documents"][0]["document_id"]
    parts = make_parts(ACCOUNT, letter_id, doc_id, count)
    for p in parts:
        store.put(p.storage_key, b"%PDF part")
        assert p.thumbnail_key is not None
        store.put(p.thumbnail_key, b"png")
    service: LetterService = app.state.service
    lid = uuid.UUID(letter_id)
    service.record_split(
        ACCOUNT,
        lid,
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        source_page_count=count * 2,
        parts=parts,
        warnings=[],
        actor=SPLITTER.name,
    )
    service.record_assignments(
        ACCOUNT,
        lid,
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        assignments=[
            PartAssignment(
                part_id=p.part_id,
                status=AssignmentStatus.ASSIGNED,
                contact_id=f"c{i}",
                property_id="prop-1",
                unit_id=f"u{i}",
                evidence=[f"Name Kontakt {i} auf Seite 1"],
                candidates=[Candidate(contact_id=f"c{i}", score=9.0, evidence=[f"Kundennummer K-{i}"])],
            )
            for i, p in enumerate(parts)
        ],
        warnings=[
            AssignmentWarning(code="missing", message="Frau Geheim-1 hat keinen Brief erhalten", contact_id="c1"),
            AssignmentWarning(code="review", message="Prüfen: Name Geheim-Teil-1", part_id=parts[1].part_id),
            AssignmentWarning(code="missing", message="Herr Geheim-2 hat keinen Brief erhalten", contact_id="c2"),
        ],
        is_correction=False,
        actor="service:assignment",
    )
    return letter_id, parts


def letter_source(client: TestClient, letter_id: str) -> str:
    key: str = client.get(f"/v1/letters/{letter_id}", headers=headers()).json()["documents"][0]["source_key"]
    return key


def _raw_event_states(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        blobs = [row[0] for t in tables for row in db.execute(f"SELECT * FROM {t}") for row in [row[-1:]]]
    return b"".join(b if isinstance(b, bytes) else str(b).encode() for b in blobs)


def _erasure(contact: str, account: str = ACCOUNT):
    payload = ContactErasureRequested(erasure_id=uuid.uuid4().hex, contact_id=contact, requested_by="admin@hv.de")
    return make_envelope(payload, account_id=account, producer="assignment")


@pytest.fixture
def env(tmp_path: Path):
    store = MemoryStore()
    settings = Settings(data_dir=str(tmp_path), log_json=False, snapshot_interval=4)
    app = create_app(settings, store=store)
    client = TestClient(app)
    yield client, app, store, settings
    app.state.event_app.close()


def _fresh(settings: Settings, app) -> LetterService:
    """Another process: no cached letters, no cached keys (only the databases)."""
    from smartpost_letters.adapters.subject_keys import SubjectKeyStore

    keys = SubjectKeyStore(app.state.event_app.subject_keys.engine)
    fresh_app = LettersApplication(
        event_store_env(settings.resolved_event_store_url()), snapshot_interval=4, subject_keys=keys
    )
    return LetterService(fresh_app)


def test_personal_data_is_stored_sealed_and_read_back_in_clear(env) -> None:
    client, app, store, settings = env
    letter_id, _ = _letter_in_review(client, app, store)
    raw = _raw_event_states(Path(settings.data_dir) / "letters-events.sqlite3")
    assert b"_sealed" in raw
    for secret in (b"Hauptstr. 1", b"Kontakt 0", b"Kundennummer K-1", b"Name Kontakt 2", b"Geheim"):
        assert secret not in raw, secret
    letter = _fresh(settings, app).get_letter(ACCOUNT, uuid.UUID(letter_id))
    parts = letter.parts()
    assert parts[0].address_lines == ["Kontakt 0", "Hauptstr. 1", "10115 Berlin"]
    assert parts[1].assignment is not None
    assert parts[1].assignment.evidence == ["Name Kontakt 1 auf Seite 1"]
    assert parts[1].assignment.candidates[0].evidence == ["Kundennummer K-1"]


def test_erasing_a_contact_shreds_their_parts_only_and_the_letter_still_loads(env) -> None:
    client, app, store, settings = env
    letter_id, parts = _letter_in_review(client, app, store)
    export_before = client.get("/internal/contacts/c1/personal-data", headers=headers()).json()
    assert export_before["Daten"]["Serienbriefe"][0]["Einzelbriefe"][0]["Anschrift auf dem Brief"][0] == "Kontakt 1"

    privacy = app.state.privacy
    counts = privacy.erase(_erasure("c1"))
    assert counts == {
        "serienbriefe": 1,
        "einzelbriefe": 1,
        "schluessel_geloescht": 2,
        "speicherobjekte": 2,
        "quelldateien_und_vorschaupakete": 1,  # the uploaded source (these parts have one thumbnail each)
    }
    assert not store.exists(parts[1].storage_key)
    assert not store.exists(letter_source(client, letter_id))
    assert store.exists(parts[0].thumbnail_key)
    assert store.exists(parts[0].storage_key)
    assert store.exists(parts[2].storage_key)

    for service in (app.state.service, _fresh(settings, app)):  # cached copy and a rebuild from the store
        letter = service.get_letter(ACCOUNT, uuid.UUID(letter_id))
        erased, kept = letter.part(parts[1].part_id), letter.part(parts[2].part_id)
        assert erased.address_lines == [ERASED]
        assert erased.assignment is not None
        assert erased.assignment.evidence == [ERASED]
        assert erased.assignment.candidates[0].evidence == [ERASED]
        assert erased.assignment.contact_id == "c1"  # the id stays: who got which letter
        assert kept.address_lines == ["Kontakt 2", "Hauptstr. 1", "10115 Berlin"]
        assert kept.assignment is not None
        assert kept.assignment.evidence == ["Name Kontakt 2 auf Seite 1"]
        assert letter.status.value == "in_review"
        messages = sorted(w.message for d in letter.documents for w in d.assignment_warnings)
        assert messages == ["Herr Geheim-2 hat keinen Brief erhalten", ERASED, ERASED]

    audit = client.get(f"/v1/letters/{letter_id}/audit", headers=headers())
    assert audit.status_code == 200, audit.text
    assert "personal_data_erased" in audit.text
    assert "Kontakt 1" not in audit.text
    after = client.get("/internal/contacts/c1/personal-data", headers=headers()).json()
    assert after["Daten"] == {}
    assert after["Löschungen"] == []  # the audit record is written by the consumer's handler (not called here)
    other = client.get("/internal/contacts/c2/personal-data", headers=headers()).json()
    assert other["Daten"]["Serienbriefe"][0]["Einzelbriefe"][0]["Anschrift auf dem Brief"][0] == "Kontakt 2"
    # The caller's account decides: another account sees nothing of acc-1's contact.
    foreign = client.get("/internal/contacts/c2/personal-data", headers=headers("acc-2")).json()
    assert foreign["Daten"] == {}


def test_a_snapshot_taken_before_the_erasure_decodes_with_placeholders(env) -> None:
    client, app, store, settings = env
    letter_id, parts = _letter_in_review(client, app, store)
    event_app = app.state.event_app
    event_app.take_snapshot(uuid.UUID(letter_id))
    raw = _raw_event_states(Path(settings.data_dir) / "letters-events.sqlite3")
    assert b"Hauptstr. 1" not in raw
    shredded = event_app.subject_keys.shred(ACCOUNT, "c0")
    assert shredded == 1
    letter = _fresh(settings, app).get_letter(ACCOUNT, uuid.UUID(letter_id))
    assert letter.part(parts[0].part_id).address_lines == [ERASED]
    assert letter.part(parts[1].part_id).address_lines[0] == "Kontakt 1"


def test_erasure_of_an_unknown_contact_or_another_account_changes_nothing(env) -> None:
    client, app, store, settings = env
    letter_id, parts = _letter_in_review(client, app, store)
    assert app.state.privacy.erase(_erasure("c1", account="acc-2"))["schluessel_geloescht"] == 0
    assert app.state.privacy.erase(_erasure("nobody"))["einzelbriefe"] == 0
    letter = _fresh(settings, app).get_letter(ACCOUNT, uuid.UUID(letter_id))
    assert [p.address_lines[0] for p in letter.parts()] == ["Kontakt 0", "Kontakt 1", "Kontakt 2"]
    assert all(store.exists(p.storage_key) for p in parts)
