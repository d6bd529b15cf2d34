"""Bad input: each case ends in DocumentSplitFailed with a readable reason; the source stays, no part is stored."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pikepdf
import pytest
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.storage import MemoryStore
from smartpost_splitter.adapters.sandbox import InlineRunner
from smartpost_splitter.application import SplitService

from .splitter_helpers import ACCOUNT, LETTER, request_envelope, run_split

if TYPE_CHECKING:
    from pathlib import Path

RULE = SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")


@pytest.fixture(scope="module")
def letters_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("inputs") / "letters.pdf"
    write_serial_letter(path, demo_recipients(3, seed=9), pages_per_letter=(1, 2))
    return path.read_bytes()


def _encrypted(data: bytes, *, user: str, owner: str) -> bytes:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user=user, owner=owner))
    return out.getvalue()


def _scanned_pdf(pages: int) -> bytes:
    image = Image.new("RGB", (400, 560), (250, 250, 250))
    for y in range(40, 520, 12):
        image.paste((30, 30, 30), (40, y, 360, y + 4))
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    reader = ImageReader(image)
    for _ in range(pages):
        canvas.drawImage(reader, 0, 0, width=595, height=842)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _empty_pdf() -> bytes:
    out = io.BytesIO()
    pikepdf.Pdf.new().save(out)
    return out.getvalue()


def _assert_failed(result: object, code: SplitFailureReason, *words: str) -> DocumentSplitFailed:
    assert isinstance(result, DocumentSplitFailed)
    assert result.reason_code == code
    assert "serienbrief.pdf" in result.reason or code == SplitFailureReason.INVALID_RULE
    for word in words:
        assert word in result.reason
    return result


def _assert_nothing_stored(store: MemoryStore) -> None:
    assert store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/parts/") == []
    assert store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/thumbnails/") == []
    assert store.exists(f"accounts/{ACCOUNT}/letters/{LETTER}/sources/doc-1.pdf")


def test_zero_bytes() -> None:
    result, store, _ = run_split(b"", RULE)
    _assert_failed(result, SplitFailureReason.EMPTY_FILE, "leer")
    _assert_nothing_stored(store)


def test_not_a_pdf() -> None:
    result, store, _ = run_split("Kontakt-Nr.;Name\nK-1;Müller\n".encode(), RULE)
    _assert_failed(result, SplitFailureReason.NOT_A_PDF, "keine PDF")
    _assert_nothing_stored(store)


def test_corrupt_unrepairable() -> None:
    result, store, _ = run_split(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\n" + b"\x00garbage" * 50, RULE)
    _assert_failed(result, SplitFailureReason.CORRUPT, "beschädigt")
    _assert_nothing_stored(store)


def test_truncated_pdf_is_repaired_or_rejected_never_half_split(letters_pdf: bytes) -> None:
    result, store, _ = run_split(letters_pdf[: len(letters_pdf) // 3], RULE)
    if isinstance(result, DocumentSplitFailed):
        assert result.reason_code in {SplitFailureReason.CORRUPT, SplitFailureReason.NO_LETTER_FOUND}
        _assert_nothing_stored(store)
    else:
        assert isinstance(result, DocumentSplit)
        assert all(store.exists(p.storage_key) for p in result.parts)


def test_password_protected(letters_pdf: bytes) -> None:
    result, store, _ = run_split(_encrypted(letters_pdf, user="geheim", owner="owner"), RULE)
    _assert_failed(result, SplitFailureReason.ENCRYPTED, "passwort")
    _assert_nothing_stored(store)


def test_write_protected_owner_password_only(letters_pdf: bytes) -> None:
    result, store, _ = run_split(_encrypted(letters_pdf, user="", owner="owner"), RULE)
    _assert_failed(result, SplitFailureReason.ENCRYPTED, "schreibgeschützt")
    _assert_nothing_stored(store)


def test_zero_pages() -> None:
    result, store, _ = run_split(_empty_pdf(), RULE)
    _assert_failed(result, SplitFailureReason.NO_PAGES, "keine Seiten")
    _assert_nothing_stored(store)


def test_scanned_pages_need_ocr() -> None:
    result, store, _ = run_split(_scanned_pdf(4), SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=1))
    _assert_failed(result, SplitFailureReason.NEEDS_OCR, "OCR", "4 von 4")
    _assert_nothing_stored(store)


def test_a_few_scanned_pages_are_warned_not_failed(letters_pdf: bytes) -> None:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(letters_pdf)) as pdf, pikepdf.open(io.BytesIO(_scanned_pdf(1))) as scan:
        pdf.pages.append(scan.pages[0])
        pdf.save(out)
    result, _, _ = run_split(out.getvalue(), RULE)
    assert isinstance(result, DocumentSplit)
    assert any("ohne Text" in w for w in result.parts[-1].warnings)
    assert any("OCR" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (SplitRule(strategy=SplitStrategy.IDENTIFIER), ["identifier_pattern"]),
        (SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern="K-(\\d"), ["ungültig"]),
        (SplitRule(strategy=SplitStrategy.KEYWORD, keyword="  "), ["Schlüsselwort"]),
        (SplitRule(strategy=SplitStrategy.FIXED_PAGES), ["pages_per_letter"]),
        (SplitRule(strategy=SplitStrategy.FIRST_PAGE), ["Musterseite"]),
        (SplitRule(strategy=SplitStrategy.FIRST_PAGE, sample_page=99), ["Musterseite 99", "Seiten"]),
    ],
)
def test_invalid_rules(letters_pdf: bytes, rule: SplitRule, words: list[str]) -> None:
    result, store, _ = run_split(letters_pdf, rule)
    _assert_failed(result, SplitFailureReason.INVALID_RULE, *words)
    _assert_nothing_stored(store)


def test_source_missing() -> None:
    store = MemoryStore()
    service = SplitService(store, InlineRunner())
    result = service.handle(request_envelope(RULE)).payload
    _assert_failed(result, SplitFailureReason.SOURCE_MISSING, "nicht gefunden")


def test_corrupt_attachment_fails_the_document(letters_pdf: bytes) -> None:
    key = f"accounts/{ACCOUNT}/letters/{LETTER}/sources/flyer.pdf"
    result, store, _ = run_split(letters_pdf, RULE, attachments={key: b"not a pdf at all"})
    assert isinstance(result, DocumentSplitFailed)
    assert result.reason_code == SplitFailureReason.NOT_A_PDF
    assert "Anhang 1 (flyer.pdf)" in result.reason
    _assert_nothing_stored(store)


def test_failure_event_id_is_deterministic_per_request(tmp_path: Path) -> None:
    envelope = request_envelope(RULE)
    _, _, first = run_split(b"", RULE, envelope=envelope)
    _, _, again = run_split(b"", RULE, envelope=envelope)
    assert first.event_id == again.event_id
    assert first.event_type == "DocumentSplitFailed"
    _, _, other_request = run_split(b"", RULE)  # a re-split is a new request: a new result, never deduplicated
    assert other_request.event_id != first.event_id
