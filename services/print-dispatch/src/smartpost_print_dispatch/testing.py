"""Generated letters for tests, the benchmark and the demo (reportlab).

DIN 5008 layouts with the address in the window, missing, outside the window or different from master data, optional
landscape pages.
"""

from __future__ import annotations

import io
import secrets
from typing import TYPE_CHECKING, Literal

from smartpost_print_dispatch.adapters.pdf import _Fonts
from smartpost_print_dispatch.domain.geometry import MM_PER_POINT

if TYPE_CHECKING:
    from collections.abc import Collection

# Provider credentials for tests that run the fake provider next to print-dispatch: random per test process.
PROVIDER_API_KEY = secrets.token_urlsafe(24)
PROVIDER_WEBHOOK_SECRET = secrets.token_urlsafe(24)

AddressMode = Literal["window", "missing", "outside", "image"]
_A4 = (595.2756, 841.8898)
_LANDSCAPE = (841.8898, 595.2756)


def _mm(value: float) -> float:
    return value / MM_PER_POINT


def write_letter(
    address_lines: list[str],
    *,
    mode: AddressMode = "window",
    form: Literal["A", "B"] = "B",
    pages: int = 2,
    landscape_pages: Collection[int] = (),
    sender_line: str = "Hausverwaltung Muster GmbH · Musterweg 1 · 10115 Berlin",
    title: str = "Abrechnung 2025",
) -> bytes:
    """One letter as PDF bytes. ``landscape_pages`` are 1-based page numbers drawn on A4 landscape."""
    from reportlab.pdfgen import canvas  # noqa: PLC0415

    font = _Fonts.name()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=_A4, pageCompression=1)
    field_top = 27.0 if form == "A" else 45.0
    for number in range(1, pages + 1):
        size = _LANDSCAPE if number in landscape_pages else _A4
        pdf.setPageSize(size)
        height = size[1]
        pdf.setFont(font, 10)
        if number == 1:
            # Fold marks and the punch mark at the left edge, as on real stationery.
            for y_mm in ((87, 192) if form == "A" else (105, 210)) + (148.5,):
                pdf.line(_mm(3), height - _mm(y_mm), _mm(8), height - _mm(y_mm))
            pdf.drawString(_mm(125), height - _mm(field_top + 5), "Ihr Zeichen: K-004711")
            pdf.drawString(_mm(125), height - _mm(field_top + 10), "Datum: 01.12.2025")
            if mode in ("window", "image"):
                pdf.setFont(font, 7)
                pdf.drawString(_mm(21), height - _mm(field_top + 15), sender_line)
                pdf.setFont(font, 10)
                y = field_top + 17.7 + 3.5
                for line in address_lines:
                    if mode == "window":
                        pdf.drawString(_mm(21), height - _mm(y), line)
                    else:  # "image": the address as vector strokes without text (like a scan)
                        pdf.rect(_mm(21), height - _mm(y), _mm(3 * len(line) / 2), _mm(2.5), fill=1)
                    y += 4.5
            elif mode == "outside":
                y = 200.0
                for line in address_lines:
                    pdf.drawString(_mm(120), height - _mm(y), line)
                    y += 4.5
            pdf.setFont(font, 12)
            pdf.drawString(_mm(25), height - _mm(100), title)
            pdf.setFont(font, 10)
        body_top = 110 if number == 1 else 30
        for row in range(20):
            pdf.drawString(_mm(25), height - _mm(body_top + row * 6), f"Seite {number}, Zeile {row + 1}: Lorem ipsum.")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def demo_address(index: int) -> list[str]:
    return [f"Frau Erika Muster{index:05d}", f"Musterstraße {index % 200 + 1}", f"{10000 + index % 89999:05d} Berlin"]
