"""Print-file preparation on generated letters; the window zone of the RESULT is checked by rendering it."""

from __future__ import annotations

import io

import pikepdf
import pypdfium2 as pdfium
import pytest
from reportlab.pdfgen import canvas

from smartpost_print_dispatch.adapters.pdf import (
    LandscapePolicy,
    MismatchPolicy,
    PartPdf,
    PrepareRequest,
    UnsendableError,
    ink_pixels,
    layout_needs_cover,
    prepare_mailpiece,
    zone_text,
)
from smartpost_print_dispatch.domain.address import AddressMatch, compare_address
from smartpost_print_dispatch.domain.geometry import DIN5008_A, DIN5008_B, EPOST, PINGEN
from smartpost_print_dispatch.testing import write_letter

ADDRESS = ["Frau Erika Mustermann", "Lindenallee 12", "50667 Köln"]
OTHER = ["Herrn Otto Normal", "Bahnhofstraße 3", "80331 München"]


def request(parts, *, profile=DIN5008_B, duplex=True, lines=ADDRESS, **kw):
    return PrepareRequest("mp-test", lines, profile, parts, duplex, **kw)


def part(data: bytes, pages: int = 2, item: str = "i1") -> PartPdf:
    return PartPdf(item, data, 1, pages)


def window_of(pdf: bytes, profile=DIN5008_B, page: int = 0) -> tuple[str, int]:
    document = pdfium.PdfDocument(pdf)
    try:
        p = document[page]
        return zone_text(p, profile.address_zone), ink_pixels(p, profile.address_zone)
    finally:
        document.close()


def test_address_in_window_is_kept_without_cover():
    result = prepare_mailpiece(request([part(write_letter(ADDRESS))]))
    assert not result.cover_page
    assert result.pages == 2
    assert result.sheets == 1
    text, ink = window_of(result.pdf)
    assert compare_address(ADDRESS, text) is AddressMatch.MATCH
    assert ink > 100


def test_form_a_letter_checked_against_form_a_profile():
    data = write_letter(ADDRESS, form="A")
    assert not prepare_mailpiece(request([part(data)], profile=DIN5008_A)).cover_page
    # The same letter under a form B window shows no address: it gets a cover page.
    result = prepare_mailpiece(request([part(data)], profile=DIN5008_B))
    assert result.cover_page


@pytest.mark.parametrize(
    ("mode", "finding"),
    [
        ("missing", "no address on page 1"),
        ("outside", "address outside the window zone"),
        ("image", "address in the window is not machine-readable (image or drawing)"),
    ],
)
def test_missing_outside_or_unreadable_address_gets_a_cover_page(mode, finding):
    result = prepare_mailpiece(request([part(write_letter(ADDRESS, mode=mode))]))
    assert result.cover_page
    assert result.address_check == finding
    # cover + blank back (duplex) + 2 letter pages
    assert result.pages == 4
    assert result.sheets == 2
    text, ink = window_of(result.pdf)
    assert compare_address(ADDRESS, text) is AddressMatch.MATCH
    assert ink > 100
    # The letter itself follows unchanged after the cover sheet.
    document = pdfium.PdfDocument(result.pdf)
    assert "Seite 1, Zeile 1" in document[2].get_textpage().get_text_range()
    assert document[1].get_textpage().get_text_range().strip() == ""
    document.close()


def test_address_different_from_master_data():
    data = write_letter(OTHER)
    result = prepare_mailpiece(request([part(data)]))
    assert result.cover_page
    assert result.address_check == "address differs from master data"
    text, _ = window_of(result.pdf)
    assert compare_address(ADDRESS, text) is AddressMatch.MATCH
    assert "Otto" not in text
    with pytest.raises(UnsendableError, match="differs from master data"):
        prepare_mailpiece(request([part(data)], on_mismatch=MismatchPolicy.ACTION_REQUIRED))


def test_franking_band_with_content_needs_cover_for_epost_and_pingen():
    data = write_letter(ADDRESS)
    for profile in (EPOST, PINGEN):
        result = prepare_mailpiece(request([part(data)], profile=profile))
        assert result.cover_page, profile.name
        assert result.address_check.startswith("content in"), result.address_check
        document = pdfium.PdfDocument(result.pdf)
        first = document[0]
        for zone in profile.blank_zones():
            assert ink_pixels(first, zone.shrink(1.0)) == 0
        assert compare_address(ADDRESS, zone_text(first, profile.address_zone)) is AddressMatch.MATCH
        document.close()


def test_landscape_pages_are_rotated_or_rejected():
    data = write_letter(ADDRESS, pages=3, landscape_pages={2})
    result = prepare_mailpiece(request([part(data, pages=3)]))
    assert not result.cover_page
    assert any("rotated from landscape" in f for f in result.findings)
    with pikepdf.open(io.BytesIO(result.pdf)) as pdf:
        assert int(pdf.pages[1].obj.Rotate) == 90
    document = pdfium.PdfDocument(result.pdf)
    width, height = document[1].get_size()
    assert height > width  # prints portrait
    document.close()
    with pytest.raises(UnsendableError, match="landscape"):
        prepare_mailpiece(request([part(data, pages=3)], landscape=LandscapePolicy.REJECT))


def test_landscape_first_page_gets_cover():
    data = write_letter(ADDRESS, pages=2, landscape_pages={1})
    result = prepare_mailpiece(request([part(data)]))
    assert result.cover_page
    assert result.address_check == "page 1 is landscape"


def test_non_a4_page_is_reported_not_skipped():
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=(612, 792))  # US Letter
    c.drawString(100, 700, "Letter size")
    c.showPage()
    c.save()
    with pytest.raises(UnsendableError, match="not A4"):
        prepare_mailpiece(request([part(buffer.getvalue(), pages=1)]))
    with pytest.raises(UnsendableError, match="not a readable PDF"):
        prepare_mailpiece(request([part(b"%PDF-1.4 garbage", pages=1)]))


def test_merged_letters_pad_duplex_and_keep_order():
    first = write_letter(ADDRESS, pages=3, title="Brief A")
    second = write_letter(ADDRESS, pages=2, title="Brief B")
    result = prepare_mailpiece(request([PartPdf("a", first, 1, 3), PartPdf("b", second, 1, 2)]))
    assert not result.cover_page
    assert result.pages == 6  # 3 + blank back + 2
    assert result.sheets == 3
    document = pdfium.PdfDocument(result.pdf)
    texts = [document[i].get_textpage().get_text_range() for i in range(6)]
    document.close()
    assert "Brief A" in texts[0]
    assert texts[3].strip() == ""
    assert "Brief B" in texts[4]


def test_continuation_of_a_split_120_page_letter_gets_a_cover_with_note():
    data = write_letter(ADDRESS, pages=120)
    result = prepare_mailpiece(
        PrepareRequest(
            "mp-2", ADDRESS, PINGEN, [PartPdf("i1", data, 49, 96)], True, force_cover=True, cover_note="Sendung 2 von 3"
        )
    )
    assert result.cover_page
    assert result.pages == 50
    document = pdfium.PdfDocument(result.pdf)
    assert "Sendung 2 von 3" in document[0].get_textpage().get_text_range()
    assert "Seite 49, Zeile 1" in document[2].get_textpage().get_text_range()
    document.close()
    whole = prepare_mailpiece(request([PartPdf("i1", data, 1, 120)], duplex=False))
    assert whole.pages == 120
    assert whole.sheets == 120


def test_foreign_address_and_sender_line_on_cover():
    lines = ["Anna Berger", "Ringstraße 1", "1010 Wien", "ÖSTERREICH"]
    result = prepare_mailpiece(
        request(
            [part(write_letter(ADDRESS, mode="missing"))], lines=lines, sender_line="HV Muster · Weg 1 · 10115 Berlin"
        )
    )
    text, _ = window_of(result.pdf)
    assert text.replace("\r", "").splitlines() == lines
    document = pdfium.PdfDocument(result.pdf)
    sender = zone_text(document[0], DIN5008_B.sender_zone)
    document.close()
    assert "HV Muster" in sender


@pytest.mark.parametrize(
    ("data", "profile", "lines"),
    [
        (write_letter(ADDRESS), DIN5008_B, ADDRESS),  # sendable as is
        (write_letter(ADDRESS), PINGEN, ADDRESS),  # content in the franking zone
        (write_letter(ADDRESS, form="A"), DIN5008_B, ADDRESS),  # form A letter, form B window
        (write_letter(ADDRESS, mode="outside"), DIN5008_B, ADDRESS),
        (write_letter(ADDRESS, mode="missing"), DIN5008_B, ADDRESS),
    ],
    ids=["window-ok", "franking-zone", "other-form", "outside", "missing"],
)
def test_cost_estimate_layout_check_agrees_with_the_print_file(data, profile, lines):
    reason = layout_needs_cover(data, 1, profile, lines)
    result = prepare_mailpiece(request([part(data)], profile=profile, lines=lines))
    assert (reason is not None) == result.cover_page, (reason, result.address_check)


def test_cost_estimate_layout_check_leaves_a_differing_address_to_the_single_letter():
    # The address differs from master data: a property of this letter, not of the layout.
    assert layout_needs_cover(write_letter(OTHER), 1, DIN5008_B, ADDRESS) is None


def test_letter_laid_out_for_din_5008_under_an_offset_provider_window_is_layout_not_a_different_address(tmp_path):
    # The shared sample letters print the address at 20 mm (DIN 5008 form B); Pingen's window starts at 22 mm and
    # clips the first characters. That is the layout: a cover page fixes it, and a strict mismatch policy must not
    # block a correctly addressed letter.
    from smartpost_shared.sample_letters import demo_recipients, write_serial_letter

    recipient = demo_recipients(1, seed=3)[0]
    path = tmp_path / "letter.pdf"
    truth = write_serial_letter(path, [recipient], seed=3)
    data = path.read_bytes()
    lines = list(recipient.address_lines)
    pages = truth[0].last_page
    for policy in (MismatchPolicy.COVER_PAGE, MismatchPolicy.ACTION_REQUIRED):
        result = prepare_mailpiece(
            request([PartPdf("i1", data, 1, pages)], profile=PINGEN, lines=lines, on_mismatch=policy)
        )
        assert result.cover_page
        assert result.address_check == "address block outside the provider's window (letter laid out for din5008_b)"
    assert layout_needs_cover(data, 1, PINGEN, lines) == result.address_check
    # Under its own window the same letter needs nothing.
    assert not prepare_mailpiece(request([PartPdf("i1", data, 1, pages)], lines=lines)).cover_page
