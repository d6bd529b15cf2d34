"""End to end in Debian's chromium against the real services: the staff walk the whole SmartPost flow for a
property letter and a cross-property letter, and the gateway answers bad input in the page.

Screenshots of the main screens are written to docs/screenshots/ (used by the gateway README).
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pikepdf
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from smartpost_gateway.app import create_app
from smartpost_gateway.settings import Settings
from smartpost_shared.sample_letters import write_serial_letter
from smartpost_shared.testing.routes import route_table

from .conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, RunningSystem, watch_csp
from .staff_walk import NOT_PAGES, walk

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.real, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

# Tests must not dirty the checkout: screenshots go to a temp folder unless asked for the README's folder
# (SMARTPOST_SCREENSHOTS=docs/screenshots bash scripts/test.sh services/gateway).
SCREENSHOTS = Path(os.environ.get("SMARTPOST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "smartpost-screenshots")
FLOW_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser_page(running: RunningSystem) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # 1280 px: every page and table must fit without sideways scrolling (checked with every screenshot).
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="de-DE", accept_downloads=True)
        watch_csp(context, CSP_VIOLATIONS)
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


CSP_VIOLATIONS: list[str] = []


@pytest.fixture(autouse=True)
def no_csp_violation(browser_page: Page) -> Iterator[None]:
    """Every page the flow visits runs under the gateway's Content-Security-Policy without a single violation."""
    CSP_VIOLATIONS.clear()
    yield
    browser_page.wait_for_timeout(200)  # console messages of the last page arrive asynchronously
    assert CSP_VIOLATIONS == [], f"Content-Security-Policy violations: {CSP_VIOLATIONS}"


# English service wording or raw data that must never reach a staff page's visible text.
LEAKS = re.compile(
    r"\\u00|\{\s*\"detail\"|String should|\bnot found\b|\bmanual\b|\bneeds a property\b|\binvalid\b|"
    r"\berror\b|\bError\b|a cover page|\bSeiten, üblich sind \d+\.\d|\(1 Seiten|Traceback|Internal Server"
)
PAGES_CHECKED: list[str] = []
STATE: dict[str, str] = {}


def check_german(page: Page, what: str) -> None:
    """Every state a screenshot records is German: no English service message, no raw JSON or escapes."""
    text = page.inner_text("body")
    leak = LEAKS.search(text)
    assert leak is None, f"{what}: '{leak.group(0)}' in the visible text"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"{what}: the page is {width}px wide, more than the 1280px window"
    PAGES_CHECKED.append(what)


def shot(page: Page, name: str) -> None:
    check_german(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page: Page, running: RunningSystem, who: str = "anna") -> None:
    page.goto(f"{running.gateway_url}/login")
    page.fill("input[name=login]", running.users[who])
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Anmelden')")
    expect(page).to_have_url(re.compile(r"/serienbriefe$"))


def new_letter(page: Page, running: RunningSystem, title: str, *, cross: bool, doc_type: str | None) -> str:
    page.click("text=Neuer Serienbrief >> nth=0")
    expect(page.locator("h1")).to_have_text("Neuer Serienbrief")
    page.fill("input[name=title]", title)
    if doc_type:
        page.fill("input[name=new_document_type]", doc_type)
    else:
        page.select_option("select[name=document_type_id]", index=1)
    if cross:
        page.check("#cross-property")
        expect(page.locator("#property-select")).to_be_disabled()
        shot(page, "02-neuer-serienbrief-liegenschaftsuebergreifend")
    else:
        expect(page.locator("#property-select")).to_be_enabled()
        page.select_option("#property-select", running.demo.p1)
        shot(page, "02-neuer-serienbrief")
    page.click("button:has-text('Serienbrief anlegen')")
    expect(page).to_have_url(re.compile(r"/serienbriefe/[0-9a-f-]{36}/dokumente$"))
    return page.url.split("/")[-2]


def upload(page: Page, *paths: Path) -> None:
    page.set_input_files("#upload-form input[type=file]", [str(p) for p in paths])
    page.click("#upload-form button:has-text('Hochladen')")
    page.wait_for_load_state("networkidle")


def split_and_wait_for_review(page: Page) -> None:
    page.click("button:has-text('Aufteilen und Kontakte zuordnen')")
    expect(page).to_have_url(re.compile(r"/pruefung$"), timeout=FLOW_TIMEOUT_MS)
    expect(page.locator("[data-testid=part]").first).to_be_visible()


def part_by_name(page: Page, name: str):
    return page.locator("[data-testid=part]").filter(has=page.locator("[data-testid=assigned-contact]", has_text=name))


def test_property_letter_whole_flow(  # noqa: PLR0915 - the whole flow, step by step
    running: RunningSystem, browser_page: Page, tmp_path: Path
) -> None:
    page, demo = browser_page, running.demo
    # Three letters: Müller and Schmidt are known; "Erika Unbekannt" is in no master data (manual assignment).
    main_pdf = tmp_path / "hausgeld-2024.pdf"
    write_serial_letter(
        main_pdf,
        [demo.recipient("mueller"), demo.recipient("schmidt"), demo.recipient("fremd")],
        title="Hausgeldabrechnung 2024",
        seed=3,
        pages_per_letter=(1, 3),
    )
    attachment_pdf = tmp_path / "anlage-wirtschaftsplan.pdf"
    write_serial_letter(
        attachment_pdf, [demo.recipient("becker")], title="Wirtschaftsplan 2025", seed=4, pages_per_letter=(1, 1)
    )

    # 1. Login, 2. overview
    login(page, running)
    expect(page.locator("[data-testid=user]")).to_have_text("Anna Muster")
    shot(page, "01-uebersicht-leer")

    # 3. "Neuer Serienbrief" with a property
    letter_id = new_letter(page, running, "Hausgeldabrechnung 2024", cross=False, doc_type="Abrechnung")
    STATE["property_letter"] = letter_id  # the invitation and all-routes tests go on with this letter
    expect(page.locator("[data-testid=letter-scope]")).to_have_text("WEG Lindenstraße 5")

    # 4. Upload two PDFs, reorder by drag and drop, make the second an attachment
    upload(page, main_pdf, attachment_pdf)
    docs = page.locator("[data-testid=document]")
    expect(docs).to_have_count(2)
    # The running splitter proposed a rule for each file and the page says which and why.
    proposals = page.locator("[data-testid=split-proposal]")
    expect(proposals).to_have_count(2)
    expect(proposals.nth(0)).to_contain_text("„hausgeld-2024.pdf“: Vorschlag: „Anschriftfeld (Form B)“ – 3 Briefe")
    expect(docs.nth(0)).to_contain_text("hausgeld-2024.pdf")
    # dropping saves the new order at the letters service and reloads the page from it
    with page.expect_navigation():
        page.drag_and_drop(
            "[data-testid=document]:nth-child(2) .handle", "[data-testid=document]:nth-child(1) .dochead"
        )
    expect(page.locator("[data-testid=document]").nth(0)).to_contain_text("anlage-wirtschaftsplan.pdf")
    with page.expect_navigation():
        page.drag_and_drop(
            "[data-testid=document]:nth-child(2) .handle", "[data-testid=document]:nth-child(1) .dochead"
        )
    expect(page.locator("[data-testid=document]").nth(0)).to_contain_text("hausgeld-2024.pdf")
    second = page.locator("[data-testid=document]").nth(1)
    second.locator("summary:has-text('Trennregel ändern')").click()
    second.locator("select[name=role]").select_option("attachment")
    second.locator("button:has-text('Übernehmen')").click()
    expect(page.locator("[data-testid=document]").nth(1)).to_contain_text("Anlage")
    # the split rule of the cover letter: choose, see its explanation
    first = page.locator("[data-testid=document]").nth(0)
    first.locator("summary:has-text('Trennregel ändern')").click()
    first.locator("select[name=strategy]").select_option("identifier")
    expect(first.locator("[data-rule-help]")).to_contain_text("Kennung")
    first.locator("select[name=strategy]").select_option("address_block")
    first.locator("button:has-text('Übernehmen')").click()
    expect(page.locator("[data-testid=document]").nth(0)).to_contain_text("Anschriftfeld")
    shot(page, "03-dokumente")

    # progress, then 5. review
    split_and_wait_for_review(page)
    parts = page.locator("[data-testid=part]")
    expect(parts).to_have_count(3)
    mueller = part_by_name(page, "Hans Müller")
    expect(mueller).to_have_count(1)
    expect(mueller.locator("[data-testid=part-property]")).to_have_text("WEG Lindenstraße 5")
    expect(mueller.locator("[data-testid=part-unit]")).to_contain_text("WE 01")
    expect(mueller.locator("[data-testid=pages]")).to_contain_text(re.compile(r"Seiten? \d+(–\d+)?"))
    # thumbnails of the first pages load from the letters service
    page.wait_for_function(
        "() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    # property scope: group contacts without a document are warned about (Lea Yilmaz, Jonas Becker)
    warnings = page.locator("[data-testid=warnings]")
    expect(warnings).to_be_visible()
    expect(warnings).to_contain_text("Becker")
    expect(warnings).to_contain_text("Yilmaz")
    unknown = page.locator("[data-testid=part]").filter(has_text="Erika Unbekannt")
    expect(unknown.locator("[data-testid=assigned-contact]")).to_contain_text("kein Kontakt")
    shot(page, "04-pruefung-liegenschaft")

    # bad input: a release with an unresolved part is answered in the page
    page.click("button:has-text('Dokumente im Kundenportal freigeben')")
    page.click("#release-dialog button:has-text('Im Kundenportal freigeben')")
    expect(page.locator("[data-testid=error]")).to_contain_text("weder einem Kontakt zugeordnet noch verworfen")

    # manual reassignment with a contact search (property scope: contacts of this property)
    unknown = page.locator("[data-testid=part]").filter(has_text="Erika Unbekannt")
    unknown.locator("summary:has-text('Kontakt')").click()
    unknown.locator("[data-testid=contact-search]").fill("Weber")
    expect(unknown.locator(".results")).to_contain_text("Keine Kontakte gefunden")  # Weber lives in the other property
    unknown.locator("[data-testid=contact-search]").fill("Yilmaz")
    unknown.locator("[data-testid=assign-contact]").first.click()
    yilmaz = part_by_name(page, "Lea Yilmaz")
    expect(yilmaz.locator("[data-testid=assignment-status]")).to_have_text("Zugeordnet")
    expect(yilmaz.locator("[data-testid=part-unit]")).to_contain_text("WE 03")
    expect(yilmaz).to_contain_text("manuell")

    # download one individual letter before release
    with page.expect_download() as download_info:
        mueller = part_by_name(page, "Hans Müller")
        mueller.locator("[data-testid=download]").click()
    downloaded = Path(download_info.value.path())
    assert downloaded.read_bytes().startswith(b"%PDF-")
    with pikepdf.open(downloaded) as pdf:
        assert len(pdf.pages) >= 2  # the letter plus the attached Wirtschaftsplan page

    # 6. Einzelbriefe (preview before release)
    page.click("nav.tabs >> text=3. Einzelbriefe")
    items = page.locator("[data-testid=item]")
    expect(items).to_have_count(3)
    row = items.filter(has_text="Hans Müller")
    expect(row).to_contain_text("WEG Lindenstraße 5")
    expect(row).to_contain_text("WE 01")
    expect(row).to_contain_text("Postalisch")
    expect(items.filter(has_text="Lea Yilmaz")).to_contain_text("nicht registriert")

    # 7. release with e-mail notification
    page.click("nav.tabs >> text=2. Prüfung")
    page.click("button:has-text('Dokumente im Kundenportal freigeben')")
    dialog = page.locator("#release-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=notify_by_email]").check()
    shot(page, "05-freigabe-dialog")
    dialog.locator("button:has-text('Im Kundenportal freigeben')").click()
    expect(page).to_have_url(re.compile(r"/einzelbriefe$"))
    expect(page.locator("[data-testid=letter-status]")).to_have_text("Im Kundenportal freigegeben")
    expect(page.locator("[data-testid=item]")).to_have_count(3)
    # the portal publisher confirms each publication (proof of delivery)
    for _ in range(60):
        if page.locator("[data-testid=item]", has_text="seit").count() == 3:
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("[data-testid=item]", has_text="seit")).to_have_count(3)
    shot(page, "06-einzelbriefe")

    # 8. postal dispatch: options, live estimate, order, mailpiece tracking
    page.click("nav.tabs >> text=4. Briefversand")
    expect(page.locator("[data-testid=estimate]")).to_be_visible()
    total_all = page.locator("[data-testid=estimate-total]").inner_text()
    page.select_option("select[name=recipient_filter]", "post_preference")
    expect(page.locator("[data-testid=estimate]")).to_contain_text("1 Sendung")
    page.check("input[name=color]")
    page.wait_for_load_state("networkidle")
    with_colour = page.locator("[data-testid=estimate-total]").inner_text()
    page.select_option("select[name=registered]", "einwurf")
    # Each option change asks for a new estimate (hx-sync replace: the last change wins); wait for the one that
    # includes "Einschreiben Einwurf", not for any change (the colour alone already changed the total).
    expect(page.locator("[data-testid=estimate-total]")).not_to_have_text(with_colour)
    expect(page.locator("[data-testid=estimate-total]")).not_to_have_text(total_all)
    page.wait_for_load_state("networkidle")
    expect(page.locator("[data-testid=estimate]")).to_contain_text("möchte Dokumente online erhalten")
    estimated = page.locator("[data-testid=estimate-total]").inner_text()
    shot(page, "07-briefversand")
    page.click("button:has-text('Briefversand beauftragen')")
    expect(page.locator("[data-testid=letter-status]")).to_have_text("Freigegeben, Briefversand beauftragt")
    expect(page.locator("[data-testid=mailpiece]")).to_have_count(1, timeout=FLOW_TIMEOUT_MS)
    expect(page.locator("[data-testid=mailpiece]")).to_contain_text("Hans Müller")
    # what was estimated is what the mailpiece costs
    expect(page.locator("[data-testid=mailpiece] td").nth(3)).to_have_text(estimated)
    shot(page, "08-sendungsverfolgung")

    # 9. revoke one unit's letter, with confirmation
    page.click("nav.tabs >> text=3. Einzelbriefe")
    row = page.locator("[data-testid=item]").filter(has_text="Anna Schmidt")
    row.locator("[data-testid=revoke]").click()
    revoke = page.locator("#revoke-dialog")
    # the dialog says whose letter for which property and unit, and what happens to paper
    expect(revoke.locator("[data-testid=revoke-what]")).to_contain_text("Anna Schmidt")
    expect(revoke.locator("[data-testid=revoke-what]")).to_contain_text("WEG Lindenstraße 5, WE 02")
    expect(revoke.locator("[data-testid=revoke-paper]")).to_have_text(
        "Für diesen Brief ist kein Papierversand beauftragt."
    )
    shot(page, "10-widerruf-dialog")
    revoke.locator("button:has-text('Abbrechen')").click()
    page.locator("[data-testid=item]").filter(has_text="Hans Müller").locator("[data-testid=revoke]").click()
    expect(revoke.locator("[data-testid=revoke-paper]")).to_contain_text("Papierbrief")
    expect(revoke.locator("[data-testid=revoke-paper]")).to_contain_text("hält ihn nicht an")
    revoke.locator("button:has-text('Abbrechen')").click()
    row.locator("[data-testid=revoke]").click()
    revoke.locator("input[name=reason]").fill("Falsche Abrechnung")
    revoke.locator("button:has-text('Widerrufen')").click()
    expect(page.locator("[data-testid=item]").filter(has_text="Anna Schmidt")).to_contain_text("widerrufen")

    # the Verlauf reads as German sentences, the technical record behind "Details"
    page.click("nav.tabs >> text=Verlauf")
    sentences = page.locator("[data-testid=audit-sentence]")
    expect(sentences.first).to_have_text(
        "Anna Muster hat den Serienbrief „Hausgeldabrechnung 2024“ angelegt (WEG Lindenstraße 5)."
    )
    expect(page.locator("[data-testid=audit]")).to_contain_text("Begründung: Falsche Abrechnung")
    expect(page.locator("[data-testid=audit]")).to_contain_text("im Kundenportal freigegeben")
    page.locator("details.audit-record summary").last.click()
    expect(page.locator("details.audit-record pre").last).to_be_visible()
    shot(page, "11-verlauf")
    # a letter that does not exist: German, with a support number, no service text
    page.goto(f"{running.gateway_url}/serienbriefe/00000000-0000-4000-8000-000000000000")
    expect(page.locator("[data-testid=error]")).to_contain_text("Nicht gefunden")
    expect(page.locator("[data-testid=support-id]")).to_have_text(re.compile(r"^[0-9a-f]{10}$"))
    check_german(page, "404 Serienbrief")

    # back in the overview: the letter with scope, state and counts
    page.click("header >> text=Übersicht")
    row = page.locator(f"tr[data-letter-id='{letter_id}']")
    expect(row).to_contain_text("Hausgeldabrechnung 2024")
    expect(row).to_contain_text("Abrechnung")
    expect(row.locator(".scope")).to_have_text("WEG Lindenstraße 5")
    expect(row).to_contain_text("Briefversand beauftragt")


def test_cross_property_letter_flow(running: RunningSystem, browser_page: Page, tmp_path: Path) -> None:
    page, demo = browser_page, running.demo
    pdf = tmp_path / "mieterhoehung.pdf"
    write_serial_letter(
        pdf,
        [demo.recipient("mueller"), demo.recipient("weber"), demo.recipient("fremd")],
        title="Information zur Grundsteuer",
        seed=7,
        pages_per_letter=(1, 2),
    )
    login(page, running)
    letter_id = new_letter(page, running, "Information Grundsteuer", cross=True, doc_type=None)
    expect(page.locator("[data-testid=letter-scope]")).to_have_text("liegenschaftsübergreifend")
    upload(page, pdf)
    split_and_wait_for_review(page)
    expect(page.locator("[data-testid=part]")).to_have_count(3)
    # never the no-document warning in cross-property scope (Schmidt, Yilmaz, Becker, Klein got nothing)
    expect(page.locator("[data-testid=warnings]")).to_have_count(0)
    expect(page.locator("[data-warning-code=contact_without_document]")).to_have_count(0)
    # the right-hand panel shows the property and unit each letter is for
    weber = part_by_name(page, "Otto Weber")
    expect(weber.locator("[data-testid=part-property]")).to_have_text("WEG Gartenweg 3")
    expect(weber.locator("[data-testid=part-unit]")).to_contain_text("WE 01")
    mueller = part_by_name(page, "Hans Müller")
    expect(mueller.locator("[data-testid=part-property]")).to_have_text("WEG Lindenstraße 5")
    # account-wide contact search: Eva Klein lives in the other property
    unknown = page.locator("[data-testid=part]").filter(has_text="Erika Unbekannt")
    unknown.locator("summary:has-text('Kontakt')").click()
    unknown.locator("[data-testid=contact-search]").fill("Klein")
    # she owns flats in both properties: the search asks which contract (property and unit) the letter is for
    choices = unknown.locator("[data-testid=assign-contact]")
    expect(choices).to_have_count(2)
    expect(unknown.locator("[data-testid=contact-results]")).to_contain_text("Welcher Vertrag?")
    expect(choices.filter(has_text="WEG Lindenstraße 5 · WE 05")).to_have_count(1)
    choices.filter(has_text="WEG Gartenweg 3 · WE 02").click()
    klein = part_by_name(page, "Eva Klein")
    expect(klein.locator("[data-testid=part-property]")).to_have_text("WEG Gartenweg 3")
    expect(klein.locator("[data-testid=part-unit]")).to_contain_text("WE 02")
    shot(page, "04b-pruefung-liegenschaftsuebergreifend")

    page.click("nav.tabs >> text=3. Einzelbriefe")
    items = page.locator("[data-testid=item]")
    expect(items).to_have_count(3)
    expect(items.filter(has_text="Otto Weber")).to_contain_text("WEG Gartenweg 3")
    expect(items.filter(has_text="Hans Müller")).to_contain_text("WEG Lindenstraße 5")

    page.click("nav.tabs >> text=2. Prüfung")
    page.click("button:has-text('Dokumente im Kundenportal freigeben')")
    page.click("#release-dialog button:has-text('Im Kundenportal freigeben')")
    expect(page.locator("[data-testid=letter-status]")).to_have_text("Im Kundenportal freigegeben")

    # delete the serial letter, with confirmation
    page.click("button:has-text('Serienbrief löschen')")
    delete = page.locator("#delete-dialog")
    expect(delete).to_contain_text("aus dem Kundenportal entfernt")
    delete.locator("input[name=reason]").fill("Versehentlich freigegeben")
    delete.locator("button:has-text('Endgültig löschen')").click()
    expect(page).to_have_url(re.compile(r"/serienbriefe$"))
    row = page.locator(f"tr[data-letter-id='{letter_id}']")
    if row.count():
        expect(row).to_contain_text("Gelöscht")
    expect(page.locator("tr", has_text="Information Grundsteuer").locator(".scope")).to_have_text(
        "liegenschaftsübergreifend"
    )
    shot(page, "01-uebersicht")


def test_bad_input_is_answered_in_the_page(running: RunningSystem, browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    login(page, running)
    # an empty title
    page.click("text=Neuer Serienbrief >> nth=0")
    page.fill("input[name=new_document_type]", "Einladungen")
    page.select_option("#property-select", running.demo.p1)
    page.click("button:has-text('Serienbrief anlegen')")
    expect(page.locator("[data-testid=error]")).to_contain_text("Titel")
    expect(page.locator("#property-select")).to_have_value(running.demo.p1)  # nothing typed is lost
    page.fill("input[name=title]", "Einladung Eigentümerversammlung")
    expect(page.locator("select[name=document_type_id] option:checked")).to_have_text("Einladungen")
    page.click("button:has-text('Serienbrief anlegen')")
    expect(page).to_have_url(re.compile(r"/dokumente$"))

    # a file that is not a PDF
    text_file = tmp_path / "notiz.txt"
    text_file.write_text("Das ist kein PDF.")
    upload(page, text_file)
    expect(page.locator("[data-testid=error]")).to_contain_text("kein PDF")
    expect(page.locator("[data-testid=document]")).to_have_count(0)

    # an encrypted PDF: refused right at the upload, in German (issue #15: checked at upload, not at split time)
    plain = tmp_path / "plain.pdf"
    write_serial_letter(plain, [running.demo.recipient("mueller")], seed=9, pages_per_letter=(1, 1))
    encrypted = tmp_path / "geschuetzt.pdf"
    with pikepdf.open(plain) as pdf:
        pdf.save(encrypted, encryption=pikepdf.Encryption(owner="owner-secret", user="user-secret"))
    upload(page, encrypted)
    expect(page.locator("[data-testid=error]")).to_contain_text("verschlüsselt")
    expect(page.locator("[data-testid=document]")).to_have_count(0)
    shot(page, "09-fehler-verschluesselt")

    # a readable PDF in which the splitter finds no letter: refused by the splitter, shown in German
    no_address = tmp_path / "ohne-adresse.pdf"
    write_serial_letter(
        no_address, [running.demo.recipient("mueller")], seed=9, pages_per_letter=(1, 1), address_mode="missing"
    )
    # (with the rule chosen by hand: SmartPost's proposal would pick a rule that finds a letter in this page)
    page.select_option("#upload-form select[name=strategy]", "address_block")
    upload(page, no_address)
    expect(page.locator("[data-testid=document]")).to_have_count(1)
    page.click("button:has-text('Aufteilen und Kontakte zuordnen')")
    failure = page.locator("[data-testid=document-failure]")
    expect(failure).to_contain_text("kein Brief", timeout=FLOW_TIMEOUT_MS)
    # the staff member removes it and can go on
    doc = page.locator("[data-testid=document]").first
    doc.locator("summary:has-text('Trennregel ändern')").click()
    doc.locator("button:has-text('Dokument entfernen')").click()
    expect(page.locator("[data-testid=document]")).to_have_count(0)

    # a user without the release role cannot release
    page.click("form[action='/logout'] button")
    login(page, running, "bernd")
    expect(page.locator("[data-testid=user]")).to_have_text("Bernd Vorbereiter")


def wait_for_mail(running: RunningSystem, address: str, marker: str, timeout: float = 60) -> str:
    """The plain text of the first mail to ``address`` whose text contains ``marker`` (aiosmtpd's maildir)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in mailbox.Maildir(running.system.stack.maildir, factory=None, create=False):
            parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
            body = parsed.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            if address in str(parsed["To"]) and marker in text:
                assert "Einladung" in str(parsed["Subject"]), parsed["Subject"]
                return str(text)
        time.sleep(0.3)
    pytest.fail(f"no mail to {address} with {marker} within {timeout}s: {running.log('portal-publisher')[-3000:]}")


def test_staff_invite_a_recipient_who_registers_from_the_email(running: RunningSystem, browser_page: Page) -> None:
    """Issue #16: 'Zum Portal einladen' in Einzelbriefe -> the e-mail (aiosmtpd) -> the link -> registered; a
    second invitation leaves the login alone and says so in German."""
    page, demo = browser_page, running.demo
    letter_id = STATE.get("property_letter")
    assert letter_id, "the whole-flow test did not get as far as creating the property letter"
    login(page, running)
    page.goto(f"{running.gateway_url}/serienbriefe/{letter_id}/einzelbriefe")
    row = page.locator("[data-testid=item]").filter(has_text="Lea Yilmaz")
    expect(row.locator("[data-testid=invite]")).to_have_text("Zum Portal einladen")
    row.locator("[data-testid=invite]").click()
    result = row.locator("[data-testid=invitation-result]")
    expect(result).to_contain_text("Einladung an Lea Yilmaz (yilmaz@example.org) versandt")
    check_german(page, "Einladung versandt")
    page.reload()
    row = page.locator("[data-testid=item]").filter(has_text="Lea Yilmaz")
    expect(row.locator("[data-testid=portal-access]")).to_contain_text("eingeladen am")
    expect(row.locator("[data-testid=invite]")).to_have_text("Einladung erneut senden")

    text = wait_for_mail(running, "yilmaz@example.org", f"/kundenportal/{demo.account_id}/einladung?code=")
    link = re.search(r"http://127\.0\.0\.1:\d+/kundenportal/\S+/einladung\?code=\S+", text)
    assert link, text
    recipient = page.context.browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
    try:
        portal = recipient.new_page()
        portal.goto(link.group(0))
        expect(portal.get_by_label("Einladungscode")).not_to_have_value("")
        portal.get_by_label("Benutzername (z. B. Ihre E-Mail-Adresse)").fill("yilmaz@example.org")
        portal.get_by_label("Passwort", exact=True).fill("Yilmaz-Portal-2026!")
        portal.get_by_label("Passwort wiederholen").fill("Yilmaz-Portal-2026!")
        portal.get_by_role("button", name="Zugang einrichten").click()
        expect(portal.get_by_role("button", name="Abmelden")).to_be_visible()
        expect(portal.locator("body")).to_contain_text("Ihr Zugang ist eingerichtet")
        # her released letter is in her inbox
        expect(portal.locator("body")).to_contain_text("Hausgeldabrechnung 2024")
    finally:
        recipient.close()
    # the code is a secret: in no service's log (the access log redacts it from the link's query)
    code = link.group(0).split("code=")[1]
    for service in ("portal-publisher", "gateway", "notifier"):
        assert code not in running.log(service), f"the invitation code is in the {service} log"

    # staff click again on the page still open: she has a login now, nothing is sent or reset
    row.locator("[data-testid=invite]").click()
    expect(row.locator("[data-testid=invitation-result]")).to_contain_text(
        "Lea Yilmaz hat bereits einen Zugang zum Kundenportal"
    )
    shot(page, "12-einladung")
    # reloaded: her row says so, and offers no invitation any more
    page.reload()
    row = page.locator("[data-testid=item]").filter(has_text="Lea Yilmaz")
    expect(row.locator("[data-testid=portal-access]")).to_have_text("Zugang eingerichtet")
    expect(row.locator("[data-testid=invite]")).to_have_count(0)


def test_every_staff_route_and_fragment_is_german(running: RunningSystem, browser_page: Page) -> None:
    """Issue #16: every route of the gateway in the states the browser tests reach: no English service text, no raw
    JSON, fits 1280 px. A route of the app that the walk does not visit fails this test."""
    letter_id = STATE.get("property_letter")
    assert letter_id, "the whole-flow test did not get as far as creating the property letter"
    walked = walk(
        browser_page,
        running.gateway_url,
        letter_id,
        contact_ids=running.demo.contact_ids,
        login=lambda: login(browser_page, running),
    )
    problems = "\n\n".join(walked.problems)
    assert walked.problems == [], f"{len(walked.problems)} problems:\n{problems}"
    app_routes = route_table(create_app(Settings(log_json=False)))
    pages = app_routes - set(NOT_PAGES)
    visited = set(walked.visited)
    assert pages - visited == set(), f"routes without a checked state: {sorted(pages - visited)}"
    assert set(NOT_PAGES) <= app_routes, f"stale exemptions: {sorted(set(NOT_PAGES) - app_routes)}"
    assert visited - pages == {("GET", "404"), ("DELETE", "405")}, sorted(visited - pages)
    states = sum(len(v) for v in walked.visited.values())
    assert states >= 80, states
    print(f"staff routes checked: {len(pages)} routes, {states} states")
