"""PDF I/O: input checks (pikepdf), the scanners that drive page scanning, splitting (pikepdf, tuned).

Tuning follows /work/shared/docs/pdf-performance.md: the source is opened once, its page list is materialised
once (``pdf.pages[a:b]`` is O(n) per slice), and parts are saved without recompressing streams.
Page scanning itself (pypdfium2) lives in :mod:`smartpost_splitter.adapters.scan` and runs in worker processes
over page ranges; only small :class:`PageFacts` travel back.
"""

from __future__ import annotations

import io
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pikepdf
import pypdfium2 as pdfium

from smartpost_shared.contracts.documents import SplitFailureReason
from smartpost_splitter.adapters.scan import grey_png, head_text, release_document, scan_range, thumbnail_of
from smartpost_splitter.domain import Failure

__all__ = [
    "InlineScanner",
    "PageScanner",
    "PartWriter",
    "PdfRejectedError",
    "ProcessScanner",
    "SourceInfo",
    "grey_png",
    "inspect_pdf",
    "thumbnail_of",
]

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from smartpost_splitter.pages import PageFacts, SplitPlan


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
