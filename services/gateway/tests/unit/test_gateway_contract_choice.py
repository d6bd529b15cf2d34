"""Cross-property review: a part is assigned to a contract, not just a contact. A contact-only suggestion asks for
the contract (property and unit); a contact with contracts in several properties offers one button per contract;
an assigned part without contract is marked; the service's release refusal reads German."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from smartpost_gateway.adapters.http import ServiceError
from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_gateway.texts import translate

PASSWORD = "geheim"
LETTER_ID = "0b6f1f1c-0000-4000-8000-000000000002"

PART_ASSIGNMENTS = [
    # Part 1: the matcher is sure of the contact but not of the unit (owner in two properties).
    {
        "status": "needs_review",
        "contact_id": None,
        "property_id": None,
        "unit_id": None,
        "candidates": [{"contact_id": "C-weiss", "property_id": None, "unit_id": None, "score": 9.0}],
    },
    # Part 2: assigned by hand to the contact only (no contract yet).
    {
        "status": "assigned",
        "method": "manual",
        "contact_id": "C-weiss",
        "property_id": None,
        "unit_id": None,
        "decided_by": "anna@hv.de",
        "evidence": ["manual reassign by anna@hv.de"],
    },
]


def make_letter() -> dict[str, Any]:
    return {
        "letter_id": LETTER_ID,
        "version": 3,
        "status": "in_review",
        "title": "Jahresabrechnung 2025",
        "review_confirmed_by": None,
        "document_type": {"id": "t", "path": ["Abrechnungen"]},
        "recipient_groups": ["owners"],
        "scope": "cross_property",
        "property_id": None,
        "letter_date": "2025-01-01",
        "documents": [
            {
                "document_id": "d1",
                "filename": "a.pdf",
                "role": "split",
                "status": "split",
                "warnings": [],
                "parts": [
                    {
                        "part_id": f"p{i}",
                        "first_page": i,
                        "last_page": i,
                        "page_count": 1,
                        "assignment": copy.deepcopy(a),
                    }
                    for i, a in enumerate(PART_ASSIGNMENTS, start=1)
                ],
            }
        ],
        "items": [],
        "print_order": None,
        "counts": {
            "documents": 1,
            "parts": 2,
            "assigned": 1,
            "undecided": 1,
            "discarded": 0,
            "warnings": 0,
            "released_items": 0,
            "revoked_items": 0,
        },
        "release_blockers": [],
    }


WEISS = {
    "contact_id": "C-weiss",
    "first_name": "Jürgen",
    "last_name": "Weiß",
    "address": {"street": "Parkallee 7", "postal_code": "20144", "city": "Hamburg"},
    "contracts": [
        {
            "role": "owner",
            "property": {"property_id": "P-LIND", "name": "WEG Lindenstraße 12"},
            "unit": {"unit_id": "U-LIND-03", "number": "WE 03", "position": "1. OG"},
        },
        {
            "role": "owner",
            "property": {"property_id": "P-PARK", "name": "WEG Parkallee 7"},
            "unit": {"unit_id": "U-PARK-02", "number": "WE 02", "position": "EG rechts"},
        },
    ],
}


def fake(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == f"/v1/letters/{LETTER_ID}":
        return httpx.Response(200, json=make_letter())
    if path == f"/v1/letters/{LETTER_ID}/parts":  # the review tab pages the parts
        document = make_letter()["documents"][0]
        parts = [
            {**part, "document_id": document["document_id"], "index": i, "warnings": []}
            for i, part in enumerate(document["parts"], start=1)
        ]
        page = {
            "letter_id": LETTER_ID, "version": 3, "status": "in_review", "filter": request.url.params.get("filter"),
            "property_id": None, "total": len(parts), "offset": 0, "limit": 50, "parts": parts,
            "filter_counts": {"all": 2, "review": 1, "needs_review": 1, "assigned": 1}, "properties": [],
            "bulk_actions": [],
        }  # fmt: skip
        return httpx.Response(200, json=page)
    if path == "/contacts/C-weiss":
        return httpx.Response(200, json=WEISS)
    if path == "/properties":
        return httpx.Response(200, json={"properties": []})
    return httpx.Response(404, json={"detail": "not found", "code": "not_found"})


def client() -> TestClient:
    settings = Settings(
        staff_users={
            "anna@hv.de": {
                "password_hash": hash_password(PASSWORD),
                "account_id": "acc-1",
                "roles": ["prepare"],
                "name": "Anna Muster",
            }
        },
        session_secret="s" * 32,
        log_json=False,
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(fake)))


def test_contact_only_suggestion_asks_for_the_contract() -> None:
    with client() as c:
        assert c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}).status_code == 200
        review = c.get(f"/serienbriefe/{LETTER_ID}/pruefung").text
        part1 = review[review.index('data-part-id="p1"') : review.index('data-part-id="p2"')]
        part2 = review[review.index('data-part-id="p2"') :]
        # The suggestion without unit does not assign: it asks which contract.
        assert 'data-testid="choose-contract"' in part1
        assert "Vertrag wählen" in part1
        assert 'name="contact_id" value="C-weiss"' not in part1
        # The part assigned to the contact alone is marked as missing its contract.
        assert 'data-testid="contract-missing"' in part2
        assert 'data-testid="contract-missing"' not in part1
        # Manual decisions read German and name the staff member.
        assert "Erkannt über: von Hand zugeordnet von Anna Muster" in part2
        assert "manuell von Anna Muster" in part2
        assert "manual reassign" not in review

        choice = c.get(f"/serienbriefe/{LETTER_ID}/teile/p1/vertraege", params={"contact_id": "C-weiss"}).text
    buttons = re.findall(r'data-testid="assign-contact">([^<]+)<', choice)
    assert buttons == [
        "Zuordnen: WEG Lindenstraße 12 · WE 03 (1. OG) – Eigentümer",
        "Zuordnen: WEG Parkallee 7 · WE 02 (EG rechts) – Eigentümer",
    ]
    assert 'name="unit_id" value="U-PARK-02"' in choice
    assert "Welcher Vertrag?" in choice
    assert "ohne Einheit" not in choice


def test_cross_property_contact_without_contract_cannot_be_assigned() -> None:
    original = copy.deepcopy(WEISS)
    WEISS["contracts"] = []
    try:
        with client() as c:
            assert c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}).status_code == 200
            choice = c.get(f"/serienbriefe/{LETTER_ID}/teile/p1/vertraege", params={"contact_id": "C-weiss"}).text
    finally:
        WEISS.update(original)
    assert 'data-testid="assign-contact"' not in choice
    assert 'data-testid="no-contract"' in choice


def test_release_refusal_for_a_part_without_contract_reads_german() -> None:
    ui = translate(
        ServiceError(
            "letters",
            422,
            "cannot release: 1 part(s) have no contract (property and unit) in a cross-property letter: d1-p2",
            "release_blocked",
        )
    )
    assert "Vertrag des Empfängers (Liegenschaft und Einheit)" in ui.message
