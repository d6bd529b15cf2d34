"""The recipient in Debian's chromium against the real portal-publisher and notifier: from the notification e-mail
to the downloaded PDF, forgotten password by e-mail, recipient A never sees B's letter, a revoked letter disappears,
an expired link explains itself. Every page is checked with axe-core (WCAG 2.1 A/AA) and for English or raw data.

Screenshots go to a temp folder unless SMARTPOST_SCREENSHOTS names the README's folder (docs/screenshots).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright
from pydantic import SecretStr

from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.settings import Settings
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.routes import route_table

from .conftest import AXE, CHROMIUM, CHROMIUM_ARGS, COMPANY, RecipientSystem, link_in

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.real, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

SCREENSHOTS = Path(os.environ.get("SMARTPOST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "smartpost-screenshots")
PASSWORD = "Sonnenschein-2026!"
# Visible text that must never reach a recipient: English service messages, raw JSON, escaped umlauts.
LEAKS = re.compile(
    r"\{\s*\"detail\"|\\u00|Traceback|\bNot Found\b|\bnot found\b|\binvalid\b|\bexpired\b|\bError\b|\berror\b|"
    r"\bforbidden\b|\bunauthori[sz]ed\b|\bshould\b|\bmust\b|\bplease\b|\bdocument\b|\bpassword\b|\blogin\b|"
    r"\bthe\b|\bfailed\b|\bInternal Server\b|None\b|null\b",
)
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PAGES_CHECKED: list[str] = []


def check_page(page: Page, what: str) -> None:
    """German and human (no English service text, no raw JSON) and no WCAG 2.1 AA violation found by axe-core."""
    text = page.inner_text("body")
    leak = LEAKS.search(text)
    assert leak is None, f"{what}: '{leak.group(0)}' in the page text:\n{text}"
    assert page.evaluate("document.documentElement.lang") == "de"
    page.wait_for_timeout(100)  # console messages of the page arrive asynchronously
    assert CSP_VIOLATIONS == [], f"{what}: Content-Security-Policy violations: {CSP_VIOLATIONS}"
    # axe-core is evaluated from outside the page (a <script> tag would be refused by the portal's policy).
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))",
        WCAG,
    )
    assert result == [], f"{what}: axe-core WCAG 2.1 AA violations: {result}"
    PAGES_CHECKED.append(what)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser, *, phone: bool = False) -> Page:
    if phone:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="de-DE",
            accept_downloads=True,
        )
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="de-DE", accept_downloads=True)
    context.on("console", _record_csp)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("request", _record_navigation)
    return page


# Every page the browser opened in these tests (method, path): compared with the portal's route table at the end.
NAVIGATED: set[tuple[str, str]] = set()


def _record_navigation(request: Request) -> None:
    if request.is_navigation_request():
        NAVIGATED.add((request.method, urlsplit(request.url).path))


# Every Content-Security-Policy violation the portal's pages report (chromium logs each refused inline script,
# style or foreign resource to the console); check_page fails on any.
CSP_VIOLATIONS: list[str] = []


def _record_csp(message: Any) -> None:
    if "Content Security Policy" in message.text:
        CSP_VIOLATIONS.append(message.text)


# Passwords of the recipients who have a login already (an invitation never takes over an existing login).
PASSWORDS: dict[str, str] = {}


def sign_in(page: Page, recipients: RecipientSystem, key: str) -> None:
    """From the login page: log in if this recipient has a login already, otherwise redeem an invitation."""
    if key not in PASSWORDS:
        redeem(page, recipients, key)
        return
    page.get_by_label("Benutzername (meist Ihre E-Mail-Adresse)").fill(recipients.people[key].email)
    page.get_by_label("Passwort").fill(PASSWORDS[key])
    page.get_by_role("button", name="Anmelden").click()


def redeem(page: Page, recipients: RecipientSystem, key: str) -> None:
    """From the login page: follow 'Einladungscode einlösen' and set login and password."""
    person = recipients.people[key]
    page.get_by_role("link", name="Einladungscode einlösen").click()
    expect(page.get_by_role("heading", name="Einladungscode einlösen")).to_be_visible()
    page.get_by_label("Einladungscode").fill(recipients.invitation(key).lower().replace("-", " "))
    page.get_by_label("Benutzername (z. B. Ihre E-Mail-Adresse)").fill(person.email)
    page.get_by_label("Passwort", exact=True).fill(PASSWORD)
    page.get_by_label("Passwort wiederholen").fill(PASSWORD)
    page.get_by_role("button", name="Zugang einrichten").click()
    expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
    PASSWORDS[key] = PASSWORD


def test_recipient_goes_from_the_email_link_to_the_downloaded_pdf(chromium: Browser, recipients: RecipientSystem):  # noqa: PLR0915 - one walk through the portal
    anna = recipients.people["anna"]
    mail = recipients.wait_for_mail(anna.email, "Neues Dokument")
    assert COMPANY in str(mail["Subject"])
    link = link_in(mail, r"http://127\.0\.0\.1:\d+/kundenportal/\S+/dokumente/[0-9a-f-]+")

    page = new_page(chromium)
    page.goto(link)
    # Not logged in: the login page of the management company, which comes back to the document afterwards.
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    expect(page.get_by_test_id("firma")).to_have_text(COMPANY)
    check_page(page, "Anmelden")
    shot(page, "portal-01-anmelden")
    page.get_by_role("link", name="Einladungscode einlösen").click()
    check_page(page, "Einladungscode einlösen")
    shot(page, "portal-02-einladung")
    page.go_back()

    # A typo in the password repeat: a German message in the form, the input kept.
    page.get_by_role("link", name="Einladungscode einlösen").click()
    page.get_by_label("Einladungscode").fill(recipients.invitation("anna"))
    page.get_by_label("Benutzername (z. B. Ihre E-Mail-Adresse)").fill(anna.email)
    page.get_by_label("Passwort", exact=True).fill(PASSWORD)
    page.get_by_label("Passwort wiederholen").fill(PASSWORD + "x")
    page.get_by_role("button", name="Zugang einrichten").click()
    expect(page.get_by_role("alert")).to_have_text("Die beiden Passwörter stimmen nicht überein.")
    check_page(page, "Einladung mit Fehler")

    page.goto(link)
    redeem(page, recipients, "anna")
    # Straight to the document of the mail.
    expect(page.get_by_role("heading", name="Jahresabrechnung 2025")).to_be_visible()
    expect(page.get_by_test_id("liegenschaft")).to_have_text(anna.property_name)
    expect(page.get_by_test_id("einheit")).to_have_text(anna.unit_number)
    expect(page.get_by_test_id("status")).to_have_text("neu, noch nicht geöffnet")
    check_page(page, "Dokument")
    shot(page, "portal-04-dokument")

    page.get_by_role("link", name="Posteingang").click()
    row = page.get_by_test_id("dokument")
    expect(row).to_have_count(1)
    expect(row.locator(".neu")).to_have_text("Neu")
    expect(row.get_by_test_id("ort")).to_have_text(f"{anna.property_name}, Einheit {anna.unit_number}")
    expect(page.get_by_role("navigation", name="Ordner")).to_contain_text("Jahresabrechnung")
    check_page(page, "Posteingang")
    shot(page, "portal-03-posteingang")

    assert [d["first_viewed_at"] for d in recipients.deliveries() if d["contact_id"] == anna.contact_id] == [None]
    row.get_by_role("link").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="PDF herunterladen").click()
    download = download_info.value
    saved = Path(tempfile.mkdtemp()) / "brief.pdf"
    download.save_as(saved)
    assert saved.read_bytes() == anna.pdf
    # Proof of delivery for the staff, and no unread marker any more.
    viewed = [d for d in recipients.deliveries() if d["contact_id"] == anna.contact_id]
    assert viewed[0]["first_viewed_at"] is not None
    page.get_by_role("link", name="Posteingang").click()
    expect(page.get_by_test_id("dokument").locator(".neu")).to_have_count(0)
    expect(page.get_by_text("Alles gelesen")).to_be_visible()

    # The same inbox on a phone.
    phone = new_page(chromium, phone=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(page.url)
    expect(phone.get_by_test_id("dokument")).to_have_count(1)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the inbox scrolls sideways on a phone ({width}px)"
    check_page(phone, "Posteingang (Telefon)")
    shot(phone, "portal-05-posteingang-telefon")
    phone.context.close()

    # An expired download link explains itself (links live 5 s in this test).
    response = page.context.request.get(
        f"{recipients.portal_url}/kundenportal/{recipients.account_id}/dokumente/{viewed[0]['document_id']}/herunterladen",
        max_redirects=0,
    )
    assert response.status == 303
    signed = response.headers["location"]
    time.sleep(5.5)
    page.goto(f"{recipients.portal_url}{signed}")
    expect(page.get_by_role("heading", name="Link nicht mehr gültig")).to_be_visible()
    expect(page.get_by_test_id("meldung")).to_contain_text("Download-Link ist abgelaufen")
    check_page(page, "Abgelaufener Download-Link")
    shot(page, "portal-06-link-abgelaufen")
    page.get_by_role("link", name="Zum Posteingang").click()
    expect(page.get_by_test_id("dokument")).to_have_count(1)
    page.context.close()


def test_forgotten_password_by_email(chromium: Browser, recipients: RecipientSystem):
    page = new_page(chromium)
    base = f"{recipients.portal_url}/kundenportal/{recipients.account_id}"
    person = recipients.people["bert"]
    page.goto(f"{base}/anmelden")
    redeem(page, recipients, "bert")
    expect(page.get_by_role("status")).to_have_text("Willkommen in Ihrem Kundenportal. Ihr Zugang ist eingerichtet.")
    # A second invitation never takes over the existing login: the portal points to the password reset.
    page.goto(f"{base}/einladung")
    page.get_by_label("Einladungscode").fill(recipients.invitation("bert"))
    page.get_by_label("Benutzername (z. B. Ihre E-Mail-Adresse)").fill("jemand-anders@example.org")
    page.get_by_label("Passwort", exact=True).fill(PASSWORD)
    page.get_by_label("Passwort wiederholen").fill(PASSWORD)
    page.get_by_role("button", name="Zugang einrichten").click()
    expect(page.get_by_role("alert")).to_contain_text("Sie haben schon einen Zugang zum Kundenportal")
    check_page(page, "Einladung für bestehenden Zugang")
    page.goto(f"{base}/posteingang")
    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("status")).to_have_text("Sie haben sich abgemeldet.")

    page.get_by_role("link", name="Passwort vergessen?").click()
    check_page(page, "Passwort vergessen")
    page.get_by_label("Benutzername (meist Ihre E-Mail-Adresse)").fill(person.email)
    page.get_by_role("button", name="Link anfordern").click()
    expect(page.get_by_test_id("reset-gesendet")).to_be_visible()
    check_page(page, "Passwort vergessen (gesendet)")
    mail = recipients.wait_for_mail(person.email, "Neues Passwort", timeout=30)
    link = link_in(mail, r"http://\S+/passwort-neu\?t=\S+")
    page.goto(link)
    check_page(page, "Neues Passwort")
    new_password = "Ganz-neues-Passwort-7"
    page.get_by_label("Neues Passwort").fill(new_password)
    page.get_by_label("Passwort wiederholen").fill(new_password)
    page.get_by_role("button", name="Passwort speichern").click()
    expect(page.get_by_role("status")).to_have_text("Ihr neues Passwort ist gespeichert. Sie sind angemeldet.")
    PASSWORDS["bert"] = new_password
    # The link works once.
    page.goto(link)
    expect(page.get_by_test_id("meldung")).to_contain_text("schon benutzt")
    check_page(page, "Benutzter Passwort-Link")
    page.context.close()


def test_recipient_a_never_sees_b_and_a_revoked_letter_disappears(chromium: Browser, recipients: RecipientSystem):
    base = f"{recipients.portal_url}/kundenportal/{recipients.account_id}"
    deliveries = {d["contact_id"]: d for d in recipients.deliveries()}
    anna, bert = recipients.people["anna"], recipients.people["bert"]
    bert_doc = deliveries[bert.contact_id]["document_id"]

    page = new_page(chromium)
    page.goto(f"{base}/anmelden")
    page.get_by_label("Benutzername (meist Ihre E-Mail-Adresse)").fill(anna.email)
    page.get_by_label("Passwort").fill("falsches-passwort")
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("alert")).to_have_text("Benutzername oder Passwort ist falsch.")
    check_page(page, "Anmeldung fehlgeschlagen")
    page.get_by_label("Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_test_id("dokument")).to_have_count(1)
    expect(page.get_by_test_id("dokument")).to_contain_text(anna.property_name)
    expect(page.locator("body")).not_to_contain_text(bert.property_name)
    page.goto(f"{base}/dokumente/{bert_doc}")
    expect(page.get_by_role("heading", name="Dokument nicht gefunden")).to_be_visible()
    expect(page.get_by_test_id("vorgangsnummer")).to_have_text(re.compile(r"^[0-9a-f]{10}$"))
    check_page(page, "Fremdes Dokument")
    page.goto(f"{base}/dokumente/{bert_doc}/herunterladen")
    expect(page.get_by_role("heading", name="Dokument nicht gefunden")).to_be_visible()
    page.goto(f"{base}/gibt-es-nicht")
    expect(page.get_by_role("heading", name="Seite nicht gefunden")).to_be_visible()
    check_page(page, "Unbekannte Seite")
    page.context.close()

    # Bert has his letter until the management company revokes it; then it is gone from list and link.
    page = new_page(chromium)
    page.goto(f"{base}/anmelden")
    sign_in(page, recipients, "bert")
    expect(page.get_by_test_id("dokument")).to_have_count(1)
    recipients.revoke("bert")
    deadline = time.monotonic() + 60
    while page.get_by_test_id("dokument").count() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(page.get_by_test_id("leer")).to_be_visible()
    check_page(page, "Leerer Posteingang")
    page.goto(f"{base}/dokumente/{bert_doc}")
    expect(page.get_by_role("heading", name="Dokument zurückgezogen")).to_be_visible()
    check_page(page, "Zurückgezogenes Dokument")
    shot(page, "portal-07-zurueckgezogen")
    page.context.close()
    assert len(PAGES_CHECKED) >= 15


def submit_without_csrf(page: Page, button: str) -> None:
    """Send the page's form as a forged or stale one would arrive: without the CSRF token."""
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(i => i.value = '')")
    page.get_by_role("button", name=button).click()


def test_every_recipient_page_is_covered_and_german(  # noqa: PLR0915 - one state after the other
    chromium: Browser, recipients: RecipientSystem, tmp_path: Path
):
    """Issue #16: the states the other tests do not reach, then every route of the web portal must have been opened
    by the browser in this module (a new page without a browser test fails here). Each state: German, no raw data,
    WCAG 2.1 AA (axe-core)."""
    base = f"{recipients.portal_url}/kundenportal/{recipients.account_id}"
    page = new_page(chromium)
    page.goto(base)  # the portal's address alone: the inbox asks for the login
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    page.goto(base + "/")
    check_page(page, "Portal-Adresse")
    page.goto(f"{base}/anmelden?hinweis=sitzung-abgelaufen")
    expect(page.get_by_role("status")).to_contain_text("Sitzung ist abgelaufen")
    check_page(page, "Sitzung abgelaufen")
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("alert")).to_contain_text("Bitte geben Sie Benutzername und Passwort ein.")
    check_page(page, "Anmeldung ohne Angaben")
    submit_without_csrf(page, "Anmelden")
    expect(page.get_by_role("heading", name="Formular abgelaufen")).to_be_visible()
    check_page(page, "Formular ohne Sicherheitsmerkmal")

    page.goto(f"{base}/einladung")
    page.get_by_role("button", name="Zugang einrichten").click()
    expect(page.get_by_role("alert")).to_contain_text("Bitte geben Sie Ihren Einladungscode ein.")
    check_page(page, "Einladung ohne Code")
    page.get_by_label("Einladungscode").fill("AAAA-BBBB-CCCC-DDDD")
    page.get_by_label("Benutzername (z. B. Ihre E-Mail-Adresse)").fill("niemand@example.org")
    page.get_by_label("Passwort", exact=True).fill(PASSWORD)
    page.get_by_label("Passwort wiederholen").fill(PASSWORD)
    page.get_by_role("button", name="Zugang einrichten").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check_page(page, "Unbekannter Einladungscode")

    page.goto(f"{base}/passwort-vergessen")
    page.get_by_role("button", name="Link anfordern").click()
    expect(page.get_by_role("alert")).to_contain_text("Bitte geben Sie Ihren Benutzernamen ein.")
    check_page(page, "Passwort vergessen ohne Angabe")
    page.goto(f"{base}/passwort-neu?t=ausgedacht")
    expect(page.get_by_test_id("meldung")).to_be_visible()
    check_page(page, "Ausgedachter Passwort-Link")
    page.goto(f"{base}/passwort-neu")
    check_page(page, "Passwort-Link ohne Schlüssel")

    # a form posted to the new-password page without a valid link (a stale tab): German, no raw data
    page.goto(f"{base}/anmelden")
    page.evaluate(
        """base => { const f = document.createElement('form'); f.method = 'post'; f.action = base + '/passwort-neu';
           for (const [k, v] of [['t', 'alt'], ['password', 'x'], ['password_repeat', 'x'],
             ['csrf_token', document.querySelector('input[name=csrf_token]').value]]) {
             const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
           document.body.appendChild(f); f.submit(); }""",
        base,
    )
    page.wait_for_load_state()
    check_page(page, "Neues Passwort mit ungültigem Link")

    # signed in: a folder of the inbox, an unknown document, a wrong method, an unknown management company
    page.goto(f"{base}/anmelden")
    sign_in(page, recipients, "anna")
    expect(page.get_by_test_id("dokument")).to_have_count(1)
    page.goto(f"{base}/posteingang?ordner=Abrechnungen/Jahresabrechnung")
    expect(page.get_by_test_id("dokument")).to_have_count(1)
    check_page(page, "Ordner")
    page.goto(f"{base}/posteingang?ordner=Gibt/Es/Nicht")
    check_page(page, "Leerer Ordner")
    page.goto(f"{base}/dokumente/00000000-0000-4000-8000-000000000000")
    expect(page.get_by_role("heading", name="Dokument nicht gefunden")).to_be_visible()
    check_page(page, "Unbekanntes Dokument")
    page.goto(f"{base}/dokumente/00000000-0000-4000-8000-000000000000/herunterladen")
    check_page(page, "Unbekanntes Dokument herunterladen")
    page.goto(f"{base}/abmelden")  # a GET on the logout form's address
    expect(page.get_by_role("heading", name="Diese Anfrage ist so nicht möglich")).to_be_visible()
    expect(page.get_by_test_id("vorgangsnummer")).to_have_text(re.compile(r"^[0-9a-f]{10}$"))
    check_page(page, "Falsche Methode")
    page.goto(f"{recipients.portal_url}/kundenportal/kein%20konto!/anmelden")
    check_page(page, "Unbekannte Hausverwaltung")
    page.goto(f"{base}/posteingang")
    submit_without_csrf(page, "Abmelden")
    expect(page.get_by_role("heading", name="Formular abgelaufen")).to_be_visible()
    page.goto(f"{base}/posteingang")
    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("status")).to_have_text("Sie haben sich abgemeldet.")
    check_page(page, "Abgemeldet")
    page.goto(f"{base}/posteingang")  # after logout: the login again
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    page.context.close()

    # every route of the web portal was opened by the browser (this test or the ones before it)
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'routes.sqlite3'}",
            log_json=False,
            download_link_secret=SecretStr("x" * 32),
        ),
        store=MemoryStore(),
    )
    web_routes = {(m, p) for m, p in route_table(app) if p.startswith("/kundenportal/")}
    assert len(web_routes) >= 14, web_routes
    # the signed download link (/portal/downloads/...) is opened by the browser as well
    web_routes.add(("GET", "/portal/downloads/{document_id}"))
    assert ("GET", "/portal/downloads/{document_id}") in route_table(app)

    def opened(method: str, template: str) -> bool:
        pattern = re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template)) + "$")
        return any(m == method and pattern.match(path) for m, path in NAVIGATED)

    missing = sorted(route for route in web_routes if not opened(*route))
    assert missing == [], f"recipient pages no browser test opened: {missing}"
    assert len(PAGES_CHECKED) >= 34, PAGES_CHECKED
