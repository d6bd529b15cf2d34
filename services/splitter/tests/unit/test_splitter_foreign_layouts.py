"""Property/unit references and first pages as other ERPs print them; every pattern runs in linear time."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_splitter.adapters.scan import scan_range
from smartpost_splitter.domain import DEFAULT_IDENTIFIER_PATTERNS, PageFacts, Segmenter, plan_from_rule
from smartpost_splitter.pages import (
    CompiledPlan,
    address_from_zone,
    context_lines,
    find_identifiers,
    find_property_refs,
    find_table_values,
    find_unit_refs,
    looks_like_first_page,
    page_number,
)

if TYPE_CHECKING:
    from pathlib import Path

PATTERNS = tuple(re.compile(p) for p in DEFAULT_IDENTIFIER_PATTERNS)


@pytest.mark.parametrize(
    ("text", "properties", "units"),
    [
        ("Objekt 1020 / WE 01", ("1020 / WE 01",), ("WE 01",)),
        ("Jahresabrechnung 2024 für Objekt 1020, Wohnung 01", ("1020, Wohnung 01",), ("Wohnung 01",)),
        ("Jahresabrechnung 2024 – WEG Parkallee 7, Whg. 3", ("Parkallee 7, Whg. 3",), ("Whg. 3",)),
        ("Liegenschaft Parkallee 7, 10115 Berlin\nME 12", ("Parkallee 7, 10115 Berlin",), ("ME 12",)),
        ("WEG Lindenstraße 12 · Abrechnung 2024\nWhg.-Nr. 03", ("Lindenstraße 12",), ("Whg. 03",)),
        ("für Ihre Einheit Nr. 3 in der Liegenschaft Wohnanlage Rosenhof", ("Wohnanlage Rosenhof",), ("Einheit 3",)),
        ("Objekt: 1020\nEinheit: WE 03 (1. OG links)", ("1020",), ("WE 03 (1. OG links)",)),
        # One label pair for both values (layout I, written by another author): not "Einh. 1020".
        ("Objekt-Nr./Einh. 1020/020", ("1020",), ("Einh. 020",)),
        ("Obj./WE 1020/7", ("1020",), ("WE 7",)),
        ("Objekt-Nr./Einh.: 1020/020   Datum 01.03.2025", ("1020",), ("Einh. 020",)),
        ("Wohnung 12 / 3", (), ()),
        # A floor is no unit number; a legacy key names its property by the leading number (layout J).
        ("Ihre Wohnung 1. OG links", (), ()),
        ("OBJEKT-SCHL. 1880.01.0011", ("1880.01.0011",), ()),
        ("WIRTSCH.-EINH. WOHNPARK BUCHENECK\nWHG. 7", ("WOHNPARK BUCHENECK",), ("WHG. 7",)),
    ],
)
def test_property_and_unit_read_with_or_without_colon(text: str, properties: tuple[str], units: tuple[str]) -> None:
    assert find_property_refs(text) == properties
    assert find_unit_refs(text) == units


def test_prose_and_street_words_are_not_labels() -> None:
    # "Weg" in a street is no WEG; a unit label needs a number; lower-case prose is no label.
    assert find_property_refs("Am Gartenweg 3\ndas objekt wurde saniert") == ()
    assert find_unit_refs("Die Wohnung wurde saniert. WE haben geprüft.") == ()


@pytest.mark.parametrize(
    "text",
    [
        "Unser Zeichen K-004711",
        "Ref. K-004711",
        "Personenkonto K-004711",
        "Obj.-Nr. 1020 | Whg. 3 | Debitor K-004711 | 01.03.2025",
        "Debitorennummer: K-004711",
        "PERS.-KTO        K-004711",
        "VERTRAG         K-004711",
        "Kd.-Nr.: K-004711",
        "Vertragskonto K-004711",
    ],
)
def test_identifier_labels_of_the_information_block(text: str) -> None:
    assert find_identifiers(text, PATTERNS) == ("K-004711",)


@pytest.mark.parametrize(
    ("label", "kind"),
    [("Objekt:", "property"), ("Liegenschaft Nr.", "property"), ("WEG", "property"), ("Whg.-Nr.", "unit"),
     ("ME", "unit"), ("Kunden-Nr.", "identifier"), ("Debitoren-Nr.", "identifier"), ("Seite", "page"),
     ("Objekt-Nr./Einh.", "property"), ("Objekt-Nr./Einh.", "unit"), ("OBJEKT-SCHL.", "property"),
     ("PERS.-KTO", "identifier"), ("VERTRAG", "identifier"),
     ("Sehr", "page")],
)  # fmt: skip
def test_patterns_run_in_linear_time_on_a_megabyte_of_whitespace_after_a_label(label: str, kind: str) -> None:
    # Catastrophic backtracking would take minutes on a megabyte; the linear patterns take well under a second.
    # The bound is generous on purpose (shared CI machine): it only tells linear from super-linear.
    text = label + " \t" * 500_000 + "x"
    started = time.perf_counter()
    if kind == "property":
        assert find_property_refs(text) == ()
    elif kind == "unit":
        assert find_unit_refs(text) == ()
    elif kind == "identifier":
        assert find_identifiers(text, PATTERNS) == ()
    else:
        assert page_number(text) is None
        assert looks_like_first_page(text) is False
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize(
    ("text", "number", "first"),
    [
        ("Text\nSeite 1 von 3", 1, True),
        ("Seite 2 von 3\nSehr geehrte Frau Muster,", 2, False),
        ("Hausverwaltung X · Seite 1/2", 1, True),
        ("- 1 -", 1, True),
        ("   - 2 -   ", 2, False),
        ("Blatt 1", 1, True),
        ("Sehr geehrter Herr Muster,\nanbei", None, True),
        ("Guten Tag Frau Muster,", None, True),
        ("Anlage zur Abrechnung\nSumme 12,00 €", None, False),
        # Layout J (another author): the number at the end of the letterhead line, the greeting in capitals.
        ("HAUSVERWALTUNG SONNENSCHEIN GMBH          BLATT 2\nSEHR GEEHRTE EIGENTUEMERIN,", 2, False),
        ("HAUSVERWALTUNG SONNENSCHEIN GMBH          BLATT 1", 1, True),
        ("SEHR GEEHRTE EIGENTUEMERIN, SEHR GEEHRTER EIGENTUEMER,", None, True),
        ("die Kosten stehen auf Blatt 3", None, False),
    ],
)
def test_first_page_by_page_number_or_salutation(text: str, number: int | None, first: bool) -> None:
    assert page_number(text) == number
    assert looks_like_first_page(text) is first


def _pages(texts_and_addresses: list[tuple[str, tuple[str, ...]]]) -> list[tuple[int, int]]:
    plan = plan_from_rule(SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK))
    compiled = CompiledPlan.of(plan)
    segmenter = Segmenter(plan)
    segments = []
    for i, (text, address) in enumerate(texts_and_addresses):
        facts = PageFacts(i, 595.0, 842.0, len(text), marker=compiled.marker(text, address), address_lines=address)
        segments += segmenter.feed(facts)
    segments += segmenter.finish()
    return [(s.first, s.last) for s in segments]


ADDRESS = ("Herrn Max Muster", "Lindenstraße 12", "10115 Berlin")
OTHER = ("Frau Eva Beispiel", "Am Markt 1", "10178 Berlin")


def test_address_block_starts_a_letter_on_a_first_looking_page_even_when_the_address_repeats() -> None:
    # An owner's two letters (two units) follow each other: same address, but "Seite 1 von 2" starts anew.
    pages = [
        ("Sehr geehrter Herr Muster,\nSeite 1 von 2", ADDRESS),
        ("Seite 2 von 2", ()),
        ("Sehr geehrter Herr Muster,\nSeite 1 von 2", ADDRESS),
        ("Seite 2 von 2", ()),
        ("Sehr geehrte Frau Beispiel,\nSeite 1 von 1", OTHER),
    ]
    assert _pages(pages) == [(0, 1), (2, 3), (4, 4)]


MANAGER = ("HAUSVERWALTUNG SONNENSCHEIN GMBH", "ABT. WEG-VERWALTUNG", "POSTFACH 10 20 30", "10001 BERLIN")


def _head(n: int) -> str:
    return f"HAUSVERWALTUNG SONNENSCHEIN GMBH                      BLATT {n}\nFRIEDRICHSTR. 123 - BERLIN"


def test_a_reply_form_addressed_to_the_sender_stays_in_its_letter() -> None:
    # Layout J (another author): page 3 is a proxy form with the manager's own address in the window (to be sent
    # back in a window envelope). It was cut off as a letter of its own; it belongs to the owner's letter.
    pages = [
        (_head(1) + "\nSEHR GEEHRTE EIGENTUEMERIN,", ADDRESS),
        (_head(2) + "\nTAGESORDNUNG", ()),
        (_head(3) + "\n" + "\n".join(MANAGER) + "\nRUECKANTWORT / VOLLMACHT", MANAGER),
        (_head(1) + "\nSEHR GEEHRTE EIGENTUEMERIN,", OTHER),
        (_head(2) + "\n" + "\n".join(MANAGER) + "\nSEPA-LASTSCHRIFTMANDAT", MANAGER),
    ]
    assert _pages(pages) == [(0, 2), (3, 4)]


def test_the_sender_as_a_recipient_still_gets_a_letter_of_its_own() -> None:
    # The manager's company owns a unit: its own statement starts with page 1 (or a salutation), so it is a letter.
    pages = [
        (_head(1) + "\nSEHR GEEHRTE EIGENTUEMERIN,", ADDRESS),
        (_head(2), ()),
        (_head(1) + "\n" + "\n".join(MANAGER) + "\nSEHR GEEHRTE DAMEN UND HERREN,", MANAGER),
    ]
    assert _pages(pages) == [(0, 1), (2, 2)]
    # A window naming someone other than the letterhead's company starts a letter as before, numbered or not.
    assert _pages([(_head(1), ADDRESS), (_head(2), OTHER)]) == [(0, 0), (1, 1)]


@pytest.mark.parametrize(
    ("second_page", "window"),
    [
        # The information block on the same extracted line as the window's name row (line-printer PDFs).
        ("EVA BEISPIEL PERS.-KTO K-004712\nBLATT 2", ("EVA BEISPIEL", "AM MARKT 1", "10178 BERLIN")),
        # A recipient whose name line begins like the letterhead, or is the letterhead's first word.
        ("Peter Schmidtke Immobilienverwaltung Blatt 2", ("Herrn", "Peter Schmidt", "Am Markt 1", "10178 Berlin")),
        (
            "Hausverwaltung Sonnenschein GmbH Blatt 2",
            ("Hausverwaltung", "Krause Immobilien GmbH", "Am Markt 1", "10178 Berlin"),
        ),
        # The manager's company as an owner: its statement has no greeting and no page number.
        ("HAUSVERWALTUNG SONNENSCHEIN GMBH\nEINZELABRECHNUNG 2024", MANAGER),
    ],
)
def test_only_a_numbered_page_addressed_to_the_letterheads_company_stays_in_the_letter_before(
    second_page: str, window: tuple[str, ...]
) -> None:
    # Found by a review: a looser first version merged each of these into the letter before (another recipient's).
    pages = [(_head(1) + "\nSEHR GEEHRTE EIGENTUEMERIN,", ADDRESS), (second_page, window)]
    assert _pages(pages) == [(0, 0), (1, 1)]


def test_a_page_number_at_the_end_of_the_letterhead_line_is_read_also_without_the_gap() -> None:
    # Text extraction (pdfium) collapses the gap before "BLATT 2"; prose further down is no page number.
    assert page_number("HAUSVERWALTUNG SONNENSCHEIN GMBH BLATT 2\nSEHR GEEHRTE EIGENTUEMERIN,") == 2
    assert page_number("Sehr geehrter Herr X,\nzeile\nzeile\nEinzelabrechnung 2024 Seite 2") is None


def test_a_continuation_page_that_repeats_the_address_stays_in_its_letter() -> None:
    pages = [
        ("Einzelabrechnung\nSehr geehrter Herr Muster,\n- 1 -", ADDRESS),
        ("Einzelabrechnung (Fortsetzung)\n- 2 -", ADDRESS),
        ("Einzelabrechnung\nSehr geehrte Frau Beispiel,\n- 1 -", OTHER),
        ("Einzelabrechnung (Fortsetzung)\n- 2 -", OTHER),
    ]
    assert _pages(pages) == [(0, 1), (2, 3)]


def test_without_first_page_signs_the_same_address_continues_the_letter() -> None:
    pages = [("Abrechnung", ADDRESS), ("Anlage", ADDRESS), ("Abrechnung", OTHER)]
    assert _pages(pages) == [(0, 1), (2, 2)]


@pytest.mark.parametrize(
    ("text", "identifiers", "properties", "units"),
    [
        # A table header: labels on one line, values on the next (columns by position, two or more spaces).
        (
            "Objekt-Nr.    Wohnung   Kunden-Nr.    Datum\n1020          03        K-000123      01.03.2025",
            ("K-000123",), ("1020",), ("Wohnung 03",),
        ),
        # The same with single spaces (extractors that collapse column gaps): read when the counts agree.
        ("Objekt Wohnung Kunden-Nr. Datum\n1020 03 4711 01.03.2025", ("4711",), ("1020",), ("Wohnung 03",)),
        # A lone label with its value on the next line.
        ("Objekt\n1020\nKundennummer\n4711", ("4711",), ("1020",), ()),
        ("Whg.-Nr.  Ref.\nWhg. 3    K-1234", ("K-1234",), (), ("Whg. 3",)),
        ("Debitor-Nr.   Objekt\n4711          1020", ("4711",), ("1020",), ()),
        # Values that do not line up with their labels are not read at all (no evidence rather than wrong evidence).
        ("Objekt Wohnung Kunden-Nr. Datum\nParkallee 7 03 4711 01.03.2025", (), (), ()),
        # Prose is no header: every word of a header line must be a known label.
        ("Das Objekt wurde\nsaniert 2024", (), (), ()),
        ("Datum    Seite\n01.03.2025    1", (), (), ()),
        # A unit column holding something that is not a unit number, a number column holding a date.
        ("Wohnung    Kunden-Nr.\nDachgeschoss    01.03.2025", (), (), ()),
    ],
)  # fmt: skip
def test_labels_above_values_are_read_column_by_column(
    text: str, identifiers: tuple[str, ...], properties: tuple[str, ...], units: tuple[str, ...]
) -> None:
    assert find_table_values(text) == (identifiers, properties, units)


def test_table_values_reach_the_page_evidence() -> None:
    compiled = CompiledPlan.of(plan_from_rule(SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK)))
    text = "Hausverwaltung X      Seite 1 von 2\nObjekt-Nr.   Wohnung   Kunden-Nr.\n1020         03        K-000123"
    identifiers, properties, units = compiled.evidence_of(text)
    assert "K-000123" in identifiers
    assert "1020" in properties
    assert "Wohnung 03" in units


def test_table_reader_runs_in_linear_time_on_a_long_header_like_page() -> None:
    text = ("Objekt  Wohnung  " * 16 + "\n" + "1020  03  " * 16 + "\n") * 2_000  # 0.6 MB of header rows
    started = time.perf_counter()
    find_table_values(text)
    assert time.perf_counter() - started < 5.0


def test_context_lines_are_the_first_page_above_the_body_without_the_window() -> None:
    window = ("Herrn Max Muster", "Gartenweg 3", "10115 Berlin")
    text = "\n".join(
        [
            "Wohnanlage Rosenhof · Abrechnung 2024",
            "Hausverwaltung Sonnenschein GmbH · Postfach 10 20 30 · 10001 Berlin",
            *window,
            "Whg.-Nr.   03",
            "",
            "Sehr geehrter Herr Muster,",
            "die Einzelabrechnung Ihrer Einheit liegt bei.",
            "Abrechnungszeitraum 2024",
            "Die Kosten sind wie in der Residenz Sonnenblick gestiegen.",  # the statement itself: left out
            "Heizkosten 120,00 €",
        ]
    )
    assert context_lines(text, window) == (
        "Wohnanlage Rosenhof · Abrechnung 2024",
        "Hausverwaltung Sonnenschein GmbH · Postfach 10 20 30 · 10001 Berlin",
        "Whg.-Nr. 03",
        "Sehr geehrter Herr Muster,",
        "die Einzelabrechnung Ihrer Einheit liegt bei.",
        "Abrechnungszeitraum 2024",
    )
    # Without a salutation: at most 40 lines of at most 160 characters.
    long = "\n".join("x" * 200 for _ in range(60))
    lines = context_lines(long, ())
    assert len(lines) == 40
    assert {len(line) for line in lines} == {160}


def test_a_scanned_pdf_first_page_carries_its_context_lines_and_a_continuation_page_none(tmp_path: Path) -> None:
    pdf = tmp_path / "serienbrief.pdf"
    write_serial_letter(pdf, demo_recipients(2, seed=4), seed=7, address_form="B")
    plan = plan_from_rule(SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form="B"))
    first, second = scan_range(str(pdf), plan, 0, 2, 0)
    assert first.address_lines
    assert "Jahresabrechnung 2025" in first.context_lines
    assert not set(first.address_lines) & set(first.context_lines)
    assert first.context_lines[-3].startswith("Sehr geehrte")  # two lines after the salutation, then the body ends
    assert second.context_lines == ()


def test_postal_endorsements_in_the_window_are_not_part_of_the_address() -> None:
    # Layout J (another author): registered mail printed inside the window, a tracking number like a postal line.
    zone = "EINSCHREIBEN EINWURF\nRR 1234 5678 9DE\nFRAU\nANDREA KAYA\nUHLANDWEG 72\n53111 BONN"
    assert address_from_zone(zone, "") == ("FRAU", "ANDREA KAYA", "UHLANDWEG 72", "53111 BONN")
    # A window holding nothing but the endorsement and the tracking number is no address.
    assert address_from_zone("Einschreiben Rückschein\nRR 1234 5678 9DE", "") == ()
