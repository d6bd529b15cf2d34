"""PDF I/O: input checks (pikepdf), page scanning and thumbnails (pypdfium2), splitting (pikepdf, tuned).

Tuning follows /work/shared/docs/pdf-performance.md: the source is opened once, its page list is materialised
once (``pdf.pages[a:b]`` is O(n) per slice), and parts are saved without recompressing streams.
Page scanning runs in worker processes over page ranges; only small :class:`PageFacts` travel back.
"""

from __future__ import annotations

import io
import multiprocessing
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from smartpost_shared.contracts.common import SplitStrategy
from smartpost_shared.contracts.documents import SplitFailureReason
from smartpost_splitter.domain import (
    FINGERPRINT_TOP_MM,
    MM,
    CompiledPlan,
    Failure,
    PageFacts,
    SplitPlan,
    address_from_zone,
    address_zone_mm,
    starts_by_itself,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from _typeshed import ReadableBuffer


class PdfRejectedError(Exception):
    """The file cannot be split; ``failure`` says why in words staff understand."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


@dataclass(frozen=True)
class SourceInfo:
    page_count: int


def inspect_pdf(path: Path, label: str) -> SourceInfo:
    """Reject what cannot be split before any work: empty, not a PDF, corrupt, encrypted, no pages."""
    size = path.stat().st_size
    if size == 0:
        raise PdfRejectedError(Failure(SplitFailureReason.EMPTY_FILE, f"„{label}“ ist leer (0 Byte)."))
    with path.open("rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise PdfRejectedError(
            Failure(SplitFailureReason.NOT_A_PDF, f"„{label}“ ist keine PDF-Datei (Dateiinhalt ist kein PDF).")
        )
    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted:
                raise PdfRejectedError(_encrypted(label))
            pages = len(pdf.pages)
    except pikepdf.PasswordError as exc:
        raise PdfRejectedError(_encrypted(label)) from exc
    except pikepdf.PdfError as exc:
        raise PdfRejectedError(
            Failure(
                SplitFailureReason.CORRUPT,
                f"„{label}“ ist beschädigt und konnte nicht repariert werden ({_short(exc)}). "
                "Bitte das Dokument neu exportieren.",
            )
        ) from exc
    if pages == 0:
        raise PdfRejectedError(Failure(SplitFailureReason.NO_PAGES, f"„{label}“ enthält keine Seiten."))
    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise PdfRejectedError(
            Failure(SplitFailureReason.CORRUPT, f"„{label}“ ist beschädigt und nicht lesbar ({_short(exc)}).")
        ) from exc
    try:
        if len(doc) != pages:
            raise PdfRejectedError(
                Failure(
                    SplitFailureReason.CORRUPT,
                    f"„{label}“ ist beschädigt: die Seitenzahl ist nicht eindeutig ({pages} bzw. {len(doc)}).",
                )
            )
    finally:
        doc.close()
    return SourceInfo(page_count=pages)


def _encrypted(label: str) -> Failure:
    return Failure(
        SplitFailureReason.ENCRYPTED,
        f"„{label}“ ist verschlüsselt bzw. passwort- oder schreibgeschützt. Bitte ohne Schutz exportieren "
        "und erneut hochladen.",
    )


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]


# ----------------------------------------------------------------------------------------------------------------
# Scanning (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------------

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
    left, top, right, bottom = address_zone_mm(plan.address_form)
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
            facts = _scan_page(
                doc, index, compiled, previous_is_separator=previous_is_separator, thumbnail_width=thumbnail_width
            )
            previous_is_separator = _is_separator(plan, facts)
            out.append(facts)
    finally:
        # pdfium keeps every object it parsed until the document is closed: closing after each range keeps a
        # worker's memory bounded by the range, not by the document (re-opening costs milliseconds).
        release_document()
    return out


def _render(page: pdfium.PdfPage, width: int) -> bytes:
    # Greyscale: a review thumbnail needs the layout, not the colours, and it is a third of the pixels to encode.
    bitmap = page.render(scale=width / page.get_width(), may_draw_forms=False, grayscale=True)
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


class PageScanner(Protocol):
    def scan(self, path: Path, plan: SplitPlan, page_count: int) -> Iterator[list[PageFacts]]: ...

    def head_text(self, path: Path, index: int) -> str: ...

    def close(self) -> None: ...


class InlineScanner:
    """Scans in the calling process (small documents, unit tests)."""

    def __init__(self, *, chunk_pages: int = 200, thumbnail_width: int = 200) -> None:
        self.chunk_pages = chunk_pages
        self.thumbnail_width = thumbnail_width

    def scan(self, path: Path, plan: SplitPlan, page_count: int) -> Iterator[list[PageFacts]]:
        try:
            for start in range(0, page_count, self.chunk_pages):
                yield scan_range(
                    str(path), plan, start, min(start + self.chunk_pages, page_count), self.thumbnail_width
                )
        finally:
            release_document()

    def head_text(self, path: Path, index: int) -> str:
        return head_text(str(path), index)

    def close(self) -> None:
        release_document()


class ProcessScanner:
    """Scans page ranges in a pool of worker processes; results come back in page order, a bounded window ahead.

    Workers are started once (spawn: the service process runs an event loop and threads, so no fork) and reuse
    the opened document across the ranges of one source. Small documents are scanned inline (no IPC overhead).
    """

    def __init__(
        self, processes: int, *, chunk_pages: int = 250, thumbnail_width: int = 200, inline_below_pages: int = 300
    ) -> None:
        self.processes = processes
        self.chunk_pages = chunk_pages
        self.thumbnail_width = thumbnail_width
        self.inline_below_pages = inline_below_pages
        self._inline = InlineScanner(chunk_pages=chunk_pages, thumbnail_width=thumbnail_width)
        self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))

    def scan(self, path: Path, plan: SplitPlan, page_count: int) -> Iterator[list[PageFacts]]:
        if page_count < self.inline_below_pages:
            yield from self._inline.scan(path, plan, page_count)
            return
        ranges = deque(
            (start, min(start + self.chunk_pages, page_count)) for start in range(0, page_count, self.chunk_pages)
        )
        window: deque[Future[list[PageFacts]]] = deque()
        try:
            while ranges or window:
                while ranges and len(window) < self.processes * 2:
                    start, stop = ranges.popleft()
                    window.append(self._pool.submit(scan_range, str(path), plan, start, stop, self.thumbnail_width))
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def head_text(self, path: Path, index: int) -> str:
        return self._inline.head_text(path, index)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (benchmarks measure their memory)."""
        return list(self._pool._processes or {})  # noqa: SLF001 - the executor exposes no public accessor

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._inline.close()


# ----------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------


class PartWriter:
    """Cuts parts from one source: opened once, page list materialised once, streams copied as stored."""

    def __init__(self, source: Path, attachments: list[Path]) -> None:
        self._source = pikepdf.open(source)
        self._pages = list(self._source.pages)
        self._attachments = [pikepdf.open(p) for p in attachments]
        self._attachment_pages = [list(a.pages) for a in self._attachments]

    @property
    def attachment_page_count(self) -> int:
        return sum(len(p) for p in self._attachment_pages)

    def write(self, first: int, last: int) -> bytes:
        """Pages ``first``..``last`` (0-based, inclusive) plus every attachment, as PDF bytes."""
        out = pikepdf.Pdf.new()
        try:
            out.pages.extend(self._pages[first : last + 1])
            for pages in self._attachment_pages:
                out.pages.extend(pages)
            buffer = io.BytesIO()
            # deterministic_id: a re-run must produce byte-identical parts (same SHA-256 as the re-emitted event).
            out.save(
                buffer,
                compress_streams=False,
                object_stream_mode=pikepdf.ObjectStreamMode.generate,
                deterministic_id=True,
            )
            return buffer.getvalue()
        finally:
            out.close()

    def close(self) -> None:
        for pdf in self._attachments:
            pdf.close()
        self._source.close()
