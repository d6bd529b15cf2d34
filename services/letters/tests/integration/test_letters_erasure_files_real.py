"""GDPR erasure and the shared files of a serial letter, against real SeaweedFS (S3).

The uploaded source PDF holds every recipient's pages and the thumbnail pack every part's first page: when a
contact with a part in the document is erased, both go (``SourceFilesErased``), the other recipients' part PDFs
stay, the letter still loads, a thumbnail that is gone is a 404 (the gateway shows a German placeholder) and the
document cannot be split again. The erasure is called with the envelope the consumer would pass (the Kafka path is
covered by tests/shared/test_privacy.py and the e2e erasure test).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from letters_testkit import SPLITTER, make_parts, tiny_pdf

from smartpost_letters.app import create_app
from smartpost_letters.settings import Settings
from smartpost_shared.contracts.documents import AssignmentStatus, PartAssignment
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactErasureRequested
from smartpost_shared.testing.identity import caller_headers

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.real]


def _h(account: str) -> dict[str, str]:
    return caller_headers(account, "staff:anna", audience="letters", roles=["prepare", "release", "admin"])


def _letter(client: TestClient, app, store, account: str, count: int = 3) -> tuple[str, str, str, list]:
    """A letter in review: one split document in real storage, parts with a thumbnail pack, assigned c0..c2."""
    name = f"Abrechnungen {uuid.uuid4().hex[:6]}"
    dt = client.post("/v1/document-types", json={"name": name}, headers=_h(account)).json()["created_id"]
    body = {
        "title": "Heizkosten 2025",
        "document_type_id": dt,
        "recipient_groups": ["owners"],
        "scope": "property",
        "property_id": "prop-1",
    }
    letter_id = client.post("/v1/letters", json=body, headers=_h(account)).json()["letter_id"]
    r = client.post(
        f"/v1/letters/{letter_id}/documents",
        files={"file": ("brief.pdf", tiny_pdf(count * 2), "application/pdf")},
        data={"role": "split"},
        headers=_h(account),
    )
    assert r.status_code in (200, 201), r.text
    r = client.post(f"/v1/letters/{letter_id}/split", headers=_h(account))
    document = r.json()["documents"][0]
    doc_id, source_key = document["document_id"], document["source_key"]
    assert store.exists(source_key)
    parts = make_parts(account, letter_id, doc_id, count, thumbnail_pack=True)
    for p in parts:
        store.put(p.storage_key, b"%PDF part " + p.part_id.encode())
    store.put(parts[0].thumbnail_key, b"".join(f"thumb{i:05d}".encode() for i in range(count)))  # 10 bytes each
    service = app.state.service
    lid = uuid.UUID(letter_id)
    service.record_split(
        account,
        lid,
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        source_page_count=count * 2,
        parts=parts,
        warnings=[],
        actor=SPLITTER.name,
    )
    service.record_assignments(
        account,
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
                evidence=[f"Name Kontakt {i}"],
            )
            for i, p in enumerate(parts)
        ],
        warnings=[],
        is_correction=False,
        actor="service:assignment",
    )
    return letter_id, doc_id, source_key, parts


def _erase(app, account: str, contact: str) -> dict[str, int]:
    payload = ContactErasureRequested(erasure_id=uuid.uuid4().hex, contact_id=contact, requested_by="admin@hv.de")
    counts: dict[str, int] = app.state.privacy.erase(make_envelope(payload, account_id=account, producer="assignment"))
    return counts


@pytest.fixture
def letters(tmp_path: Path, object_store):
    app = create_app(Settings(data_dir=str(tmp_path), log_json=False), store=object_store)
    yield TestClient(app), app
    app.state.event_app.close()


def test_after_release_the_source_and_thumbnail_pack_go_the_other_parts_stay(letters, object_store, make_id):
    client, app = letters
    account = make_id("acc")
    letter_id, _doc_id, source_key, parts = _letter(client, app, object_store, account)
    assert client.post(f"/v1/letters/{letter_id}/review/confirm", headers=_h(account)).status_code == 200
    r = client.post(f"/v1/letters/{letter_id}/release", json={"notify_by_email": False}, headers=_h(account))
    assert r.status_code == 200, r.text
    pack = parts[0].thumbnail_key
    assert client.get(f"/v1/letters/{letter_id}/parts/{parts[2].part_id}/thumbnail", headers=_h(account)).content == (
        b"thumb00002"
    )

    counts = _erase(app, account, "c1")
    assert counts["speicherobjekte"] == 1  # c1's own part PDF (the thumbnail is a range of the pack)
    assert counts["quelldateien_und_vorschaupakete"] == 2  # the uploaded source and the thumbnail pack
    assert not object_store.exists(source_key)
    assert not object_store.exists(pack)
    assert not object_store.exists(parts[1].storage_key)
    assert object_store.exists(parts[0].storage_key)
    assert object_store.exists(parts[2].storage_key)
    assert sorted(object_store.list(f"accounts/{account}/letters/{letter_id}/")) == sorted(
        [parts[0].storage_key, parts[2].storage_key]
    )

    body = client.get(f"/v1/letters/{letter_id}", headers=_h(account))
    assert body.status_code == 200, body.text
    assert body.json()["status"] == "released"
    assert body.json()["documents"][0]["source_erased"] is True
    thumb = client.get(f"/v1/letters/{letter_id}/parts/{parts[2].part_id}/thumbnail", headers=_h(account))
    assert thumb.status_code == 404  # the gateway turns it into its German placeholder image
    assert client.get(f"/v1/letters/{letter_id}/parts/{parts[2].part_id}/pdf", headers=_h(account)).content == (
        b"%PDF part " + parts[2].part_id.encode()
    )
    audit = client.get(f"/v1/letters/{letter_id}/audit", headers=_h(account)).text
    assert "source_files_erased" in audit

    # A redelivered erasure deletes nothing twice and records no second file event.
    again = _erase(app, account, "c1")
    assert again["quelldateien_und_vorschaupakete"] == 0
    assert client.get(f"/v1/letters/{letter_id}/audit", headers=_h(account)).text.count("source_files_erased") == 1


def test_before_release_the_source_goes_and_the_document_cannot_be_split_again(letters, object_store, make_id):
    client, app = letters
    account = make_id("acc")
    letter_id, _doc_id, source_key, parts = _letter(client, app, object_store, account)
    other_letter, _, other_source, _ = _letter(client, app, object_store, account)  # c7 is in none of it
    counts = _erase(app, account, "c0")
    assert counts["quelldateien_und_vorschaupakete"] == 4  # both letters have a part of c0: 2 sources, 2 packs
    assert not object_store.exists(source_key)
    assert not object_store.exists(other_source)
    assert _erase(app, account, "c7")["quelldateien_und_vorschaupakete"] == 0
    # review goes on with the other recipients' part PDFs
    assert object_store.exists(parts[1].storage_key)
    assert client.post(f"/v1/letters/{letter_id}/review/confirm", headers=_h(account)).status_code == 200
    assert client.post(f"/v1/letters/{letter_id}/reopen", headers=_h(account)).status_code == 200
    r = client.post(f"/v1/letters/{letter_id}/split", headers=_h(account))
    assert r.status_code in (409, 422), r.text
    assert r.json()["code"] == "source_erased", r.text
    assert client.get(f"/v1/letters/{other_letter}", headers=_h(account)).status_code == 200
