"""The sample serial-letter generator: truth matches the PDF, address in the DIN 5008 window, fonts embedded."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pikepdf
import pypdfium2 as pdfium
import pytest

from smartpost_shared.sample_letters import (
    ADDRESS_FIELD_TOP_MM,
    MM,
    REMARK_ZONE_HEIGHT_MM,
    SampleRecipient,
    demo_recipients,
    read_truth,
    truth_path,
    write_serial_letter,
)

if TYPE_CHECKING:
    from pathlib import Path


def _page_texts(path: Path) -> list[str]:
    doc = pdfium.PdfDocument(path)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def _address_zone_text(path: Path, page_index: int, form: str) -> str:
    doc = pdfium.PdfDocument(path)
    try:
        page = doc[page_index]
        height = page.get_height()
        top = (ADDRESS_FIELD_TOP_MM[form] + REMARK_ZONE_HEIGHT_MM) * MM
        bottom = (ADDRESS_FIELD_TOP_MM[form] + 45) * MM
        return page.get_textpage().get_text_bounded(
            left=20 * MM, right=105 * MM, top=height - top, bottom=height - bottom
        )
    finally:
        doc.close()


def test_demo_recipients_are_deterministic_unique_and_varied() -> None:
    first = demo_recipients(200, seed=3)
    assert first == demo_recipients(200, seed=3)
    assert first != demo_recipients(200, seed=4)
    assert len({r.reference_id for r in first}) == 200
    assert len({r.contact_id for r in first}) == 200
    assert all(re.fullmatch(r"K-\d{6}", r.reference_id) for r in first)
    assert all(a.address_lines != b.address_lines for a, b in itertools.pairwise(first))
    assert all(2 <= len(r.address_lines) <= 6 for r in first)
    name_lines = " ".join(r.address_lines[0] for r in first)
    assert "Herrn " in name_lines
    assert "Frau " in name_lines
    assert "Eheleute " in name_lines or any(len(r.address_lines) >= 4 for r in first)


def test_truth_matches_pages_and_is_written_beside_the_pdf(tmp_path: Path) -> None:
    recipients = demo_recipients(25, seed=1)
    pdf = tmp_path / "letters.pdf"
    truth = write_serial_letter(pdf, recipients, seed=1)
    texts = _page_texts(pdf)
    assert [t.contact_id for t in truth] == [r.contact_id for r in recipients]
    assert truth[0].first_page == 1
    assert truth[-1].last_page == len(texts)
    for prev, cur in itertools.pairwise(truth):
        assert cur.first_page == prev.last_page + 1
    for t, recipient in zip(truth, recipients, strict=True):
        pages = t.last_page - t.first_page + 1
        assert 1 <= pages <= 6
        first_text = texts[t.first_page - 1]
        assert re.search(r"Kontakt-Nr\.:\s*" + recipient.reference_id, first_text)
        assert f"Seite 1 von {pages}" in first_text
        assert recipient.contact_id not in first_text  # the master-data id is never printed
        assert f"Objekt: {recipient.property_ref}" in first_text
        assert f"Einheit: {recipient.unit_ref}" in first_text
        for k in range(1, pages):
            assert f"Seite {k + 1} von {pages}" in texts[t.first_page - 1 + k]
            assert "Kontakt-Nr.:" not in texts[t.first_page - 1 + k]
    assert read_truth(pdf) == truth
    assert truth_path(pdf).exists()


@pytest.mark.parametrize("form", ["A", "B"])
def test_address_is_inside_the_din_5008_window(tmp_path: Path, form: str) -> None:
    recipients = demo_recipients(6, seed=2)
    pdf = tmp_path / f"form{form}.pdf"
    truth = write_serial_letter(pdf, recipients, address_form=form)  # type: ignore[arg-type]
    for t, recipient in zip(truth, recipients, strict=True):
        zone = _address_zone_text(pdf, t.first_page - 1, form)
        lines = [line.strip() for line in zone.splitlines() if line.strip()]
        assert lines == recipient.address_lines
    other = "A" if form == "B" else "B"
    other_zone = _address_zone_text(pdf, truth[0].first_page - 1, other)
    assert [line.strip() for line in other_zone.splitlines() if line.strip()] != recipients[0].address_lines


def test_missing_and_outside_addresses_leave_the_window_empty(tmp_path: Path) -> None:
    recipients = demo_recipients(3, seed=5)
    for mode in ("missing", "outside"):
        pdf = tmp_path / f"{mode}.pdf"
        truth = write_serial_letter(pdf, recipients, address_mode=mode)  # type: ignore[arg-type]
        zone = _address_zone_text(pdf, truth[0].first_page - 1, "B")
        assert zone.strip() == ""
        first_text = _page_texts(pdf)[0]
        assert (recipients[0].address_lines[0] in first_text) == (mode == "outside")


def test_separators_are_not_part_of_letters(tmp_path: Path) -> None:
    recipients = demo_recipients(5, seed=6)
    keyword_pdf = tmp_path / "keyword.pdf"
    truth = write_serial_letter(keyword_pdf, recipients, keyword_separators=True)
    texts = _page_texts(keyword_pdf)
    for t, recipient in zip(truth, recipients, strict=True):
        separator = texts[t.first_page - 2]
        assert "Trennseite" in separator
        assert recipient.address_lines[0] in separator
        assert "Trennseite" not in texts[t.first_page - 1]
    blank_pdf = tmp_path / "blank.pdf"
    truth = write_serial_letter(blank_pdf, recipients, blank_separators=True)
    texts = _page_texts(blank_pdf)
    assert len(texts) == truth[-1].last_page
    for t in truth:
        assert texts[t.first_page - 2].strip() == ""
        assert all(texts[p - 1].strip() for p in range(t.first_page, t.last_page + 1))


def test_landscape_pages_and_page_count_range(tmp_path: Path) -> None:
    recipients = demo_recipients(6, seed=7)
    pdf = tmp_path / "landscape.pdf"
    truth = write_serial_letter(pdf, recipients, landscape_every=2, pages_per_letter=(1, 1))
    with pikepdf.open(pdf) as doc:
        boxes = [tuple(float(v) for v in page.mediabox) for page in doc.pages]
    for index, t in enumerate(truth):
        landscape = (index + 1) % 2 == 0
        assert t.last_page - t.first_page + 1 == (2 if landscape else 1)
        width, height = boxes[t.last_page - 1][2], boxes[t.last_page - 1][3]
        assert (width > height) == landscape
        first_width, first_height = boxes[t.first_page - 1][2], boxes[t.first_page - 1][3]
        assert first_height > first_width


def test_fonts_are_embedded_and_logo_stored_once(tmp_path: Path) -> None:
    pdf = tmp_path / "fonts.pdf"
    write_serial_letter(pdf, demo_recipients(10), pages_per_letter=(2, 2))
    with pikepdf.open(pdf) as doc:
        images: set[tuple[int, int]] = set()
        fonts_embedded = []
        for page in doc.pages:
            resources = page.obj.get("/Resources", {})
            for image in resources.get("/XObject", {}).values():
                images.add(image.objgen)
            for font in resources.get("/Font", {}).values():
                for descendant in font.get("/DescendantFonts", [font]):
                    descriptor = descendant.get("/FontDescriptor")
                    if descriptor is not None:
                        fonts_embedded.append("/FontFile2" in descriptor)
    assert fonts_embedded
    assert all(fonts_embedded)
    assert len(images) == 1


def test_custom_recipient_and_bad_arguments(tmp_path: Path) -> None:
    recipient = SampleRecipient(
        contact_id="c-1",
        reference_id="K-000042",
        address_lines=["Eheleute Anna und Max Müller", "Lindenstraße 5", "12345 Musterstadt"],
        property_ref="WEG-0815 Lindenstraße 5",
        unit_ref="WE 03 (1. OG links)",
    )
    pdf = tmp_path / "one.pdf"
    truth = write_serial_letter(pdf, [recipient], pages_per_letter=(3, 3), title="Wirtschaftsplan 2026")
    assert truth[0].first_page == 1
    assert truth[0].last_page == 3
    text = _page_texts(pdf)[0]
    assert "Wirtschaftsplan 2026" in text
    assert "Sehr geehrte Damen und Herren," in text
    with pytest.raises(ValueError, match="recipient"):
        write_serial_letter(tmp_path / "none.pdf", [])
    with pytest.raises(ValueError, match="pages_per_letter"):
        write_serial_letter(tmp_path / "bad.pdf", [recipient], pages_per_letter=(3, 2))
