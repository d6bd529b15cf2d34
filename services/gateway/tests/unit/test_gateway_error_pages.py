"""Error pages a browser or htmx can reach outside the services' answers: unknown address (page and fragment),
wrong method, an incomplete request (FastAPI validation, 422), an unexpected error (500): German with a support
number, never FastAPI's JSON; API clients keep JSON."""

from __future__ import annotations

import re
import tempfile

import httpx
import pytest
from fastapi.testclient import TestClient

from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings

PASSWORD = "geheim"
LETTER_ID = "0b6f1f1c-0000-4000-8000-000000000001"
LEAKS = re.compile(r"\{\s*\"|\\u00|\bdetail\b|Not Found|Internal Server|Method Not|Field required|Traceback|\berror\b")
BROWSER = {"Accept": "text/html,application/xhtml+xml"}
HTMX = {"HX-Request": "true", "Accept": "*/*"}


def services(request: httpx.Request) -> httpx.Response:
    if request.url.path.startswith("/contacts/boom"):
        raise RuntimeError("unexpected bug in a client")
    return httpx.Response(200, json={"letters": [], "properties": [], "contacts": [], "units": []})


@pytest.fixture
def client() -> TestClient:
    settings = Settings(
        staff_users={
            "anna@hv.de": {"password_hash": hash_password(PASSWORD), "account_id": "acc-1", "roles": ["prepare"]}
        },
        accounts={"acc-1": {"name": "HV"}},
        data_dir=tempfile.mkdtemp(prefix="gateway-unit-"),
        log_json=False,
    )
    c = TestClient(create_app(settings, transport=httpx.MockTransport(services)), raise_server_exceptions=False)
    with c:
        assert c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}).status_code == 200
        yield c


def visible(html: str) -> str:
    return re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL))
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "german"),
    [
        ("GET", "/gibt-es-nicht", 404, "Seite nicht gefunden."),
        ("DELETE", "/serienbriefe", 405, "Diese Anfrage ist so nicht möglich."),
        # contact_id is required: FastAPI's validation answer would be raw JSON
        ("GET", f"/serienbriefe/{LETTER_ID}/teile/p1/vertraege", 422, "Die Anfrage ist unvollständig"),
        ("GET", f"/serienbriefe/{LETTER_ID}/teile/p1/vertraege?contact_id=boom", 500, "unerwarteter Fehler"),
    ],
)
@pytest.mark.parametrize("headers", [BROWSER, HTMX], ids=["page", "htmx"])
def test_error_pages_are_german(
    client: TestClient, method: str, path: str, status: int, german: str, headers: dict[str, str]
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    text = visible(response.text)
    assert german in text
    assert re.search(r"Vorgangsnummer für den Support: [0-9a-f]{10}", text), text
    assert LEAKS.search(text) is None, text
    # htmx gets a fragment to swap in, a browser a whole page
    assert ("<html" in response.text) is (headers is BROWSER)


def test_api_clients_keep_json(client: TestClient) -> None:
    assert client.get("/gibt-es-nicht", headers={"Accept": "application/json"}).json() == {"detail": "Not Found"}
    response = client.get(f"/serienbriefe/{LETTER_ID}/teile/p1/vertraege?contact_id=boom")
    assert response.status_code == 500
    assert response.json()["support_id"]


def test_a_thumbnail_that_is_gone_is_a_german_placeholder_not_an_error() -> None:
    """Deleted by a data erasure (or retention): the letters service answers 404, the review shows a placeholder."""

    def letters(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/thumbnail"):
            return httpx.Response(404, json={"detail": "the file is not (yet) in storage"})
        return services(request)

    settings = Settings(
        staff_users={
            "anna@hv.de": {"password_hash": hash_password(PASSWORD), "account_id": "acc-1", "roles": ["prepare"]}
        },
        accounts={"acc-1": {"name": "HV"}},
        data_dir=tempfile.mkdtemp(prefix="gateway-unit-"),
        log_json=False,
    )
    with TestClient(create_app(settings, transport=httpx.MockTransport(letters))) as c:
        assert c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}).status_code == 200
        response = c.get(f"/serienbriefe/{LETTER_ID}/teile/p1/vorschau")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "Keine Vorschau" in response.text
    assert "verfügbar" in response.text
