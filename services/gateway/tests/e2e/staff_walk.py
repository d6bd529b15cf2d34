"""Every route of the staff gateway, in the states the browser tests reach, checked for English and raw data.

``walk`` drives a logged-in chromium page over every HTML route of the gateway (pages, htmx fragments, form posts
and their refusals, error pages) against the real services, with the property letter of the whole-flow test (split,
assigned, released, one letter revoked, postal dispatch ordered) and a fresh draft letter for the empty states.
Each visited route is recorded under its route template; the test compares that with the app's route table, so a
new route without a state in this walk fails the test.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from playwright.sync_api import APIResponse, Page, expect

if TYPE_CHECKING:
    from collections.abc import Callable

# English service wording or raw data that must never reach a staff page's visible text.
LEAKS = re.compile(
    r"\\u00|\{\s*\"|\"detail\"|String should|\bnot found\b|Not Found|\bmanual\b|\bneeds a property\b|\binvalid\b|"
    r"\berror\b|\bError\b|a cover page|\bSeiten, üblich sind \d+\.\d|\(1 Seiten|Traceback|Internal Server|"
    r"Method Not Allowed|Field required|\bshould\b|\bmust\b|\bcannot\b|\bletter\b|\bcontact\b|\bNone\b|\bnull\b|"
    r"\bunknown\b|\brefused\b|\bforbidden\b|\bUnauthori[sz]ed\b"
)

# Machine endpoints, not pages: probes, metrics, the API description, static files and the JSON admin API of dead
# letters (its refusals for a browser are pages and are walked below).
NOT_PAGES = {
    ("GET", "/healthz"): "probe",
    ("GET", "/readyz"): "probe",
    ("GET", "/metrics"): "Prometheus",
    ("GET", "/openapi.json"): "API description",
    ("MOUNT", "/static"): "CSS and scripts",
    # Data protection (erasure, Art. 15 export, audit): a JSON admin API with German labels, not a page; driven
    # through the real services in tests/e2e/test_pipeline_e2e.py::test_gdpr_erasure_of_one_contact_in_every_...
    ("GET", "/admin/privacy/audit"): "JSON admin API",
    ("GET", "/admin/privacy/contacts/{contact_id}/erasure"): "JSON admin API",
    ("POST", "/admin/privacy/contacts/{contact_id}/erasure"): "JSON admin API",
    ("GET", "/admin/privacy/contacts/{contact_id}/export"): "JSON admin API",
}

L = "/serienbriefe/{letter_id}"


@dataclass
class Walk:
    page: Page
    base: str
    visited: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # Every problem of the walk, reported together at the end (one run shows them all).
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: object, message: str) -> bool:
        if not ok:
            self.problems.append(message)
        return bool(ok)

    def token(self) -> str:
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', self.page.locator("body").get_attribute("hx-headers") or "")
        assert found, "no CSRF token in the page"
        return found.group(1)

    def record(self, method: str, route: str, state: str) -> None:
        self.visited.setdefault((method, route), []).append(state)

    def check_text(self, what: str, text: str) -> None:
        leak = LEAKS.search(text)
        self.expect(leak is None, f"{what}: '{leak.group(0) if leak else ''}' in the visible text:\n{text[:3000]}")

    def check_page(self, what: str) -> None:
        self.check_text(what, self.page.inner_text("body"))
        self.expect(self.page.evaluate("document.documentElement.lang") == "de", f"{what}: not a German page")
        width = self.page.evaluate("document.documentElement.scrollWidth")
        self.expect(width <= 1280, f"{what}: the page is {width}px wide, more than the 1280px window")

    def visible(self, html: str) -> str:
        """The text a user sees of an HTML answer (rendered in the page, so closed <details> stay hidden)."""
        return str(
            self.page.evaluate(
                """html => { const d = document.createElement('div'); d.innerHTML = html;
                   document.body.appendChild(d); const t = d.innerText; d.remove(); return t; }""",
                html,
            )
        )

    def get(self, route: str, url: str, state: str, *, status: int | None = None) -> None:
        """Open a page in the browser (following redirects) and check what it shows."""
        response = self.page.goto(self.base + url)
        assert response is not None
        if status is not None:
            self.expect(response.status == status, f"{url} {state}: HTTP {response.status}, expected {status}")
        self.check_page(f"GET {url} ({state})")
        self.record("GET", route, state)

    def send(
        self,
        method: str,
        route: str,
        url: str,
        state: str,
        *,
        form: dict[str, Any] | None = None,
        multipart: dict[str, Any] | None = None,
        json: Any = None,
        htmx: bool = True,
        csrf: bool = True,
        status: int | tuple[int, ...] | None = None,
        expect_text: str | None = None,
    ) -> APIResponse:
        """A request as the page's htmx or form would send it (same cookies); the answer is checked as shown."""
        headers = {"Accept": "text/html,application/xhtml+xml"}
        if htmx:
            headers["HX-Request"] = "true"
        if csrf:
            headers["X-CSRF-Token"] = self.token()
        response = self.page.request.fetch(
            self.base + url,
            method=method,
            headers=headers,
            form=form,
            multipart=multipart,
            data=json,
            max_redirects=0,
        )
        if status is not None:
            allowed = status if isinstance(status, tuple) else (status,)
            shown = self.visible(response.text())[:1500] if "html" in response.headers.get("content-type", "") else ""
            self.expect(
                response.status in allowed,
                f"{method} {url} {state}: HTTP {response.status} {shown or response.text()[:500]}",
            )
        what = f"{method} {url} ({state})"
        redirect = response.headers.get("hx-redirect") or response.headers.get("location")
        if response.status in {204, 303} or (redirect and not response.body()):
            assert redirect, f"{what}: neither content nor a redirect"
            self.page.goto(self.base + redirect if redirect.startswith("/") else redirect)
            self.check_page(f"{what} -> {redirect}")
        elif response.headers.get("content-type", "").startswith("text/html"):
            text = self.visible(response.text())
            self.check_text(what, text)
            if expect_text:
                self.expect(expect_text in text, f"{what}: '{expect_text}' not in:\n{text[:2000]}")
        else:
            self.expect(False, f"{what}: unexpected answer {response.status} {response.headers}")
        self.record(method, route, state)
        return response


def first_href(page: Page, pattern: str) -> str:
    for href in page.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        if re.search(pattern, href or ""):
            return str(href)
    raise AssertionError(f"no link matching {pattern} on {page.url}")


def walk(  # noqa: PLR0915 - one state after the other, in the order a user meets them
    page: Page, base: str, letter_id: str, *, contact_ids: dict[str, str], login: Callable[[], None]
) -> Walk:
    w = Walk(page, base)
    lid = letter_id
    missing = "00000000-0000-4000-8000-000000000000"

    # --- signed out: login page, wrong password, throttled, the start page sends to the login
    page.context.clear_cookies()
    w.get("/", "/", "signed out: sent to the login")
    w.get("/login", "/login", "login page")
    w.send(
        "POST",
        "/login",
        "/login",
        "wrong password",
        form={"login": "niemand@hv-muster.de", "password": "x"},
        htmx=False,
        csrf=False,
        status=401,
        expect_text="Anmeldung fehlgeschlagen",
    )
    blocked = f"gesperrt-{uuid.uuid4().hex[:8]}@hv-muster.de"
    for _ in range(5):
        page.request.post(base + "/login", form={"login": blocked, "password": "falsch"}, max_redirects=0)
    w.send(
        "POST",
        "/login",
        "/login",
        "throttled",
        form={"login": blocked, "password": "falsch"},
        htmx=False,
        csrf=False,
        status=429,
        expect_text="Zu viele fehlgeschlagene Anmeldeversuche",
    )
    login()
    w.record("POST", "/login", "signed in (login helper)")
    w.get("/", "/", "signed in: overview")

    # --- overview, new letter (refused, then a draft for the empty states)
    w.get("/serienbriefe", "/serienbriefe", "overview with letters")
    w.get("/serienbriefe/neu", "/serienbriefe/neu", "new letter form")
    w.send(
        "POST",
        "/serienbriefe/neu",
        "/serienbriefe/neu",
        "empty title",
        form={"csrf_token": w.token()},
        htmx=False,
        status=422,
        expect_text="Titel",
    )
    w.send(
        "POST",
        "/serienbriefe/neu",
        "/serienbriefe/neu",
        "past the end of the period",
        form={"csrf_token": w.token(), "title": "Abgrenzung", "period_start": "2025-12-31", "period_end": "2025-01-01"},
        htmx=False,
        status=422,
    )
    page.goto(base + "/serienbriefe/neu")
    type_id = page.locator("select[name=document_type_id] option").nth(1).get_attribute("value")
    w.send(
        "POST",
        "/serienbriefe/neu",
        "/serienbriefe/neu",
        "draft created",
        form={
            "csrf_token": w.token(),
            "title": "Entwurf für die Prüfung aller Seiten",
            "document_type_id": type_id,
            "groups": "owners",
            "cross_property": "on",
        },
        htmx=False,
        status=303,
    )
    draft = page.url.split("/")[-2]
    assert re.fullmatch(r"[0-9a-f-]{36}", draft), page.url
    d = f"/serienbriefe/{draft}"

    # --- the draft: every tab empty, its refusals
    w.get(L, d, "draft: sent to its first tab")
    for tab in ("dokumente", "pruefung", "einzelbriefe", "versand", "verlauf"):
        w.get(L + "/{tab}", f"{d}/{tab}", f"draft, tab {tab}")
    w.send("GET", L + "/fortschritt/status", f"{d}/fortschritt/status", "draft: progress fragment", csrf=False)
    w.send(
        "POST",
        L + "/dokumente",
        f"{d}/dokumente",
        "upload without a file",
        multipart={"csrf_token": w.token(), "strategy": "address_block"},
        htmx=False,
        status=422,
        expect_text="Bitte mindestens eine PDF-Datei auswählen",
    )
    w.send(
        "POST",
        L + "/dokumente",
        f"{d}/dokumente",
        "invalid split rule",
        multipart={"csrf_token": w.token(), "strategy": "fixed_pages", "pages_per_letter": "zwei"},
        htmx=False,
        status=422,
        expect_text="Trennregel",
    )
    w.send("POST", L + "/aufteilen", f"{d}/aufteilen", "draft without documents", status=422)
    w.send("POST", L + "/bearbeiten", f"{d}/bearbeiten", "draft cannot be reopened", status=422)
    w.send("POST", L + "/endkontrolle", f"{d}/endkontrolle", "draft: no review to confirm", status=422)
    w.send("POST", L + "/freigeben", f"{d}/freigeben", "draft cannot be released", status=422)
    w.send("POST", L + "/erneut-anstossen", f"{d}/erneut-anstossen", "draft: nothing stuck", status=(204, 422))
    w.send(
        "POST",
        L + "/versand/kosten",
        f"{d}/versand/kosten",
        "draft: nothing released to estimate",
        form={"recipient_filter": "all"},
        status=200,
        expect_text="Keine freigegebenen Einzelbriefe",
    )
    w.send("POST", L + "/loeschen", f"{d}/loeschen", "draft deleted", form={"reason": "Test"}, status=204)

    # --- the released property letter: every tab with content, fragments, downloads
    w.get(L, f"/serienbriefe/{lid}", "released: sent to Einzelbriefe")
    for tab in ("dokumente", "pruefung", "einzelbriefe", "versand", "verlauf"):
        w.get(L + "/{tab}", f"/serienbriefe/{lid}/{tab}", f"released, tab {tab}")
    for query in ("?filter=zur-pruefung", "?filter=nicht-zugeordnet", "?offset=1000"):
        w.get(L + "/{tab}", f"/serienbriefe/{lid}/pruefung{query}", f"review list {query}")
    w.get(L + "/{tab}", f"/serienbriefe/{lid}/gibt-es-nicht", "unknown tab", status=404)
    w.get(L, f"/serienbriefe/{missing}", "unknown letter", status=404)
    w.get(L + "/{tab}", f"/serienbriefe/{missing}/verlauf", "unknown letter's tab", status=404)
    w.send("GET", L + "/fortschritt/status", f"/serienbriefe/{lid}/fortschritt/status", "released", csrf=False)

    page.goto(f"{base}/serienbriefe/{lid}/dokumente")
    doc_pdf = first_href(page, r"/dokumente/[^/]+/pdf$")
    doc_id = doc_pdf.split("/")[-2]
    page.goto(f"{base}/serienbriefe/{lid}/pruefung")
    part_id = str(page.locator("[data-testid=part]").first.get_attribute("data-part-id"))
    w.token()
    for route, url in (
        (L + "/dokumente/{document_id}/pdf", doc_pdf),
        (L + "/teile/{part_id}/pdf", f"/serienbriefe/{lid}/teile/{part_id}/pdf"),
    ):
        response = page.request.get(base + url)
        assert response.status == 200, url
        assert response.body().startswith(b"%PDF-"), url
        w.record("GET", route, "PDF")
    w.get(L + "/dokumente/{document_id}/pdf", f"/serienbriefe/{lid}/dokumente/unbekannt/pdf", "unknown document")
    w.get(L + "/teile/{part_id}/pdf", f"/serienbriefe/{lid}/teile/unbekannt/pdf", "unknown part")
    thumb = page.request.get(f"{base}/serienbriefe/{lid}/teile/{part_id}/vorschau")
    assert thumb.status == 200
    assert thumb.headers["content-type"].startswith("image/png")
    w.record("GET", L + "/teile/{part_id}/vorschau", "thumbnail")
    # No thumbnail (unknown part, erased or expired pack): the German placeholder image, not a broken <img>
    placeholder = page.request.get(f"{base}/serienbriefe/{lid}/teile/unbekannt/vorschau")
    w.expect(
        placeholder.status == 200
        and placeholder.headers["content-type"].startswith("image/svg+xml")
        and "Keine Vorschau" in placeholder.text(),
        f"unknown part's thumbnail: {placeholder.status} {placeholder.headers.get('content-type')}",
    )
    w.record("GET", L + "/teile/{part_id}/vorschau", "unknown part: German placeholder image")

    page.goto(f"{base}/serienbriefe/{lid}/pruefung")
    p = f"/serienbriefe/{lid}/teile/{part_id}"
    # issue #16: the contact search finds by name, number, street and property
    for q, state, shown in (
        ("Schmidt", "by name", "Anna Schmidt"),
        ("K-1001", "by number", "Hans Müller"),
        ("Lindenstraße", "by street", "Hans Müller"),
        ("WEG Lindenstraße 5", "by property", "Jonas Becker"),
        ("zzzz", "nothing found", "Keine Kontakte gefunden"),
    ):
        w.send(
            "GET",
            L + "/teile/{part_id}/kontaktsuche",
            f"{p}/kontaktsuche?q={q}",
            f"contact search {state}",
            csrf=False,
            status=200,
            expect_text=shown,
        )
    w.send(
        "GET",
        L + "/teile/{part_id}/vertraege",
        f"{p}/vertraege?contact_id={contact_ids['mueller']}",
        "a contact's contracts",
        csrf=False,
        status=200,
        expect_text="WE 01",
    )
    w.send(
        "GET",
        L + "/teile/{part_id}/vertraege",
        f"{p}/vertraege",
        "contact missing (422)",
        csrf=False,
        status=422,
        expect_text="unvollständig",
    )
    w.send(
        "POST",
        L + "/teile/{part_id}/zuordnen",
        f"{p}/zuordnen",
        "released: no reassignment",
        form={"contact_id": contact_ids["becker"]},
        status=422,
    )
    w.send("POST", L + "/teile/{part_id}/verwerfen", f"{p}/verwerfen", "released: no discard", status=422)
    w.send("POST", L + "/teile/{part_id}/aufheben", f"{p}/aufheben", "released: no unassign", status=422)
    bulk = f"/serienbriefe/{lid}/pruefung/sammelaktion"
    w.send(
        "POST",
        L + "/pruefung/sammelaktion/{action}",
        f"{bulk}/sichere-vorschlaege-uebernehmen",
        "released: no bulk action",
        status=422,
    )
    w.send("POST", L + "/pruefung/sammelaktion/{action}", f"{bulk}/gibt-es-nicht", "unknown bulk action", status=404)
    w.send(
        "POST",
        L + "/pruefung/sammelaktion/{bulk_id}/rueckgaengig",
        f"{bulk}/{uuid.uuid4()}/rueckgaengig",
        "unknown bulk action to undo",
        status=422,
    )
    w.send("POST", L + "/endkontrolle", f"/serienbriefe/{lid}/endkontrolle", "released: review closed", status=422)
    w.send("POST", L + "/freigeben", f"/serienbriefe/{lid}/freigeben", "released twice", status=422)
    w.send("POST", L + "/bearbeiten", f"/serienbriefe/{lid}/bearbeiten", "released: no reopening", status=422)
    w.send("POST", L + "/aufteilen", f"/serienbriefe/{lid}/aufteilen", "released: no split", status=422)
    w.send(
        "POST",
        L + "/erneut-anstossen",
        f"/serienbriefe/{missing}/erneut-anstossen",
        "unknown letter",
        status=(404, 422, 502),
    )
    w.send(
        "POST",
        L + "/dokumente/reihenfolge",
        f"/serienbriefe/{lid}/dokumente/reihenfolge",
        "released: order fixed",
        form={"order": doc_id},
        status=422,
    )
    w.send(
        "POST",
        L + "/dokumente/{document_id}/regel",
        f"/serienbriefe/{lid}/dokumente/{doc_id}/regel",
        "released: rule fixed",
        form={"role": "split", "strategy": "address_block"},
        status=422,
    )
    w.send(
        "POST",
        L + "/dokumente/{document_id}/entfernen",
        f"/serienbriefe/{lid}/dokumente/{doc_id}/entfernen",
        "released: document stays",
        status=422,
    )
    w.send(
        "POST",
        L + "/dokumente",
        f"/serienbriefe/{lid}/dokumente",
        "released: no upload",
        multipart={
            "csrf_token": w.token(),
            "strategy": "address_block",
            "files": {"name": "nachtrag.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF"},
        },
        htmx=False,
        status=422,
    )
    w.send(
        "POST",
        L + "/widerrufen",
        f"/serienbriefe/{lid}/widerrufen",
        "revoke without a reason",
        form={"item_id": "x"},
        status=422,
        expect_text="Begründung",
    )
    w.send("POST", L + "/loeschen", f"/serienbriefe/{missing}/loeschen", "unknown letter", status=(404, 422))

    # --- postal dispatch: estimates and refusals
    v = f"/serienbriefe/{lid}/versand"
    past = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()
    w.send(
        "POST",
        L + "/versand/kosten",
        f"{v}/kosten",
        "estimate",
        form={"recipient_filter": "all"},
        status=200,
        expect_text="€",
    )
    w.send(
        "POST",
        L + "/versand/kosten",
        f"{v}/kosten",
        "past dispatch date",
        form={"recipient_filter": "all", "dispatch_date": past},
        status=200,
        expect_text="Vergangenheit",
    )
    w.send(
        "POST",
        L + "/versand/kosten",
        f"{v}/kosten",
        "invalid options",
        form={"recipient_filter": "all", "not_viewed_working_days": "fünf"},
        status=200,
        expect_text="ungültig",
    )
    w.send(
        "POST",
        L + "/versand",
        v,
        "order with a past date",
        form={"dispatch_date": past},
        status=422,
        expect_text="Vergangenheit",
    )
    w.send("POST", L + "/versand", v, "second order refused", form={"recipient_filter": "all"}, status=422)

    # --- portal invitations (the invitation test sent Lea Yilmaz one and she registered)
    w.send(
        "POST",
        "/kontakte/{contact_id}/einladung",
        f"/kontakte/{contact_ids['yilmaz']}/einladung",
        "already has a login",
        status=200,
        expect_text="hat bereits einen Zugang",
    )
    w.send(
        "POST",
        "/kontakte/{contact_id}/einladung",
        f"/kontakte/{contact_ids['becker']}/einladung",
        "sent",
        status=200,
        expect_text="versandt",
    )
    w.send(
        "POST",
        "/kontakte/{contact_id}/einladung",
        "/kontakte/C-gibt-es-nicht/einladung",
        "unknown contact",
        status=200,
        expect_text="Nicht gefunden",
    )
    w.send(
        "POST",
        "/kontakte/{contact_id}/einladung",
        f"/kontakte/{contact_ids['becker']}/einladung",
        "without the security token",
        csrf=False,
        status=403,
        expect_text="Sicherheitstoken",
    )

    # --- held e-mails (role "release"): nothing held for this account (the replay guard is driven through the real
    # notifier in services/notifier/tests/integration/test_notifier_replay_guard_real.py), "Jetzt senden" of a mail
    # that is not held, and without the security token
    page.goto(base + "/serienbriefe")
    w.expect(
        page.locator('nav a[href="/betrieb/zurueckgehaltene-emails"]').count() == 1,
        "the navigation has no link to the held e-mails",
    )
    w.get("/betrieb/zurueckgehaltene-emails", "/betrieb/zurueckgehaltene-emails", "nothing held", status=200)
    w.expect(
        "Keine zurückgehaltenen E-Mails" in page.inner_text("body"),
        f"held e-mails: empty state missing:\n{page.inner_text('body')[:2000]}",
    )
    w.send(
        "POST",
        "/betrieb/zurueckgehaltene-emails/{mail_id}/senden",
        f"/betrieb/zurueckgehaltene-emails/{missing}/senden",
        "not held",
        htmx=False,
        status=422,
        expect_text="nicht mehr zurückgehalten",
    )
    w.send(
        "POST",
        "/betrieb/zurueckgehaltene-emails/{mail_id}/senden",
        f"/betrieb/zurueckgehaltene-emails/{missing}/senden",
        "without the security token",
        htmx=False,
        csrf=False,
        status=403,
        expect_text="Sicherheitstoken",
    )

    # --- admin routes (JSON for admins): a staff member without the role gets a German page
    w.get("/admin/dead-letters", "/admin/dead-letters", "no admin role", status=403)
    w.get(
        "/admin/dead-letters/{topic}/{partition}/{offset}",
        "/admin/dead-letters/letters.events/0/1",
        "no admin role",
        status=403,
    )
    w.send(
        "POST",
        "/admin/dead-letters/redrive",
        "/admin/dead-letters/redrive",
        "no admin role",
        json={"topic": "letters.events", "coordinates": ["0:1"]},
        status=403,
        expect_text="Administration",
    )

    # --- addresses that do not exist, wrong methods
    w.get("404", "/gibt-es-nicht", "unknown address", status=404)
    w.send("GET", "404", "/gibt-es-auch-nicht", "unknown address (htmx)", csrf=False, status=404)
    w.send("DELETE", "405", "/serienbriefe", "wrong method", csrf=False, status=405)

    # --- signing out: back at the login; the old session is over
    page.goto(base + "/serienbriefe")
    w.send("POST", "/logout", "/logout", "signed out", htmx=False, status=303)
    expect(page.locator("input[name=login]")).to_be_visible()
    return w
