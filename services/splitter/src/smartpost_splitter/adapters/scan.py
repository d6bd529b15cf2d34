"""Page scanning and thumbnails with pypdfium2: the code that runs in the text-extraction worker processes.

Kept apart from :mod:`smartpost_splitter.adapters.pdf` (pikepdf, input checks, the scanners that drive the workers)
so that a spawned worker imports only pypdfium2 and :mod:`smartpost_splitter.pages`: no pikepdf, no pydantic.
Only small :class:`~smartpost_splitter.pages.PageFacts` travel back to the service process.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from smartpost_shared.vocabulary import SplitStrategy
from smartpost_splitter.pages import (
    FINGERPRINT_TOP_MM,
    MM,
    CompiledPlan,
    PageFacts,
    ProposalPage,
    SplitPlan,
    address_from_zone,
    address_zone_mm,
    context_lines,
    proposal_page,
    starts_by_itself,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


_WORKER_DOC: tuple[str, pdfium.PdfDocument] | None = None
_WORKER_PLAN: tuple[SplitPlan, CompiledPlan] | None = None


def _document(path: str) -> pdfium.PdfDocument:
    global _WORKER_DOC  # noqa: PLW0603 - one open document per worker process, reused across its page ranges
    if _WORKER_DOC is None or _WORKER_DOC[0] != path:
        if _WORKER_DOC is not None:
            _WORKER_DOC[1].close()
        _WORKER_DOC = (path, pdfium.PdfDocument(path))
    return _WORKER_DOC[1]


def release_document() -> None:
    global _WORKER_DOC  # noqa: PLW0603
    if _WORKER_DOC is not None:
        _WORKER_DOC[1].close()
        _WORKER_DOC = None


def _compiled(plan: SplitPlan) -> CompiledPlan:
    global _WORKER_PLAN  # noqa: PLW0603 - regexes compiled once per plan and worker
    if _WORKER_PLAN is None or _WORKER_PLAN[0] != plan:
        _WORKER_PLAN = (plan, CompiledPlan.of(plan))
    return _WORKER_PLAN[1]


def _has_images(page: pdfium.PdfPage) -> bool:
    return any(True for _ in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2))


def head_text(path: str, index: int) -> str:
    """Text of the letter head region of one page (the sample page of the layout fingerprint)."""
    page = _document(path)[index]
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            return _head(textpage, width, height)
        finally:
            textpage.close()
    finally:
        page.close()


def _head(textpage: pdfium.PdfTextPage, width: float, height: float) -> str:
    text: str = textpage.get_text_bounded(left=0, top=height, right=width, bottom=height - FINGERPRINT_TOP_MM * MM)
    return text


def _scan_page(
    doc: pdfium.PdfDocument,
    index: int,
    compiled: CompiledPlan,
    *,
    previous_is_separator: bool = False,
    thumbnail_width: int = 0,
) -> PageFacts:
    """Read one page once: text, marker, evidence; address window and thumbnail where a letter may start."""
    plan = compiled.plan
    page = doc[index]
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
            head = _head(textpage, width, height) if plan.fingerprint else ""
            # Loading the text page is the cost (about 90 % of it); reading the window zone costs little more, but
            # only the first page of a letter (or its separator) reports an address, so read it only there.
            address: tuple[str, ...] = ()
            if plan.strategy is SplitStrategy.ADDRESS_BLOCK:
                address = _address(textpage, height, plan)
                marker = compiled.marker(text, address, head)
            else:
                marker = compiled.marker(text, (), head)
                starts = starts_by_itself(plan, marker, index, previous_is_separator)
                if starts or _is_separator_marker(plan, marker, text):
                    address = _address(textpage, height, plan)
        finally:
            textpage.close()
        # Only "any text at all" matters (blank / scanned pages); counting characters in Python is slow.
        text_chars = len(text) if text and not text.isspace() else 0
        has_images = _has_images(page) if text_chars == 0 else False
        identifiers, property_refs, unit_refs = compiled.evidence_of(text)
        facts = PageFacts(
            index=index,
            width_pt=width,
            height_pt=height,
            text_chars=text_chars,
            has_images=has_images,
            marker=marker,
            address_lines=address,
            identifiers=identifiers,
            property_refs=property_refs,
            unit_refs=unit_refs,
            context_lines=context_lines(text, address) if address else (),
        )
        if (
            thumbnail_width
            and not _is_separator(plan, facts)
            and starts_by_itself(plan, facts.marker, index, previous_is_separator)
        ):
            facts = replace(facts, thumbnail=_render(page, thumbnail_width))
        return facts
    finally:
        page.close()


def _address(textpage: pdfium.PdfTextPage, height: float, plan: SplitPlan) -> tuple[str, ...]:
    return _address_in_form(textpage, height, plan.address_form)


def _address_in_form(textpage: pdfium.PdfTextPage, height: float, form: str) -> tuple[str, ...]:
    left, top, right, bottom = address_zone_mm(form)
    zone = textpage.get_text_bounded(
        left=left * MM, top=height - top * MM, right=right * MM, bottom=height - bottom * MM
    )
    beside = textpage.get_text_bounded(
        left=(right + 2) * MM, top=height - top * MM, right=(right + 18) * MM, bottom=height - bottom * MM
    )
    return address_from_zone(zone, beside)


def _is_separator_marker(plan: SplitPlan, marker: str | None, text: str) -> bool:
    """A possible separator page (its address is the letter's when the letter itself has none)."""
    if plan.strategy is SplitStrategy.KEYWORD:
        return marker is not None
    return plan.strategy is SplitStrategy.BLANK_SEPARATOR and not text.strip()


def _is_separator(plan: SplitPlan, facts: PageFacts) -> bool:
    if plan.strategy is SplitStrategy.BLANK_SEPARATOR:
        return facts.is_blank
    if plan.strategy is SplitStrategy.KEYWORD:
        return facts.marker is not None and plan.drop_separator
    return False


def scan_range(path: str, plan: SplitPlan, start: int, stop: int, thumbnail_width: int) -> list[PageFacts]:
    """Facts for pages ``start``..``stop-1``; pages that may start a letter carry a PNG thumbnail."""
    doc = _document(path)
    compiled = _compiled(plan)
    previous_is_separator = False
    if start > 0 and plan.strategy in {SplitStrategy.BLANK_SEPARATOR, SplitStrategy.KEYWORD}:
        previous_is_separator = _is_separator(plan, _scan_page(doc, start - 1, compiled))
    out: list[PageFacts] = []
    try:
        for index in range(start, stop):
            try:
                facts = _scan_page(
                    doc, index, compiled, previous_is_separator=previous_is_separator, thumbnail_width=thumbnail_width
                )
            except pdfium.PdfiumError as exc:
                raise PageUnreadableError(index, str(exc)) from None
            previous_is_separator = _is_separator(plan, facts)
            out.append(facts)
    finally:
        # pdfium keeps every object it parsed until the document is closed: closing after each range keeps a
        # worker's memory bounded by the range, not by the document (re-opening costs milliseconds).
        release_document()
    return out


class PageUnreadableError(Exception):
    """pdfium cannot load or read page ``index`` (0-based) although the document opened."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(index, detail)
        self.index = index
        self.detail = detail


# A thumbnail is never higher than this many times its width (a 0.01 pt wide page would otherwise ask for a
# 200 x 288 million pixel bitmap).
THUMBNAIL_MAX_ASPECT = 4.0


def thumbnail_scale(page_width: float, page_height: float, width: int) -> float | None:
    """Scale for a thumbnail ``width`` pixels wide and at most ``THUMBNAIL_MAX_ASPECT * width`` high, by both sides.

    ``None`` for a degenerate page (a side of zero, negative or not a number): nothing to render.
    """
    if not (page_width > 0 and page_height > 0):  # also catches NaN
        return None
    return min(width / page_width, width * THUMBNAIL_MAX_ASPECT / page_height)


def blank_thumbnail(width: int) -> bytes:
    """A white thumbnail (A4 proportions) for a page that has nothing to render."""
    height = round(width * 297 / 210)
    return grey_png(b"\xff" * (width * height), width, height, width)


def _render(page: pdfium.PdfPage, width: int) -> bytes:
    # Greyscale: a review thumbnail needs the layout, not the colours, and it is a third of the pixels to encode.
    page_width, page_height = page.get_size()
    scale = thumbnail_scale(page_width, page_height, width)
    if scale is None:
        return blank_thumbnail(width)
    bitmap = page.render(scale=scale, may_draw_forms=False, grayscale=True)
    if bitmap.width == 0 or bitmap.height == 0:
        return blank_thumbnail(width)
    return grey_png(bitmap.buffer, bitmap.width, bitmap.height, bitmap.stride)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def grey_png(pixels: ReadableBuffer, width: int, height: int, stride: int) -> bytes:
    """An 8-bit greyscale PNG of a pdfium bitmap, written directly.

    PIL's encoder (RGB, adaptive row filters) was the largest single cost of a thumbnail: 1.4 ms per 200-px page
    against 0.6 ms here (render included), for a file of half the size. Rows are stored unfiltered, deflate level 1:
    a page thumbnail is mostly white, which deflate compresses well without filters.
    """
    rows = memoryview(pixels)
    raw = bytearray()
    for y in range(height):
        raw += b"\x00"  # filter type "None"
        raw += rows[y * stride : y * stride + width]
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bit, greyscale, deflate, no filter, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 1))
        + _png_chunk(b"IEND", b"")
    )


def render_thumbnail(doc: pdfium.PdfDocument, index: int, width: int) -> bytes:
    page = doc[index]
    try:
        return _render(page, width)
    finally:
        page.close()


def thumbnail_of(path: str, index: int, width: int) -> bytes:
    return render_thumbnail(_document(path), index, width)


def head_text_task(path: str, index: int) -> str:
    """Sandbox task: the head text of one page, with the document closed again afterwards."""
    try:
        return head_text(path, index)
    finally:
        release_document()


def proposal_pages(path: str, max_pages: int) -> tuple[int, list[ProposalPage]]:
    """(page count, facts of the first ``max_pages`` pages) for the split-strategy proposal."""
    doc = pdfium.PdfDocument(path)
    try:
        total = len(doc)
        out: list[ProposalPage] = []
        for index in range(min(total, max_pages)):
            page = doc[index]
            try:
                _width, height = page.get_size()
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                    address_a = _address_in_form(textpage, height, "A")
                    address_b = _address_in_form(textpage, height, "B")
                finally:
                    textpage.close()
                has_images = _has_images(page) if not text.strip() else False
            finally:
                page.close()
            out.append(proposal_page(index, text, address_a, address_b, has_images=has_images))
        return total, out
    finally:
        doc.close()
