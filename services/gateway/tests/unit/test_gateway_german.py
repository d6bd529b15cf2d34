"""Only German for staff: the Verlauf as sentences with the technical record behind "Details", service errors without
their English detail (a support number instead), German print notes, evidence and page counts."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from smartpost_gateway.adapters.http import ServiceError
from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_gateway.texts import evidence_text, print_text, translate

PASSWORD = "geheim"
LETTER_ID = "0b6f1f1c-0000-4000-8000-000000000001"
# English service wording or raw data that must never reach a staff page's visible text.
LEAKS = re.compile(
    r"\\u00|\{\"detail\"|String should|not found|\bmanual\b|\bby\b|\bneeds a property\b|\binvalid\b|\berror\b",
)

LETTER: dict[str, Any] = {
    "letter_id": LETTER_ID,
    "version": 7,
    "status": "released",
    "title": "Jahresabrechnung 2025",
    "review_confirmed_by": "anna@hv.de",
    "document_type": {"id": "t", "path": ["Abrechnungen"]},
    "recipient_groups": ["owners"],
    "scope": "cross_property",
    "property_id": None,
    "letter_date": "2025-01-01",
    "documents": [
        {
            "document_id": "d1",
            "filename": "jahresabrechnung.pdf",
            "status": "split",
            "warnings": [],
            "parts": [
                {"part_id": f"p{i}", "first_page": i, "last_page": i, "page_count": 1, "assignment": {}}
                for i in (1, 2, 3)
            ],
        }
    ],
    "items": [],
    "print_order": None,
    "counts": {
        "documents": 1,
        "parts": 3,
        "assigned": 3,
        "undecided": 0,
        "discarded": 0,
        "warnings": 0,
        "released_items": 3,
        "revoked_items": 0,
    },
    "release_blockers": [],
}

AUDIT = {
    "entries": [
        {
            "timestamp": "2026-11-30T09:00:00+00:00",
            "actor": "anna@hv.de",
            "action": "created",
            "details": {"title": "Jahresabrechnung 2025", "scope": "cross_property", "property_id": None},
        },
        {
            "timestamp": "2026-11-30T09:05:00+00:00",
            "actor": "anna@hv.de",
            "action": "part_corrected",
            "details": {
                "document_id": "d1",
                "part_id": "p3",
                "action": "reassign",
                "contact_id": "C-weiss",
                "property_id": "P-PARK",
                "unit_id": "U-PARK-02",
            },
        },
        {
            "timestamp": "2026-11-30T09:10:00+00:00",
            "actor": "anna@hv.de",
            "action": "released",
            "details": {"title": "Jahresabrechnung 2025", "notify_by_email": True, "items": [{}, {}, {}]},
        },
        {
            "timestamp": "2026-11-30T09:20:00+00:00",
            "actor": "anna@hv.de",
            "action": "items_revoked",
            "details": {"item_ids": ["i3"], "unit_id": "U-PARK-02", "reason": "falscher Empfänger"},
        },
    ]
}


def fake(request: httpx.Request) -> httpx.Response:  # noqa: PLR0911 - one answer per route
    path = request.url.path
    if path == f"/v1/letters/{LETTER_ID}":
        return httpx.Response(200, json=LETTER)
    if path == f"/v1/letters/{LETTER_ID}/audit":
        return httpx.Response(200, json=AUDIT)
    if path == "/contacts/C-weiss":
        return httpx.Response(
            200, json={"contact_id": "C-weiss", "first_name": "Jürgen", "last_name": "Weiß", "address": {}}
        )
    if path == "/properties":
        return httpx.Response(200, json={"properties": [{"property_id": "P-PARK", "name": "Parkallee 7"}]})
    if path == "/properties/P-PARK/units":
        return httpx.Response(200, json={"units": [{"unit_id": "U-PARK-02", "number": "WE 02"}]})
    if path == "/v1/letters" and request.method == "POST":
        return httpx.Response(
            422, json={"detail": [{"loc": ["body", "title"], "msg": "String should have at least 1 character"}]}
        )
    if path == "/v1/document-types":
        return httpx.Response(200, json={"version": 1, "nodes": []})
    if path in {"/properties", "/contacts"} or path.startswith(("/properties/", "/contacts/")):
        return httpx.Response(200, json={"properties": [], "units": [], "contacts": []})
    return httpx.Response(404, json={"detail": f"letter {path} not found", "code": "not_found"})


def client() -> TestClient:
    settings = Settings(
        staff_users={
            "anna@hv.de": {
                "password_hash": hash_password(PASSWORD),
                "account_id": "acc-1",
                "roles": ["prepare", "release"],
                "name": "Anna Muster",
            }
        },
        accounts={"acc-1": {"name": "HV"}},
        session_secret="s" * 32,
        log_json=False,
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(fake)))


def login(c: TestClient) -> None:
    assert c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}).status_code == 200


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    html = re.sub(r"<details class=\"audit-record\">.*?</details>", " ", html, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", html)


def test_verlauf_reads_as_german_sentences_with_the_record_behind_details() -> None:
    with client() as c:
        login(c)
        page = c.get(f"/serienbriefe/{LETTER_ID}/verlauf")
    assert page.status_code == 200
    sentences = re.findall(r'data-testid="audit-sentence">([^<]+)<', page.text)
    assert sentences == [
        "Anna Muster hat den Serienbrief „Jahresabrechnung 2025“ angelegt (liegenschaftsübergreifend).",
        "Anna Muster hat Einzelbrief 3 Jürgen Weiß zugeordnet (WE 02, Parkallee 7).",
        "Anna Muster hat 3 Einzelbriefe im Kundenportal freigegeben und die Empfänger per E-Mail benachrichtigt.",
        "Anna Muster hat 1 Einzelbrief für WE 02 widerrufen. Begründung: falscher Empfänger",
    ]
    assert page.text.count("<summary>Details</summary>") == 4
    # The record behind the toggle keeps umlauts readable (no \\u00fc escapes).
    audit = page.text[page.text.index('<ol class="audit"') :]
    records = re.findall(r'<pre class="small">(.*?)</pre>', audit, flags=re.DOTALL)
    assert len(records) == 4
    assert "&#34;reason&#34;: &#34;falscher Empfänger&#34;" in records[3]
    assert "\\u00" not in audit
    leak = LEAKS.search(visible_text(page.text))
    assert leak is None, leak


def test_service_errors_show_german_and_a_support_number_never_the_english_detail() -> None:
    with client() as c:
        login(c)
        missing = c.get("/serienbriefe/0b6f1f1c-0000-4000-8000-00000000ffff/verlauf")
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/serienbriefe/neu").text).group(1)
        invalid = c.post(
            "/serienbriefe/neu",
            data={"csrf_token": token, "title": " ", "document_type_id": "t", "groups": "owners", "property_id": "P"},
        )
    assert missing.status_code == 404
    assert "Nicht gefunden" in missing.text
    assert "not found" not in missing.text
    assert re.search(r'data-testid="support-id">[0-9a-f]{10}<', missing.text)
    assert invalid.status_code == 422
    assert "Bitte einen Titel angeben." in invalid.text
    assert "String should" not in invalid.text
    for page in (missing, invalid):
        leak = LEAKS.search(visible_text(page.text))
        assert leak is None, leak


def test_translate_keeps_the_detail_for_the_log_only() -> None:
    ui = translate(ServiceError("letters", 422, "a property letter needs a property", "invalid_letter"))
    assert ui.message.startswith("Bitte eine Liegenschaft wählen")
    assert ui.detail == "a property letter needs a property"
    assert re.fullmatch(r"[0-9a-f]{10}", ui.support_id)


def test_print_notes_and_evidence_in_german() -> None:
    note = (
        "a cover page (one more sheet) is added where the address is not in the window; the estimate checks one "
        "letter per document for its layout (cover_page_layouts); an address that differs from master data is "
        "found only when the print files are made"
    )
    assert print_text(note).startswith("Wo die Anschrift nicht im Sichtfenster")
    assert LEAKS.search(print_text(note)) is None
    assert evidence_text("manual reassign by anna@hv.de") == "von Hand zugeordnet von anna@hv.de"
    assert evidence_text("manual discard by anna@hv.de", {"anna@hv.de": "Anna Muster"}.get) == (
        "verworfen von Anna Muster"
    )
    assert evidence_text("PLZ 10115") == "PLZ 10115"


def test_a_past_dispatch_date_is_refused_in_german_for_estimate_and_order() -> None:
    with client() as c:
        login(c)
        page = c.get(f"/serienbriefe/{LETTER_ID}/versand")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"csrf_token": token, "recipient_filter": "all", "dispatch_date": "2020-03-01"}
        estimate = c.post(f"/serienbriefe/{LETTER_ID}/versand/kosten", data=form)
        order = c.post(f"/serienbriefe/{LETTER_ID}/versand", data=form)
    assert "Das Versanddatum liegt in der Vergangenheit" in estimate.text
    assert order.status_code == 422
    assert "Das Versanddatum liegt in der Vergangenheit" in order.text
    assert re.search(r'name="dispatch_date" min="\d{4}-\d{2}-\d{2}"', page.text)


def test_dates_numbers_and_money_in_german_format() -> None:
    from smartpost_gateway.texts import de_datetime, de_number, euro

    assert de_datetime("2026-11-30T15:48:09+00:00") == "30.11.2026 16:48"  # UTC shown in German local time
    assert de_datetime("2026-07-01T10:00:00Z") == "01.07.2026 12:00"  # summer time
    assert de_datetime("2026-03-02") == "02.03.2026"
    assert euro(123456) == "1.234,56\u00a0€"
    assert de_number(4.5, 1) == "4,5"
    assert de_number(12500) == "12.500"


def test_unknown_addresses_get_a_german_page_in_the_browser() -> None:
    with client() as c:
        login(c)
        page = c.get("/gibt-es-nicht", headers={"Accept": "text/html"})
        api = c.get("/gibt-es-nicht")
    assert page.status_code == 404
    assert "Seite nicht gefunden." in page.text
    assert "Not Found" not in page.text
    assert api.json() == {"detail": "Not Found"}
