"""Attack: a preparer (or any verified caller of the account) goes past the gateway and releases, revokes or orders.

Before: the letters service checked the caller's account and actor but trusted the gateway's role check, so a token
with only the role ``prepare`` (or none) could release a letter to the portal, revoke it or order its postal dispatch,
and four-eyes release held only as long as every caller went through the gateway.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid

from fastapi.testclient import TestClient

from smartpost_shared.contracts.documents import AssignmentStatus, PartAssignment, SplitPart
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers


def _pdf(pages: int) -> bytes:
    import pikepdf

    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _reviewed_letter(client: TestClient, app, preparer: dict[str, str]) -> str:
    """A letter as the preparer leaves it: split, assigned, Endkontrolle done, waiting for someone to release."""
    doc_type = client.post("/v1/document-types", json={"name": "Briefe"}, headers=preparer).json()["created_id"]
    body = {"title": "T", "document_type_id": doc_type, "recipient_groups": ["owners"], "property_id": "p-1"}
    lid = client.post("/v1/letters", json=body, headers=preparer).json()["letter_id"]
    files = {"file": ("brief.pdf", _pdf(2), "application/pdf")}
    assert client.post(f"/v1/letters/{lid}/documents", files=files, headers=preparer).status_code == 201
    split = client.post(f"/v1/letters/{lid}/split", headers=preparer)
    assert split.status_code == 200, split.text
    doc_id = split.json()["documents"][0]["document_id"]
    prefix = f"accounts/acc-1/letters/{lid}"
    part = SplitPart(
        part_id=f"{doc_id}-p0",
        index=0,
        first_page=1,
        last_page=2,
        page_count=2,
        storage_key=f"{prefix}/parts/{doc_id}/00000.pdf",
        thumbnail_key=f"{prefix}/thumbnails/{doc_id}/00000.png",
        sha256=hashlib.sha256(b"part").hexdigest(),
        size_bytes=1000,
        address_lines=["Kontakt 0", "Hauptstr. 1", "10115 Berlin"],
    )
    service = app.state.service
    service.record_split(
        "acc-1",
        uuid.UUID(lid),
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        source_page_count=2,
        parts=[part],
        warnings=[],
        actor="service:splitter",
    )
    service.record_assignments(
        "acc-1",
        uuid.UUID(lid),
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        assignments=[
            PartAssignment(
                part_id=part.part_id,
                status=AssignmentStatus.ASSIGNED,
                contact_id="c0",
                property_id="p-1",
                unit_id="u0",
            )
        ],
        warnings=[],
        is_correction=False,
        actor="service:assignment",
    )
    confirmed = client.post(f"/v1/letters/{lid}/review/confirm", headers=preparer)
    assert confirmed.json()["status"] == "reviewed", confirmed.text
    return lid


def test_a_preparer_going_past_the_gateway_can_neither_release_nor_revoke_nor_order_print() -> None:
    from smartpost_letters.app import create_app
    from smartpost_letters.settings import Settings

    app = create_app(
        Settings(data_dir=tempfile.mkdtemp(prefix="red-letter-roles-"), log_json=False), store=MemoryStore()
    )
    client = TestClient(app)
    preparer = caller_headers("acc-1", "paula@hv.de", audience="letters", roles=["prepare"])
    try:
        lid = _reviewed_letter(client, app, preparer)
        # The attacker adds every role header a careless service might read; only the signed claims count.
        spoofed = preparer | {"X-SmartPost-Roles": "release,admin", "X-SmartPost-Actor": "chef@hv.de"}
        no_roles = caller_headers("acc-1", "paula@hv.de", audience="letters")
        attempts = [
            ("POST", f"/v1/letters/{lid}/release", {"notify_by_email": True}),
            ("POST", f"/v1/letters/{lid}/print-order", {}),
            ("POST", f"/v1/letters/{lid}/revocations", {"unit_id": "u0", "reason": "x"}),
        ]
        for who in (preparer, spoofed, no_roles):
            for method, path, body in attempts:
                answer = client.request(method, path, json=body, headers=who)
                assert answer.status_code == 403, (path, answer.status_code, answer.text)
                assert "Berechtigung" in answer.json()["detail"]
        # A caller without any staff role does not even read the letter.
        assert client.get(f"/v1/letters/{lid}", headers=no_roles).status_code == 403
        actions = [e["action"] for e in client.get(f"/v1/letters/{lid}/audit", headers=preparer).json()["entries"]]
        assert actions[-1] == "review_confirmed", actions
        assert not {"released", "print_order_placed", "items_revoked"} & set(actions)
        # The one who may release still can (the check refuses roles, not the letter).
        releaser = caller_headers("acc-1", "rolf@hv.de", audience="letters", roles=["release"])
        released = client.post(f"/v1/letters/{lid}/release", json={"notify_by_email": False}, headers=releaser)
        assert released.status_code == 200, released.text
    finally:
        app.state.event_app.close()
