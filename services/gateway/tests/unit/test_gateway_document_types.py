"""Document types can be created at any level from the new-letter form (a sub-type below the chosen type)."""

from __future__ import annotations

import json
import re

import httpx
from fastapi.testclient import TestClient

from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings

PASSWORD = "geheim"
NODES = [
    {"id": "dt-abr", "name": "Abrechnungen", "parent_id": None, "path": ["Abrechnungen"]},
    {"id": "dt-ja", "name": "Jahresabrechnung", "parent_id": "dt-abr", "path": ["Abrechnungen", "Jahresabrechnung"]},
]


def test_a_new_document_type_goes_below_the_chosen_parent() -> None:
    calls: list[dict] = []

    def fake(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/document-types" and request.method == "POST":
            body = json.loads(request.content)
            calls.append(body)
            if body["parent_id"] == "too-deep":
                return httpx.Response(
                    422, json={"detail": "document types can be nested at most 5 levels deep", "code": "invalid"}
                )
            return httpx.Response(201, json={"version": 2, "nodes": NODES, "created_id": "dt-new"})
        if request.url.path == "/v1/document-types":
            return httpx.Response(200, json={"version": 1, "nodes": NODES})
        if request.url.path == "/v1/letters" and request.method == "POST":
            return httpx.Response(201, json={"letter_id": "L-1"})
        return httpx.Response(200, json={"properties": [], "letters": []})

    settings = Settings(
        staff_users={"anna@hv.de": {"password_hash": hash_password(PASSWORD), "account_id": "a", "roles": ["prepare"]}},
        session_secret="s" * 32,
        log_json=False,
    )
    with TestClient(create_app(settings, transport=httpx.MockTransport(fake))) as c:
        c.post("/login", data={"login": "anna@hv.de", "password": PASSWORD})
        page = c.get("/serienbriefe/neu")
        assert '<option value="dt-ja" >Abrechnungen / Jahresabrechnung</option>' in page.text.replace("  ", " ")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {
            "csrf_token": token,
            "title": "Heizkosten 2025",
            "new_document_type": "Heizkosten",
            "new_document_type_parent": "dt-ja",
            "groups": "owners",
            "cross_property": "1",
        }
        created = c.post("/serienbriefe/neu", data=form, follow_redirects=False)
        too_deep = c.post("/serienbriefe/neu", data={**form, "new_document_type_parent": "too-deep"})
    assert created.status_code == 303
    assert calls[0] == {"name": "Heizkosten", "parent_id": "dt-ja"}
    assert too_deep.status_code == 422
    assert "höchstens fünf Ebenen" in too_deep.text
