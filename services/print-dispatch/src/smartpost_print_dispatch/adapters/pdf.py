"""Print-ready PDFs: A4 checks, the address in the provider's window zone, cover pages, duplex padding.

The address check looks at what will actually be printed: the text pdfium extracts inside the zone AND the ink
pdfium renders there (an address drawn as an image, in white or covered by a box would pass a coordinate-only
check). Blank zones (franking band, restricted areas) are checked on rendered pixels.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pikepdf
import pypdfium2 as pdfium

from smartpost_print_dispatch.domain.address import AddressMatch, compare_address, mentions_address
from smartpost_print_dispatch.domain.geometry import DIN5008_A, DIN5008_B, MM_PER_POINT, Rect, is_a4, is_a4_landscape

if TYPE_CHECKING:
    from smartpost_print_dispatch.domain.geometry import AddressProfile

A4_POINTS = (595.2756, 841.8898)
_INK_LEVEL = 200  # grey value below which a rendered pixel counts as ink (0 = black, 255 = white)
_MIN_ADDRESS_INK_PIXELS = 30
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


class UnsendableError(Exception):
    """The letter cannot be made sendable; the message is the reason shown to staff."""


class LandscapePolicy(StrEnum):
    ROTATE = "rotate"  # turn A4 landscape pages by 90° so they print on portrait paper
    REJECT = "reject"


class MismatchPolicy(StrEnum):
    COVER_PAGE = "cover_page"  # print the master-data address on a cover page
    ACTION_REQUIRED = "action_required"  # stop: the letter may belong to someone else


@dataclass(frozen=True)
class PartPdf:
    item_id: str
    data: bytes
    first_page: int
    last_page: int


@dataclass(frozen=True)
class PrepareRequest:
    mailpiece_id: str
    address_lines: list[str]
    profile: AddressProfile
    parts: list[PartPdf]
    duplex: bool
    force_cover: bool = False
    sender_line: str = ""
    cover_note: str = ""
    landscape: LandscapePolicy = LandscapePolicy.ROTATE
    on_mismatch: MismatchPolicy = MismatchPolicy.COVER_PAGE


@dataclass
class PreparedMailpiece:
    pdf: bytes
    pages: int
    sheets: int
    printed_pages: int
    cover_page: bool
    address_check: str
    findings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FirstPageInspection:
    zone_text: str
    match: AddressMatch
    zone_ink_pixels: int
    blocked_zones: list[str]
    address_elsewhere: bool
    # The standard window the letter's address does fit when the provider's window shows something else: the
    # letter is laid out for another window (e.g. DIN 5008 at 20 mm vs. a provider window at 22 mm), which is a
    # matter of layout, not an address that differs from master data.
    laid_out_for: str | None = None

    @property
    def sendable_as_is(self) -> bool:
        return (
            self.match is AddressMatch.MATCH
            and self.zone_ink_pixels >= _MIN_ADDRESS_INK_PIXELS
            and not (self.blocked_zones)
        )


def _rect_crop(rect: Rect, width_pt: float, height_pt: float) -> tuple[float, float, float, float]:
    left = rect.x / MM_PER_POINT
    top = rect.y / MM_PER_POINT
    right = width_pt - rect.right / MM_PER_POINT
    bottom = height_pt - rect.bottom / MM_PER_POINT
    return max(left, 0), max(bottom, 0), max(right, 0), max(top, 0)


_DARK = bytes(1 if value < _INK_LEVEL else 0 for value in range(256))


def ink_pixels(page: pdfium.PdfPage, rect: Rect, *, dpi: float = 72) -> int:
    """Number of dark pixels pdfium renders inside ``rect`` (grayscale, white background)."""
    width_pt, height_pt = page.get_size()
    bitmap = page.render(
        scale=dpi / 72, crop=_rect_crop(rect, width_pt, height_pt), grayscale=True, fill_color=(255, 255, 255, 255)
    )
    try:
        buffer = bytes(bitmap.buffer)
        width, height, stride = int(bitmap.width), int(bitmap.height), int(bitmap.stride)
        rows = b"".join(buffer[row * stride : row * stride + width] for row in range(height))
        return rows.translate(_DARK).count(1)
    finally:
        bitmap.close()


def zone_text(page: pdfium.PdfPage, rect: Rect) -> str:
    width_pt, height_pt = page.get_size()
    left, bottom, right, top = rect.to_pdf_points(height_pt)
    del width_pt
    textpage = page.get_textpage()
    try:
        return str(textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top))
    finally:
        textpage.close()


def page_text(page: pdfium.PdfPage) -> str:
    textpage = page.get_textpage()
    try:
        return str(textpage.get_text_range())
    finally:
        textpage.close()


def inspect_first_page(page: pdfium.PdfPage, profile: AddressProfile, expected: list[str]) -> FirstPageInspection:
    text = zone_text(page, profile.address_zone)
    match = compare_address(expected, text)
    ink = ink_pixels(page, profile.address_zone)
    # 1 mm tolerance so anti-aliased edges of neighbouring content do not count.
    blocked = [zone.name or "restricted" for zone in profile.blank_zones() if ink_pixels(page, zone.shrink(1.0)) > 0]
    elsewhere = False
    if match is AddressMatch.EMPTY:
        elsewhere = mentions_address(expected, page_text(page))
    laid_out_for = None
    if match is AddressMatch.DIFFERENT:
        laid_out_for = next(
            (
                standard.name
                for standard in (DIN5008_B, DIN5008_A)
                if standard.address_zone != profile.address_zone
                and compare_address(expected, zone_text(page, standard.address_zone)) is AddressMatch.MATCH
            ),
            None,
        )
    return FirstPageInspection(text, match, ink, blocked, elsewhere, laid_out_for)


def _page_size_mm(page: pikepdf.Page) -> tuple[float, float, int]:
    box = page.mediabox
    unit = float(page.obj.get("/UserUnit", 1))
    width = abs(float(box[2]) - float(box[0])) * unit * MM_PER_POINT
    height = abs(float(box[3]) - float(box[1])) * unit * MM_PER_POINT
    rotate = int(page.obj.get("/Rotate", 0)) % 360
    if rotate in (90, 270):
        width, height = height, width
    return width, height, rotate


class _Fonts:
    _lock = threading.Lock()
    _name: str | None = None

    @classmethod
    def name(cls) -> str:
        with cls._lock:
            if cls._name is None:
                from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415 - reportlab only loads for cover pages
                from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415

                path = next((p for p in _FONT_CANDIDATES if Path(p).exists()), None)
                if path is None:
                    import reportlab  # noqa: PLC0415

                    path = str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")
                pdfmetrics.registerFont(TTFont("SmartPostSans", path))
                cls._name = "SmartPostSans"
            return cls._name


def render_cover_page(
    address_lines: list[str], profile: AddressProfile, *, sender_line: str = "", note: str = ""
) -> bytes:
    """An A4 cover page with the address in the profile's address zone (and the sender line above it)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth  # noqa: PLC0415
    from reportlab.pdfgen import canvas  # noqa: PLC0415

    font = _Fonts.name()
    width_pt, height_pt = A4_POINTS
    zone = profile.address_zone
    zone_width = (zone.width - 2) / MM_PER_POINT
    size = 10.0
    for line in address_lines:
        while stringWidth(line, font, size) > zone_width and size > 8:
            size -= 0.5
        if stringWidth(line, font, size) > zone_width:
            raise UnsendableError(f"address line too long for the window: {line!r}")
    leading = min(size * 1.2, (zone.height - 2) / MM_PER_POINT / max(len(address_lines), 1))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4_POINTS, pageCompression=1)
    pdf.setTitle("Deckblatt")
    x = (zone.x + 1) / MM_PER_POINT
    y = height_pt - (zone.y + 1) / MM_PER_POINT - size * 0.8
    pdf.setFont(font, size)
    for line in address_lines:
        pdf.drawString(x, y, line)
        y -= leading
    if sender_line and profile.sender_zone is not None:
        sender = profile.sender_zone
        sender_size = 7.0
        while stringWidth(sender_line, font, sender_size) > (sender.width - 2) / MM_PER_POINT and sender_size > 5:
            sender_size -= 0.5
        pdf.setFont(font, sender_size)
        pdf.drawString(x, height_pt - (sender.bottom - 1.5) / MM_PER_POINT, sender_line)
    pdf.setFont(font, 9)
    body_y = height_pt - 115 / MM_PER_POINT
    for text in ("Deckblatt zur Zustellung. Ihr Schreiben folgt auf den nächsten Seiten.", note):
        if text:
            pdf.drawString(25 / MM_PER_POINT, body_y, text)
            body_y -= 14
    del width_pt
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


_ADDRESS_DIFFERS = "address differs from master data"


def _cover_finding(inspection: FirstPageInspection) -> str | None:  # noqa: PLR0911 - one return per finding
    """Why page 1 needs a cover page (None: sendable as is). Shared by the print file and the cost estimate."""
    if inspection.sendable_as_is:
        return None
    if inspection.match is AddressMatch.MATCH:
        if inspection.blocked_zones:
            return f"content in {', '.join(inspection.blocked_zones)}"
        return "address text in the window is not visible when rendered"
    if inspection.laid_out_for is not None:
        return f"address block outside the provider's window (letter laid out for {inspection.laid_out_for})"
    if inspection.match is AddressMatch.DIFFERENT:
        return _ADDRESS_DIFFERS
    if inspection.zone_ink_pixels >= _MIN_ADDRESS_INK_PIXELS:
        return "address in the window is not machine-readable (image or drawing)"
    if inspection.address_elsewhere:
        return "address outside the window zone"
    return "no address on page 1"


def _decide_cover(request: PrepareRequest, inspection: FirstPageInspection | None, reason: str) -> tuple[bool, str]:
    """(needs cover page, finding). ``inspection`` is None when page 1 could not be inspected (``reason``)."""
    if inspection is None:
        return True, reason
    finding = _cover_finding(inspection)
    if finding is None:
        return False, "address in window"
    if finding == _ADDRESS_DIFFERS and request.on_mismatch is MismatchPolicy.ACTION_REQUIRED:
        raise UnsendableError(
            "address in the letter differs from master data: "
            + " / ".join(line for line in inspection.zone_text.splitlines() if line.strip())
        )
    return True, finding


def layout_needs_cover(data: bytes, page_number: int, profile: AddressProfile, address_lines: list[str]) -> str | None:
    """Why letters laid out like this one need a cover page for ``profile`` (None: they do not, or it depends).

    For the cost estimate before an order: one letter per document stands for its layout (letters of one ERP
    export share it). Only layout reasons count (content in a blocked zone such as the franking zone, no or an
    unreadable address in the window, a landscape or rotated first page); an address that merely differs from
    master data is a property of the single letter and decided when the print file is made.
    """
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            page = pdf.pages[page_number - 1]
            width, height, rotate = _page_size_mm(page)
            if is_a4_landscape(width, height):
                return "page 1 is landscape"
            if rotate % 360 != 0:
                return "page 1 is rotated"
    except (pikepdf.PdfError, IndexError):
        return None  # not readable: making the print file will say so
    document = pdfium.PdfDocument(data)
    try:
        inspection = inspect_first_page(document[page_number - 1], profile, address_lines)
    finally:
        document.close()
    finding = _cover_finding(inspection)
    return None if finding == _ADDRESS_DIFFERS else finding


def prepare_mailpiece(request: PrepareRequest) -> PreparedMailpiece:  # noqa: C901, PLR0912, PLR0915 - one linear pipeline
    """Build the print file of one mailpiece (pure CPU: bytes in, bytes out). Raises :class:`UnsendableError`."""
    if not request.parts:
        raise UnsendableError("mailpiece has no letters")
    output = pikepdf.Pdf.new()
    sources: list[pikepdf.Pdf] = []
    findings: list[str] = []
    first_page_rotated = False
    try:
        segments: list[list[pikepdf.Page]] = []
        for part_number, part in enumerate(request.parts):
            try:
                source = pikepdf.open(io.BytesIO(part.data))
            except pikepdf.PdfError as exc:
                raise UnsendableError(f"letter {part.item_id} is not a readable PDF: {exc}") from exc
            sources.append(source)
            pages = list(source.pages)
            if part.last_page > len(pages) or part.first_page < 1:
                raise UnsendableError(
                    f"letter {part.item_id} has {len(pages)} pages, pages {part.first_page}-{part.last_page} requested"
                )
            selected = pages[part.first_page - 1 : part.last_page]
            for offset, page in enumerate(selected):
                width, height, rotate = _page_size_mm(page)
                number = part.first_page + offset
                if is_a4(width, height):
                    continue
                if is_a4_landscape(width, height):
                    if request.landscape is LandscapePolicy.REJECT:
                        raise UnsendableError(f"letter {part.item_id} page {number} is A4 landscape")
                    page.obj.Rotate = (rotate + 90) % 360
                    findings.append(f"letter {part.item_id} page {number} rotated from landscape")
                    if part_number == 0 and offset == 0:
                        first_page_rotated = True
                    continue
                raise UnsendableError(
                    f"letter {part.item_id} page {number} is {width:.0f} × {height:.0f} mm, not A4 (210 × 297 mm)"
                )
            segments.append(selected)

        first = request.parts[0]
        inspection: FirstPageInspection | None = None
        cover_reason = ""
        if request.force_cover:
            cover_reason = "continuation envelope starts inside a letter"
        elif first_page_rotated:
            cover_reason = "page 1 is landscape"
        elif int(segments[0][0].obj.get("/Rotate", 0)) % 360 != 0:
            cover_reason = "page 1 is rotated"
        else:
            document = pdfium.PdfDocument(first.data)
            try:
                inspection = inspect_first_page(document[first.first_page - 1], request.profile, request.address_lines)
            finally:
                document.close()
        cover, finding = _decide_cover(request, inspection, cover_reason)
        findings.insert(0, finding)

        if cover:
            cover_pdf = pikepdf.open(
                io.BytesIO(
                    render_cover_page(
                        request.address_lines, request.profile, sender_line=request.sender_line, note=request.cover_note
                    )
                )
            )
            sources.append(cover_pdf)
            output.pages.extend(cover_pdf.pages)
            if request.duplex:
                output.add_blank_page(page_size=A4_POINTS)
        for index, selected in enumerate(segments):
            output.pages.extend(selected)
            if request.duplex and len(selected) % 2 == 1 and index < len(segments) - 1:
                output.add_blank_page(page_size=A4_POINTS)
        buffer = io.BytesIO()
        output.save(buffer, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.generate)
        data = buffer.getvalue()
        page_count = len(output.pages)
    finally:
        output.close()
        for source in sources:
            source.close()

    if cover:
        _verify_print_file(data, request)
    content_pages = sum(len(s) for s in segments) + (1 if cover else 0)
    sheets = (page_count + 1) // 2 if request.duplex else page_count
    return PreparedMailpiece(
        pdf=data,
        pages=page_count,
        sheets=sheets,
        printed_pages=content_pages,
        cover_page=cover,
        address_check=finding,
        findings=findings,
    )


def _verify_print_file(data: bytes, request: PrepareRequest) -> None:
    """Render page 1 of the finished file: the address must be readable in the zone and blank zones empty."""
    document = pdfium.PdfDocument(data)
    try:
        inspection = inspect_first_page(document[0], request.profile, request.address_lines)
    finally:
        document.close()
    if not inspection.sendable_as_is:
        raise UnsendableError(
            f"print file failed its own check (address {inspection.match.value}, "
            f"ink {inspection.zone_ink_pixels} px, blocked {inspection.blocked_zones})"
        )
