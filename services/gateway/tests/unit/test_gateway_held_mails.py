"""'Zurückgehaltene E-Mails': the gateway lists the notifier's held-back mails of the staff member's account (with the
recipient's name, the document titles and the German reason) and sends one on "Jetzt senden" — role ``release``,
CSRF token, signed caller claims with the verified account and roles; the notifier replaced by a fake."""

from __future__ import annotations

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
PAGE = "/betrieb/zurueckgehaltene-emails"
MAIL = {
    "mail_id": "m-1",
    "kind": "immediate",
    "contact_id": "C-1",
    "letter_id": "L-1",
    "digest_day": None,
    "status": "stale",
    "status_label": "Veraltet – bitte prüfen",
    "reason": "Veraltet – bitte prüfen: Ereignis vom 01.11.2026 10:00 ist 720 Std. alt (Grenze 48 Std.).",
    "document_titles": ["Hausgeldabrechnung 2025"],
    "recorded_at": "2026-11-30T10:00:00+00:00",
}
LEAKS = re.compile(r"\{\"|\bstale\b|\bimmediate\b|\bnot found\b|\berror\b|\bmail_id\b|C-1|recorded_at")


class FakeNotifier:
    """The notifier's held-mail routes (and the assignment service's contact) for one account."""

    def __init__(self, mails: list[dict[str, Any]]) -> None:
        self.mails = mails
        self.calls: list[httpx.Request] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:  # noqa: PLR0911 - one answer per route
        self.calls.append(request)
        path = request.url.path
        if path == "/internal/mails/stale":
            if self.down:
                return httpx.Response(503, json={"detail": "notifier is starting"})
            return httpx.Response(200, json={"account_id": "acc-1", "mails": self.mails})
        if path.startswith("/internal/mails/") and path.endswith("/release") and request.method == "POST":
            mail_id = path.split("/")[3]
            if not any(m["mail_id"] == mail_id for m in self.mails):
                return httpx.Response(409, json={"detail": "Diese E-Mail wartet nicht auf Prüfung."})
            self.mails = [m for m in self.mails if m["mail_id"] != mail_id]
            return httpx.Response(200, json={"mail_id": mail_id, "status": "pending"})
        if path == "/contacts/C-1":
            return httpx.Response(200, json={"contact_id": "C-1", "first_name": "Lea", "last_name": "Yilmaz"})
        if path == "/properties":
            return httpx.Response(200, json={"properties": []})
        return httpx.Response(404, json={"detail": "not found"})

    def released(self) -> list[httpx.Request]:
        return [c for c in self.calls if c.method == "POST" and c.url.path.endswith("/release")]


def client_for(fake: FakeNotifier, login: str) -> TestClient:
    password_hash = hash_password(PASSWORD)
    settings = Settings(
        staff_users={
            "anna@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare", "release"]},
            "paul@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare", "admin"]},
        },
        data_dir=tempfile.mkdtemp(prefix="gateway-held-"),
        log_json=False,
    )
    client = TestClient(create_app(settings, transport=httpx.MockTransport(fake)))
    client.__enter__()
    answer = client.post("/login", data={"login": login, "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303
    return client


def token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


@pytest.fixture
def fake() -> FakeNotifier:
    return FakeNotifier([dict(MAIL)])


def test_the_list_shows_recipient_document_date_and_german_reason_and_is_linked(fake: FakeNotifier) -> None:
    client = client_for(fake, "anna@hv.de")
    overview = client.get("/serienbriefe").text
    assert f'href="{PAGE}"' in overview
    page = client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert "Lea Yilmaz" in text
    assert "Hausgeldabrechnung 2025" in text
    assert "30.11.2026" in text
    assert "Veraltet – bitte prüfen: Ereignis vom 01.11.2026" in text
    assert "Jetzt senden" in text
    assert f'action="{PAGE}/m-1/senden"' in text
    visible = re.sub(r"<[^>]+>", " ", text)
    assert LEAKS.search(visible) is None, LEAKS.search(visible)
    listed = next(c for c in fake.calls if c.url.path == "/internal/mails/stale")
    claims = CallerVerifier("notifier", IdentitySettings().trusted_issuers).verify(listed.headers[CALLER_HEADER])
    assert (claims.account_id, claims.actor) == ("acc-1", "anna@hv.de")
    assert {"release", "prepare"} <= claims.roles


def test_send_now_releases_the_mail_with_the_verified_account_and_shows_the_empty_list(fake: FakeNotifier) -> None:
    client = client_for(fake, "anna@hv.de")
    csrf = token(client.get(PAGE).text)
    answer = client.post(f"{PAGE}/m-1/senden", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}?gesendet=1"
    [release] = fake.released()
    claims = CallerVerifier("notifier", IdentitySettings().trusted_issuers).verify(release.headers[CALLER_HEADER])
    assert claims.account_id == "acc-1"
    assert "release" in claims.roles
    after = client.get(answer.headers["location"]).text
    assert "Die E-Mail wird jetzt versandt." in after
    assert "Keine zurückgehaltenen E-Mails" in after
    # a second click (or another staff member was faster): German, no technical detail
    again = client.post(f"{PAGE}/m-1/senden", data={"csrf_token": csrf})
    assert again.status_code == 422
    assert "nicht mehr zurückgehalten" in again.text
    assert "wartet nicht auf Prüfung" not in again.text


def test_without_csrf_token_nothing_is_sent(fake: FakeNotifier) -> None:
    client = client_for(fake, "anna@hv.de")
    answer = client.post(f"{PAGE}/m-1/senden", data={})
    assert answer.status_code == 403
    assert "Sicherheitstoken" in answer.text
    assert fake.released() == []


def test_without_the_release_role_no_page_no_link_and_nothing_is_sent(fake: FakeNotifier) -> None:
    client = client_for(fake, "paul@hv.de")
    assert f'href="{PAGE}"' not in client.get("/serienbriefe").text
    page = client.get(PAGE)
    assert page.status_code == 403
    assert "Freigeben" in page.text
    csrf = token(client.get("/serienbriefe").text)
    assert client.post(f"{PAGE}/m-1/senden", data={"csrf_token": csrf}).status_code == 403
    assert fake.released() == []
    assert not any(c.url.path.startswith("/internal/mails") for c in fake.calls)


def test_notifier_unreachable_is_a_german_message(fake: FakeNotifier) -> None:
    fake.down = True
    client = client_for(fake, "anna@hv.de")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "E-Mail-Dienst" in page.text
    assert "Keine zurückgehaltenen E-Mails" not in page.text
    assert "notifier is starting" not in page.text
