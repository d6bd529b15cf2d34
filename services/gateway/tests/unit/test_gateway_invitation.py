"""'Zum Portal einladen': the gateway forwards the staff member's request to the portal publisher with signed caller
claims and answers in German in the row (sent, already has a login, no address, mail outage, service error)."""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_shared.identity import CALLER_HEADER, CallerVerifier
from smartpost_shared.settings import IdentitySettings

PASSWORD = "geheim"
LEAKS = re.compile(r"\{\"|\bstatus\b|already|mail_not_sent|not found|\berror\b|\binvitation\b|\bcontact\b")

ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "C-new": (
        201,
        {
            "status": "sent",
            "contact_id": "C-new",
            "contact_name": "Lea Yilmaz",
            "email": "lea@example.org",
            "expires_at": "2026-12-30T18:00:00+00:00",
        },
    ),
    "C-reg": (200, {"status": "already_registered", "contact_id": "C-reg", "contact_name": "Anna Schmidt"}),
    "C-nomail": (200, {"status": "no_email", "contact_id": "C-nomail", "contact_name": "Otto Weber"}),
    "C-down": (503, {"detail": "invitation mail could not be sent", "code": "mail_not_sent"}),
    "C-gone": (404, {"detail": "unknown contact C-gone"}),
}


LETTER_ID = "0b6f1f1c-0000-4000-8000-000000000001"
PEOPLE = {"C-login": "Anna Schmidt", "C-invited": "Lea Yilmaz", "C-none": "Jonas Becker", "C-revoked": "Otto Weber"}


def item(contact_id: str, *, revoked: bool = False) -> dict[str, Any]:
    return {
        "item_id": f"i-{contact_id}",
        "part_id": f"p-{contact_id}",
        "contact_id": contact_id,
        "property_id": "P1",
        "unit_id": None,
        "page_count": 2,
        "revoked_at": "2026-11-30T10:00:00+00:00" if revoked else None,
    }


def delivery(contact_id: str, *, login: bool = False, invited: bool = False) -> dict[str, Any]:
    return {
        "item_id": f"i-{contact_id}",
        "document_id": f"d-{contact_id}",
        "contact_id": contact_id,
        "published_at": "2026-11-30T09:00:00+00:00",
        "first_viewed_at": None,
        "revoked_at": None,
        "views": [],
        "portal_login": login,
        "invited_at": "2026-11-30T11:00:00+00:00" if invited else None,
        "invitation_expires_at": "2026-12-30T11:00:00+00:00" if invited else None,
    }


LETTER: dict[str, Any] = {
    "letter_id": LETTER_ID,
    "version": 9,
    "status": "released",
    "title": "Hausgeld",
    "document_type": {"id": "t", "path": ["Abrechnung"]},
    "recipient_groups": ["owners"],
    "scope": "property",
    "property_id": "P1",
    "letter_date": "2026-11-30",
    "documents": [],
    "items": [item("C-login"), item("C-invited"), item("C-none"), item("C-revoked", revoked=True)],
    "print_order": None,
    "counts": {},
    "release_blockers": [],
}


class Portal:
    """The portal publisher's invitation answers, plus the letter and master data the Einzelbriefe tab shows."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:  # noqa: PLR0911 - one answer per route
        self.calls.append(request)
        path = request.url.path
        if path == "/internal/invitations/email":
            status, body = ANSWERS[json.loads(request.content)["contact_id"]]
            return httpx.Response(status, json=body)
        if path == f"/v1/letters/{LETTER_ID}":
            return httpx.Response(200, json=LETTER)
        if path == f"/internal/letters/{LETTER_ID}/deliveries":
            return httpx.Response(
                200,
                json=[
                    delivery("C-login", login=True),
                    delivery("C-invited", invited=True),
                    delivery("C-none"),
                    delivery("C-revoked"),
                ],
            )
        if path.startswith("/contacts/") and path.split("/")[2] in PEOPLE:
            contact_id = path.split("/")[2]
            first, last = PEOPLE[contact_id].split()
            return httpx.Response(
                200,
                json={
                    "contact_id": contact_id,
                    "first_name": first,
                    "last_name": last,
                    "address": {},
                    "channel_preference": "online",
                    "portal_registered": False,
                    "contracts": [],
                },
            )
        if path == "/properties":
            return httpx.Response(200, json={"properties": [{"property_id": "P1", "name": "WEG Lindenstraße 5"}]})
        if path.startswith("/properties/"):
            return httpx.Response(200, json={"units": []})
        return httpx.Response(404, json={"detail": "not found"})

    def invitations(self) -> list[httpx.Request]:
        return [c for c in self.calls if c.url.path == "/internal/invitations/email"]


def make_client() -> tuple[TestClient, Portal]:
    password_hash = hash_password(PASSWORD)
    settings = Settings(
        staff_users={
            "anna@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare", "release"]},
            "gast@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": []},
        },
        accounts={"acc-1": {"name": "HV"}},
        data_dir=tempfile.mkdtemp(prefix="gateway-unit-"),
        log_json=False,
    )
    fake = Portal()
    return TestClient(create_app(settings, transport=httpx.MockTransport(fake))), fake


def login(client: TestClient, user: str) -> str:
    response = client.post("/login", data={"login": user, "password": PASSWORD})
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match, response.text
    return match.group(1)


def visible(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


@pytest.mark.parametrize(
    ("contact_id", "expected"),
    [
        ("C-new", "Einladung an Lea Yilmaz (lea@example.org) versandt; der Code gilt bis 30.12.2026 19:00 Uhr."),
        ("C-reg", "Anna Schmidt hat bereits einen Zugang zum Kundenportal."),
        ("C-nomail", "Für Otto Weber ist keine E-Mail-Adresse hinterlegt."),
        ("C-down", "Die Einladung konnte gerade nicht per E-Mail versandt werden."),
        ("C-gone", "Nicht gefunden (oder kein Zugriff)."),
    ],
)
def test_invitation_answers_in_german_and_carries_the_staff_members_claims(contact_id: str, expected: str) -> None:
    client, fake = make_client()
    with client:
        token = login(client, "anna@hv.de")
        response = client.post(
            f"/kontakte/{contact_id}/einladung", headers={"HX-Request": "true", "X-CSRF-Token": token}
        )
    assert response.status_code == 200
    text = visible(response.text)
    assert expected in text
    assert LEAKS.search(text) is None, text
    (call,) = fake.invitations()
    claims = CallerVerifier("portal-publisher", IdentitySettings().trusted_issuers).verify(call.headers[CALLER_HEADER])
    assert (claims.account_id, claims.actor) == ("acc-1", "anna@hv.de")
    assert claims.roles == {"prepare", "release"}, "the portal checks the role itself: the gateway forwards it"


def test_invitation_needs_csrf_and_a_staff_role() -> None:
    client, fake = make_client()
    with client:
        login(client, "anna@hv.de")
        assert client.post("/kontakte/C-new/einladung", headers={"HX-Request": "true"}).status_code == 403
        client.post("/logout", headers={"X-CSRF-Token": login(client, "anna@hv.de")})
        token = login(client, "gast@hv.de")
        response = client.post("/kontakte/C-new/einladung", headers={"HX-Request": "true", "X-CSRF-Token": token})
        assert response.status_code == 403
        assert "Rolle" in response.text
    assert fake.invitations() == []


def test_einzelbriefe_show_portal_access_and_offer_the_invitation_only_where_it_helps() -> None:
    client, _fake = make_client()
    with client:
        login(client, "anna@hv.de")
        page = client.get(f"/serienbriefe/{LETTER_ID}/einzelbriefe")
    assert page.status_code == 200
    rows = {
        name: visible(row)
        for row in re.findall(r'<tr data-testid="item".*?</tr>', page.text, flags=re.DOTALL)
        for name in PEOPLE.values()
        if name in row
    }
    assert "Zugang eingerichtet" in rows["Anna Schmidt"]
    assert "einladen" not in rows["Anna Schmidt"]  # a login is never offered a new invitation
    assert "eingeladen am 30.11.2026 12:00, gültig bis 30.12.2026 12:00" in rows["Lea Yilmaz"]
    assert "Einladung erneut senden" in rows["Lea Yilmaz"]
    assert "Zum Portal einladen" in rows["Jonas Becker"]
    assert "einladen" not in rows["Otto Weber"]  # revoked letter
    assert LEAKS.search(visible(page.text)) is None
