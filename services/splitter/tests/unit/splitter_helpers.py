"""Helpers shared by the splitter's unit tests: build a SplitRequested envelope and run the use case in memory."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pikepdf
import pypdfium2 as pdfium

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed
from smartpost_shared.contracts.envelope import Envelope, make_envelope
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.storage import MemoryStore, source_key
from smartpost_splitter.adapters.sandbox import InlineRunner
from smartpost_splitter.application import SplitService, SplitterOptions

if TYPE_CHECKING:
    from pathlib import Path

    from smartpost_shared.contracts.common import SplitRule

ACCOUNT = "acc-1"
LETTER = "letter-1"


def request_envelope(
    rule: SplitRule,
    *,
    document_id: str = "doc-1",
    filename: str = "serienbrief.pdf",
    attachments: list[str] | None = None,
) -> Envelope:
    return make_envelope(
        SplitRequested(
            letter_id=LETTER,
            document_id=document_id,
            source_key=source_key(ACCOUNT, LETTER, document_id),
            filename=filename,
            position=0,
            rule=rule,
            attachment_keys=attachments or [],
        ),
        account_id=ACCOUNT,
        producer="letters",
    )


def run_split(
    data: bytes,
    rule: SplitRule,
    *,
    store: MemoryStore | None = None,
    attachments: dict[str, bytes] | None = None,
    envelope: Envelope | None = None,
    options: SplitterOptions | None = None,
) -> tuple[DocumentSplit | DocumentSplitFailed, MemoryStore, Envelope]:
    store = store or MemoryStore()
    envelope = envelope or request_envelope(rule, attachments=list(attachments or {}))
    assert isinstance(envelope.payload, SplitRequested)
    store.put(envelope.payload.source_key, data, content_type="application/pdf")
    for key, value in (attachments or {}).items():
        store.put(key, value, content_type="application/pdf")
    service = SplitService(
        store, InlineRunner(), options or SplitterOptions(upload_threads=3, chunk_pages=37, thumbnail_width=120)
    )
    result = service.handle(envelope)
    assert isinstance(result.payload, (DocumentSplit, DocumentSplitFailed))
    return result.payload, store, result


def pdf_bytes(path: Path) -> bytes:
    return path.read_bytes()


def page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def first_page_text(data: bytes) -> str:
    doc = pdfium.PdfDocument(data)
    try:
        return doc[0].get_textpage().get_text_range()
    finally:
        doc.close()
