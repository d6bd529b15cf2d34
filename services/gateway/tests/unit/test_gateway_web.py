"""The gateway's own decisions (login, CSRF, roles, four-eyes release, German errors) with the services replaced by
an in-process HTTP handler that records every call."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from smartpost_gateway.adapters.http import ServiceError
from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_gateway.texts import translate
from smartpost_shared.identity import CALLER_HEADER, CallerVerifier
from smartpost_shared.settings import IdentitySettings

PASSWORD = "geheim"
LETTER_ID = "0b6f1f1c-0000-4000-8000-000000000001"


def letter(status: str, confirmed_by: str | None = None) -> dict[str, Any]:
    return {
        "letter_id": LETTER_ID,
        "version": 7,
        "status": status,
        "title": "Hausgeld",
        "review_confirmed_by": confirmed_by,
        "document_type": {"id": "t", "path": ["Abrechnung"]},
        "recipient_groups": ["owners"],
        "scope": "property",
        "property_id": "P1",
        "letter_date": "2025-01-01",
        "documents": [],
        "items": [],
        "print_order": None,
        "counts": {
            "documents": 0,
            "parts": 0,
            "assigned": 0,
            "undecided": 0,
            "discarded": 0,
            "warnings": 0,
            "released_items": 0,
            "revoked_items": 0,
        },
        "release_blockers": [],
    }


class FakeServices:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:  # noqa: C901, PLR0911, PLR0912 - one answer per route
        self.calls.append(request)
        path = request.url.path
        if path == f"/v1/letters/{LETTER_ID}" and request.method == "GET":
            return httpx.Response(200, json=self.state["letter"])
        if path == f"/v1/letters/{LETTER_ID}/release":
            return httpx.Response(200, json={**self.state["letter"], "status": "released"})
        if path == f"/v1/letters/{LETTER_ID}/review/confirm":
            return httpx.Response(200, json={**self.state["letter"], "status": "reviewed", "version": 8})
        if path == "/v1/letters" and request.method == "POST":
            return httpx.Response(
                422, json={"detail": [{"loc": ["body", "title"], "msg": "String should have at least 1 character"}]}
            )
        if path == f"/v1/letters/{LETTER_ID}/parts":
            empty = {"parts": [], "total": 0, "offset": 0, "filter_counts": {"all": 0}, "properties": []}
            return httpx.Response(200, json=self.state.get("page") or review_page(**empty, bulk_actions=[]))
        if path.startswith(f"/v1/letters/{LETTER_ID}/review/") and request.method == "POST":
            return httpx.Response(200, json=self.state["letter"])
        if path == "/outbox/status":
            return httpx.Response(200, json=self.state.get("outbox", {"stuck": False, "letter_id": None}))
        if "stuck" in self.state and path == "/v1/letters" and request.method == "GET":
            return httpx.Response(200, json={"letters": []})
        if "stuck" in self.state and path == "/v1/stuck-letters":
            return httpx.Response(200, json={"older_than_seconds": 300, "letters": self.state["stuck"]})
        if path == f"/v1/letters/{LETTER_ID}/resend":
            return httpx.Response(200, json={**self.state["letter"], "resent_event_ids": []})
        if path == f"/letters/{LETTER_ID}/rematch":
            return httpx.Response(200, json={"documents": []})
        if path == "/split-proposals":
            if "proposal" not in self.state:
                return httpx.Response(422, json={"detail": "Die Datei lässt sich für einen Vorschlag nicht lesen."})
            return httpx.Response(200, json=self.state["proposal"])
        if path == f"/v1/letters/{LETTER_ID}/documents" and request.method == "POST":
            return httpx.Response(201, json=self.state["letter"])
        if path == "/v1/document-types":
            return httpx.Response(200, json={"version": 1, "nodes": []})
        if path in {"/properties", "/contacts"} or path.startswith(("/properties/", "/contacts/")):
            return httpx.Response(200, json={"properties": [], "units": [], "contacts": []})
        return httpx.Response(404, json={"detail": "not found", "code": "not_found"})

    def posted(self, suffix: str) -> list[httpx.Request]:
        return [c for c in self.calls if c.method == "POST" and c.url.path.endswith(suffix)]


def make_client(four_eyes: bool, state: dict[str, Any]) -> tuple[TestClient, FakeServices]:
    password_hash = hash_password(PASSWORD)
    settings = Settings(
        staff_users={
            "anna@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare", "release"]},
            "paul@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare"]},
        },
        accounts={"acc-1": {"name": "HV", "four_eyes_release": four_eyes}},
        data_dir=tempfile.mkdtemp(prefix="gateway-unit-"),
        log_json=False,
    )
    fake = FakeServices(state)
    return TestClient(create_app(settings, transport=httpx.MockTransport(fake))), fake


def login(client: TestClient, user: str) -> str:
    response = client.post("/login", data={"login": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match
    return match.group(1)


def test_pages_need_a_login() -> None:
    client, fake = make_client(False, {"letter": letter("reviewed")})
    with client:
        response = client.get("/serienbriefe", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert client.post("/login", data={"login": "anna@hv.de", "password": "nope"}).status_code == 401
    assert fake.calls == []


def test_state_changes_need_the_csrf_token() -> None:
    client, fake = make_client(False, {"letter": letter("reviewed")})
    with client:
        login(client, "anna@hv.de")
        response = client.post(f"/serienbriefe/{LETTER_ID}/freigeben", data={"notify_by_email": "1"})
        assert response.status_code == 403
        assert "Sicherheitstoken" in response.text
    assert fake.posted("/release") == []


def test_release_needs_the_release_role() -> None:
    client, fake = make_client(False, {"letter": letter("reviewed")})
    with client:
        token = login(client, "paul@hv.de")
        response = client.post(f"/serienbriefe/{LETTER_ID}/freigeben", data={"csrf_token": token})
        assert response.status_code == 403
        assert "Freigeben" in response.text
    assert fake.posted("/release") == []


def test_release_forwards_caller_and_version_and_confirms_an_open_review() -> None:
    client, fake = make_client(False, {"letter": letter("in_review")})
    with client:
        token = login(client, "anna@hv.de")
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/freigeben",
            data={"csrf_token": token, "notify_by_email": "1"},
            follow_redirects=False,
        )
        assert response.status_code == 303
    confirm, release = fake.posted("/review/confirm"), fake.posted("/release")
    assert len(confirm) == 1
    assert len(release) == 1
    # The letters service learns account and actor only from claims the gateway signed for it.
    claims = CallerVerifier("letters", IdentitySettings().trusted_issuers).verify(release[0].headers[CALLER_HEADER])
    assert claims.account_id == "acc-1"
    assert claims.actor == "anna@hv.de"
    assert "release" in claims.roles
    assert release[0].headers["If-Match"] == '"8"'
    assert json.loads(release[0].content) == {"notify_by_email": True}


@pytest.mark.parametrize(("confirmed_by", "allowed"), [("anna@hv.de", False), ("paul@hv.de", True)])
def test_four_eyes_release(confirmed_by: str, allowed: bool) -> None:
    client, fake = make_client(True, {"letter": letter("reviewed", confirmed_by)})
    with client:
        token = login(client, "anna@hv.de")
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/freigeben", data={"csrf_token": token}, follow_redirects=False
        )
    if allowed:
        assert response.status_code == 303
        assert len(fake.posted("/release")) == 1
    else:
        assert response.status_code == 403
        assert "Vier-Augen-Prinzip" in response.text
        assert fake.posted("/release") == []
    assert fake.posted("/review/confirm") == []  # with four eyes the gateway never confirms on the releaser's behalf


def test_service_validation_errors_are_shown_in_german_and_keep_the_input() -> None:
    client, _ = make_client(False, {"letter": letter("draft")})
    with client:
        token = login(client, "anna@hv.de")
        response = client.post(
            "/serienbriefe/neu",
            data={"csrf_token": token, "title": "  ", "document_type_id": "t", "groups": "owners", "property_id": "P1"},
        )
    assert response.status_code == 422
    assert "Bitte einen Titel angeben." in response.text
    assert 'value="owners" checked' in response.text


def test_translation_of_service_errors() -> None:
    conflict = translate(ServiceError("letters", 409, "the letter is at version 9, not 7", "version_conflict"))
    assert "inzwischen geändert" in conflict.message
    blocked = translate(
        ServiceError("letters", 422, "cannot release: 2 part(s) are neither assigned nor discarded", "release_blocked")
    )
    assert "weder einem Kontakt zugeordnet noch verworfen" in blocked.message
    down = translate(ServiceError("assignment", 503, "nicht erreichbar (ConnectError)"))
    assert "Zuordnungs-Dienst" in down.message
    rejected = translate(
        ServiceError("letters", 422, "„a.pdf“ ist verschlüsselt. „b.pdf“ ist leer (0 Byte).", "upload_rejected")
    )
    assert rejected.message == "„a.pdf“ ist verschlüsselt. „b.pdf“ ist leer (0 Byte)."


def test_stuck_letters_show_what_they_wait_for_and_can_be_nudged() -> None:
    stuck = [
        {
            "letter_id": LETTER_ID,
            "title": "Hausgeld",
            "status": "assigning",
            "waiting_for": "assignment",
            "since": "2026-03-01T09:15:00+00:00",
            "seconds": 900,
        }
    ]
    client, fake = make_client(False, {"letter": letter("assigning"), "stuck": stuck})
    with client:
        token = login(client, "anna@hv.de")
        page = client.get("/serienbriefe")
        assert page.status_code == 200
        assert "wartet auf die Zuordnung der Empfänger seit 01.03.2026 10:15" in page.text  # German local time (CET)
        assert "erneut anstoßen" in page.text
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/erneut-anstossen", data={"csrf_token": token}, follow_redirects=False
        )
        assert response.status_code in (200, 303), response.text
    assert len(fake.posted("/resend")) == 1
    (rematch,) = fake.posted("/rematch")
    # The assignment service checks the role itself: the gateway forwards the user's roles in the signed claims.
    claims = CallerVerifier("assignment", IdentitySettings().trusted_issuers).verify(rematch.headers[CALLER_HEADER])
    assert (claims.account_id, claims.actor, claims.roles) == ("acc-1", "anna@hv.de", {"prepare", "release"})

    half = translate(
        ServiceError("letters", 422, "a billing period needs both its start and its end", "invalid_letter")
    )
    assert "Abrechnungszeitraum Beginn und Ende" in half.message


def test_new_letter_form_forwards_the_billing_period() -> None:
    client, fake = make_client(False, {"letter": letter("draft")})
    with client:
        token = login(client, "anna@hv.de")
        page = client.get("/serienbriefe/neu")
        assert 'name="period_start"' in page.text
        assert "Abrechnungszeitraum" in page.text
        client.post(
            "/serienbriefe/neu",
            data={
                "csrf_token": token, "title": "Jahresabrechnung 2024", "document_type_id": "t", "groups": "owners",
                "property_id": "P1", "period_start": "2024-01-01", "period_end": "2024-12-31",
            },
        )  # fmt: skip
    created = json.loads(fake.posted("/v1/letters")[0].content)
    assert (created["period_start"], created["period_end"]) == ("2024-01-01", "2024-12-31")


PROPOSAL = {
    "pages": 43,
    "pages_read": 43,
    "proposal": {
        "rule": {"strategy": "first_page", "first_page_text": "Seite 1 von"},
        "name": "Erste Seite (Text „Seite 1 von“)",
        "letters": 12,
        "score": 1.0,
        "reasons": ["12 Briefe"],
    },
    "alternatives": [],
    "explanation": "Vorschlag: „Erste Seite (Text „Seite 1 von“)“ – 12 Briefe (Stimmigkeit 100%).",
}


@pytest.mark.parametrize("splitter_answers", [True, False])
def test_upload_with_the_proposal_uses_the_most_consistent_rule_and_says_why(splitter_answers: bool) -> None:
    state: dict[str, Any] = {"letter": letter("draft")}
    if splitter_answers:
        state["proposal"] = PROPOSAL
    client, fake = make_client(False, state)
    with client:
        token = login(client, "anna@hv.de")
        page = client.get(f"/serienbriefe/{LETTER_ID}/dokumente")
        assert '<option value="auto" selected>Vorschlag von SmartPost</option>' in page.text
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/dokumente",
            data={"csrf_token": token, "strategy": "auto", "address_form": "B"},
            files={"files": ("abrechnung.pdf", b"%PDF-1.7 test", "application/pdf")},
        )
    assert response.status_code == 200, response.text
    (proposal_call,) = fake.posted("/split-proposals")
    assert proposal_call.content == b"%PDF-1.7 test"
    assert proposal_call.headers["content-type"] == "application/pdf"
    (upload,) = fake.posted("/documents")
    sent_rule = json.loads(re.search(rb'name="rule"\r\n\r\n([^\r]+)', upload.content).group(1))
    if splitter_answers:
        assert sent_rule == {"strategy": "first_page", "first_page_text": "Seite 1 von"}
        assert "Vorschlag: „Erste Seite" in response.text
        assert "Übernommen – ändern unter „Trennregel ändern“" in response.text
    else:
        assert sent_rule == {"strategy": "address_block", "address_form": "B"}
        assert "Kein Vorschlag möglich" in response.text


def test_address_block_help_says_what_the_rule_does() -> None:
    from smartpost_gateway.texts import SPLIT_STRATEGIES

    help_text = SPLIT_STRATEGIES["address_block"][1]
    assert "auf jeder Seite mit einer Anschrift" not in help_text  # the old, wrong promise
    assert "Seite 1 von 3" in help_text
    assert "wiederholen" in help_text


@pytest.mark.parametrize(
    ("outbox", "stuck"),
    [
        ({"stuck": False, "letter_id": None}, False),
        ({"stuck": True, "letter_id": "another-letter"}, False),
        ({"stuck": True, "letter_id": LETTER_ID, "event_type": "PagesAssigned"}, True),
    ],
)
def test_progress_shows_a_german_error_when_the_letter_s_result_cannot_be_published(
    outbox: dict[str, Any], stuck: bool
) -> None:
    client, _ = make_client(False, {"letter": letter("assigning"), "outbox": outbox})
    with client:
        login(client, "anna@hv.de")
        response = client.get(f"/serienbriefe/{LETTER_ID}/fortschritt/status")
    assert response.status_code == 200
    assert ("Verarbeitung angehalten" in response.text) is stuck
    assert "Wird zugeordnet" in response.text


def test_progress_shows_the_letters_own_publish_problem() -> None:
    client, _ = make_client(False, {"letter": {**letter("splitting"), "publish_problem": "LetterCreated: ..."}})
    with client:
        login(client, "anna@hv.de")
        response = client.get(f"/serienbriefe/{LETTER_ID}/fortschritt/status")
    assert "Verarbeitung angehalten" in response.text


def review_page(**overrides: Any) -> dict[str, Any]:
    part = {
        "part_id": "D1-p7",
        "document_id": "D1",
        "index": 7,
        "first_page": 15,
        "last_page": 16,
        "page_count": 2,
        "storage_key": "k",
        "thumbnail_key": None,
        "size_bytes": 1,
        "address_lines": ["Frau Erika Muster"],
        "identifiers": [],
        "property_refs": [],
        "unit_refs": [],
        "split_warnings": [],
        "assignment": {
            "status": "unmatched",
            "contact_id": None,
            "property_id": None,
            "unit_id": None,
            "method": "auto",
            "score": 0,
            "evidence": [],
            "candidates": [],
            "decided_by": None,
        },
        "warnings": [],
    }
    page = {
        "letter_id": LETTER_ID,
        "version": 7,
        "status": "in_review",
        "filter": "review",
        "property_id": None,
        "total": 120,
        "offset": 50,
        "limit": 50,
        "parts": [part],
        "filter_counts": {
            "all": 4000,
            "review": 120,
            "unassigned": 40,
            "needs_review": 80,
            "assigned": 3880,
            "discarded": 0,
            "deferred": 0,
            "warnings": 0,
        },
        "properties": [
            {"property_id": "P1", "parts": 3000, "undecided": 100, "deferred": 0},
            {"property_id": "P2", "parts": 1000, "undecided": 20, "deferred": 0},
        ],
        "bulk_actions": [
            {
                "bulk_id": "b-1",
                "action": "discard_unmatched",
                "property_id": None,
                "parts": 12,
                "by": "anna@hv.de",
                "at": "2026-11-30T10:00:00Z",
                "undone": False,
            }
        ],
    }
    page.update(overrides)
    return page


def test_review_is_paged_with_filters_and_german_bulk_actions() -> None:
    state = {"letter": {**letter("in_review"), "scope": "cross_property", "property_id": None}, "page": review_page()}
    client, fake = make_client(False, state)
    with client:
        token = login(client, "anna@hv.de")
        response = client.get(f"/serienbriefe/{LETTER_ID}/pruefung?filter=review&ab=50")
        assert response.status_code == 200, response.text
        text = response.text
        assert "Zur Prüfung (120)" in text
        assert "Nicht zugeordnet (40)" in text
        assert "Einzelbriefe 51–100 von 120" in text
        assert "Einzelbrief 51" in text
        assert "Alle nicht zuordenbaren verwerfen" in text
        assert "Alle sicheren Vorschläge übernehmen" in text
        assert "Diese Liegenschaft zurückstellen" not in text  # only when one property is chosen
        assert "Rückgängig" in text
        (page_call,) = [c for c in fake.calls if c.url.path.endswith("/parts")]
        assert page_call.url.params["filter"] == "review"
        assert page_call.url.params["offset"] == "50"
        (letter_call,) = [c for c in fake.calls if c.url.path == f"/v1/letters/{LETTER_ID}"]
        assert letter_call.url.params["parts"] == "none"  # the whole letter is never loaded for the review

        state["page"] = review_page(property_id="P2", filter="all")
        with_property = client.get(f"/serienbriefe/{LETTER_ID}/pruefung?filter=all&liegenschaft=P2").text
        assert "Diese Liegenschaft zurückstellen" in with_property

        back = f"/serienbriefe/{LETTER_ID}/pruefung?filter=all&liegenschaft=P2"
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/pruefung/sammelaktion/liegenschaft-zurueckstellen",
            data={"csrf_token": token, "property_id": "P2", "back": back},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == back
        response = client.post(
            f"/serienbriefe/{LETTER_ID}/pruefung/sammelaktion/nicht-zuordenbare-verwerfen",
            data={"csrf_token": token, "back": "https://evil.example/"},
            follow_redirects=False,
        )
        assert response.headers["location"] == f"/serienbriefe/{LETTER_ID}/pruefung"
        client.post(
            f"/serienbriefe/{LETTER_ID}/pruefung/sammelaktion/b-1/rueckgaengig",
            data={"csrf_token": token},
            follow_redirects=False,
        )
    (defer,) = fake.posted("/review/defer-property")
    assert json.loads(defer.content) == {"property_id": "P2"}
    assert defer.url.params["parts"] == "none"
    assert len(fake.posted("/review/discard-unmatched")) == 1
    assert len(fake.posted("/review/bulk/b-1/undo")) == 1


def test_bulk_actions_need_the_prepare_role_and_the_csrf_token() -> None:
    client, fake = make_client(False, {"letter": letter("in_review"), "page": review_page()})
    with client:
        login(client, "anna@hv.de")
        response = client.post(f"/serienbriefe/{LETTER_ID}/pruefung/sammelaktion/sichere-vorschlaege-uebernehmen")
        assert response.status_code == 403
    assert fake.posted("/review/accept-safe") == []


# --- Content-Security-Policy (issue #13): no inline script anywhere, headers on every response -------------------

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "src" / "smartpost_gateway" / "templates"


def test_templates_hold_no_inline_script_or_event_handler() -> None:
    """Behaviour lives in /static/app.js (data-* attributes + listeners); the CSP would block anything inline."""
    for path in sorted(TEMPLATE_DIR.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"{path.name}: inline <script>"
        handlers = re.findall(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", text)
        assert handlers == [], f"{path.name}: inline event handlers {handlers}"
        assert "javascript:" not in text, f"{path.name}: javascript: URL"
        assert not re.search(r"hx-(vals|vars)=['\"]\s*(js|javascript):", text), f"{path.name}: evaluated hx values"


@pytest.mark.parametrize("path", ["/login", "/serienbriefe", "/static/app.js", "/nirgendwo", "/healthz"])
def test_every_response_carries_the_csp_and_security_headers(path: str) -> None:
    client, _ = make_client(False, {"letter": letter("reviewed")})
    with client:
        response = client.get(path, headers={"accept": "text/html"}, follow_redirects=False)
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_htmx_is_served_locally_and_configured_for_the_csp() -> None:
    client, _ = make_client(False, {"letter": letter("reviewed")})
    with client:
        page = client.get("/login").text
        assert client.get("/static/htmx.min.js").status_code == 200
    assert re.search(r'<script src="/static/htmx\.min\.js"', page)
    assert not re.search(r"<script[^>]+src=\"(https?:)?//", page), "no script from another origin"
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page).group(1))
    assert config == {"includeIndicatorStyles": False, "allowEval": False, "allowScriptTags": False}


def test_pdfs_get_no_script_policy_that_would_blank_the_browsers_pdf_viewer() -> None:
    from fastapi import FastAPI
    from fastapi.responses import Response

    from smartpost_shared.http import SecurityHeadersMiddleware

    app = FastAPI()
    app.add_middleware(SecurityHeadersMiddleware)
    app.get("/pdf")(lambda: Response(b"%PDF-1.7", media_type="application/pdf"))
    app.get("/page")(lambda: Response("<p>x</p>", media_type="text/html"))
    with TestClient(app) as client:
        pdf, page = client.get("/pdf"), client.get("/page")
    assert "content-security-policy" not in pdf.headers
    assert pdf.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in page.headers["content-security-policy"]
