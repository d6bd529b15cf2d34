"""Hardening: budgets with German reasons, sanitised parts, degenerate pages, every failure reaches staff.

The use case runs over a real :class:`Sandbox` where limits matter (kills, timeouts) and in-process elsewhere.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image
from splitter_hostile_corpus import (
    FIXED_1,
    active_content,
    active_markers,
    control_letter,
    deep_nesting,
    double_flate_bomb,
    image_bomb,
    letter_pages,
    many_pages,
    page_box,
    page_tree_loop,
    shared_images,
    text_pdf,
    xobject_fanout,
)

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason
from smartpost_shared.storage import MemoryStore
from smartpost_splitter.adapters.pdf import clean_detail
from smartpost_splitter.adapters.sandbox import InlineRunner, Limits, Sandbox
from smartpost_splitter.adapters.scan import THUMBNAIL_MAX_ASPECT, PageUnreadableError, scan_range, thumbnail_scale
from smartpost_splitter.application import SplitService, SplitterOptions, remove_orphaned_work
from smartpost_splitter.limits import MB, Budgets

from .splitter_helpers import request_envelope, run_split

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FAST = Budgets(
    max_stream_bytes=64 * MB,
    page_seconds=1.0,
    task_overhead_seconds=3.0,
    document_seconds=20.0,
    memory_bytes=1024 * MB,
    cpu_seconds=20,
)


def _options(tmp: Path | None = None, **budget: Any) -> SplitterOptions:
    budgets = Budgets(**{**FAST.__dict__, **budget})
    return SplitterOptions(work_dir=tmp, upload_threads=2, chunk_pages=20, thumbnail_width=120, budgets=budgets)


def _failed(result: object, *words: str) -> DocumentSplitFailed:
    assert isinstance(result, DocumentSplitFailed), result
    for word in words:
        assert word in result.reason, result.reason
    assert "/tmp" not in result.reason
    assert "splitter-" not in result.reason
    return result


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(2, Limits(memory_bytes=FAST.memory_bytes, cpu_seconds=FAST.cpu_seconds))
    box.warm_up()
    yield box
    box.close()


def _split_in(sandbox: Sandbox, data: bytes, options: SplitterOptions, store: MemoryStore | None = None) -> Any:
    store = store or MemoryStore()
    envelope = request_envelope(FIXED_1)
    store.put(envelope.payload.source_key, data, content_type="application/pdf")  # type: ignore[union-attr]
    return SplitService(store, sandbox, options).handle(envelope).payload, store


# -- budgets -----------------------------------------------------------------------------------------------------


def test_page_budget() -> None:
    result, store, _ = run_split(many_pages(60), FIXED_1, options=_options(max_pages=50))
    _failed(result, "60 Seiten", "höchstens 50 Seiten")
    assert store.list("accounts/acc-1/letters/letter-1/parts/") == []


def test_decompression_bombs_are_measured_without_being_unpacked() -> None:
    for data in (double_flate_bomb(96), image_bomb()):
        assert len(data) < 200_000
        result, _, _ = run_split(data, FIXED_1, options=_options())
        _failed(result, "64 MB entpackte Daten")


def test_giant_page_fails_and_degenerate_pages_get_bounded_thumbnails() -> None:
    result, _, _ = run_split(page_box("[0 0 200000 200000]"), FIXED_1, options=_options())
    _failed(result, "Seite 1", "größer als jedes Papierformat")
    for box in ("[0 0 0 842]", "[0 0 0.01 842]", "[0 0 842 0.02]", "[0 0 5000 3]"):
        result, store, _ = run_split(page_box(box), FIXED_1, options=_options())
        assert isinstance(result, DocumentSplit), (box, result)
        for part in result.parts:
            assert part.thumbnail_key is not None
            assert part.thumbnail_offset is not None
            assert part.thumbnail_size is not None
            png = store.get_range(part.thumbnail_key, part.thumbnail_offset, part.thumbnail_size)
            width, height = Image.open(io.BytesIO(png)).size
            assert width <= 120
            assert height <= 120 * THUMBNAIL_MAX_ASPECT


def test_thumbnail_scale_bounds_both_sides() -> None:
    assert thumbnail_scale(595, 842, 200) == pytest.approx(200 / 595)
    tall = thumbnail_scale(0.01, 842, 200)
    assert tall is not None
    assert 842 * tall <= 800.0001
    assert thumbnail_scale(0, 842, 200) is None
    assert thumbnail_scale(float("nan"), 842, 200) is None
    assert thumbnail_scale(-5, 842, 200) is None


def test_stored_bytes_budget(sandbox: Sandbox, tmp_path: Path) -> None:
    data = text_pdf(letter_pages(40))
    result, store = _split_in(sandbox, data, _options(tmp_path, max_stored_ratio=2.0, stored_floor_bytes=0))
    _failed(result, "Speicher belegen")
    assert store.list("accounts/acc-1/letters/letter-1/parts/") == []
    assert list(tmp_path.iterdir()) == []


def test_shared_resources_are_not_copied_into_every_part() -> None:
    """One-page letters naming all images in one shared dictionary: each part carries only its own image.

    The 400-page case of the issue is measured by ``benchmarks/bench_hostile.py`` (README); 120 pages here.
    """
    data = shared_images(120, 10)
    result, _, _ = run_split(data, FIXED_1, options=_options())
    assert isinstance(result, DocumentSplit)
    assert len(result.parts) == 120
    stored = sum(p.size_bytes for p in result.parts)
    # copying the shared dictionary into every part would store 120 x the upload
    assert stored < 2 * len(data), (stored, len(data))
    assert max(p.size_bytes for p in result.parts) < 40_000


# -- input handling ----------------------------------------------------------------------------------------------


def test_junk_before_the_header_is_accepted_as_qpdf_does() -> None:
    result, _, _ = run_split(text_pdf(letter_pages(2), prefix=b"X-Mailer junk\r\n" * 30), FIXED_1)
    assert isinstance(result, DocumentSplit)
    assert len(result.parts) == 2


def test_deep_nesting_is_reported_as_such() -> None:
    result, _, _ = run_split(deep_nesting(), FIXED_1)
    failed = _failed(result, "zu tief verschachtelt")
    assert failed.reason_code is SplitFailureReason.CORRUPT


def test_corrupt_reasons_never_show_server_paths(tmp_path: Path) -> None:
    result, _, _ = run_split(page_tree_loop(), FIXED_1, options=_options(tmp_path))
    if isinstance(result, DocumentSplitFailed):
        _failed(result)
        assert str(tmp_path) not in result.reason
    truncated, _, _ = run_split(control_letter()[:500], FIXED_1, options=_options(tmp_path))
    _failed(truncated, "beschädigt")
    assert clean_detail("/srv/tmp/splitter-9-x/source.pdf: bad xref", None, "a.pdf") == "…: bad xref"
    assert clean_detail("Loop detected in /Pages structure", None, "a.pdf") == "Loop detected in /Pages structure"


# -- sanitised parts ---------------------------------------------------------------------------------------------


def test_parts_carry_no_active_content_and_the_removal_is_recorded() -> None:
    data = active_content()
    assert len(active_markers(data)) >= 8
    result, store, _ = run_split(data, FIXED_1)
    assert isinstance(result, DocumentSplit)
    assert len(result.parts) == 3
    for part in result.parts:
        assert active_markers(store.get(part.storage_key)) == []
        removed = [w for w in part.warnings if w.startswith("Aktive Inhalte entfernt")]
        assert len(removed) == 1
        for label in ("JavaScript", "Programmstart (/Launch)", "Dateianhang-Anmerkung", "eingebettete Dateien"):
            assert label in removed[0]
    document = next(w for w in result.warnings if w.startswith("Aktive Inhalte entfernt"))
    for label in ("Aktion beim Öffnen (/OpenAction)", "XFA-Formular", "JavaScript", "eingebettete Dateien"):
        assert label in document
    # links to web pages are not active content: they stay
    assert b"https://example.org" in store.get(result.parts[0].storage_key)


def test_clean_letters_get_no_removal_warning() -> None:
    result, _, _ = run_split(control_letter(), FIXED_1)
    assert isinstance(result, DocumentSplit)
    assert not any("Aktive Inhalte" in w for p in result.parts for w in p.warnings)
    assert not any("Aktive Inhalte" in w for w in result.warnings)


# -- every failure reaches staff ---------------------------------------------------------------------------------


class _BrokenRunner(InlineRunner):
    """Runs tasks in-process, but page scanning raises what a bug would raise."""

    def submit(self, fn: Any, *args: Any, timeout: float, cpu_seconds: int | None = None) -> Any:
        if fn is scan_range:
            return super().submit(_divide_by_zero, timeout=timeout)
        return super().submit(fn, *args, timeout=timeout, cpu_seconds=cpu_seconds)


def _divide_by_zero() -> None:
    _ = 1 / 0


class _UnloadablePageRunner(InlineRunner):
    """Page scanning meets a page pdfium cannot load although the page counts agree (seen in real corpora)."""

    def submit(self, fn: Any, *args: Any, timeout: float, cpu_seconds: int | None = None) -> Any:
        if fn is scan_range:
            return super().submit(_unloadable_page, timeout=timeout)
        return super().submit(fn, *args, timeout=timeout, cpu_seconds=cpu_seconds)


def _unloadable_page() -> None:
    raise PageUnreadableError(1, "Failed to load page.")


def test_a_page_pdfium_cannot_load_is_named_in_the_reason(tmp_path: Path) -> None:
    store = MemoryStore()
    envelope = request_envelope(FIXED_1)
    store.put(envelope.payload.source_key, control_letter(), content_type="application/pdf")  # type: ignore[union-attr]
    result = SplitService(store, _UnloadablePageRunner(), _options(tmp_path)).handle(envelope)
    failed = _failed(result.payload, "Seite 2 ist beschädigt")
    assert failed.reason_code is SplitFailureReason.CORRUPT


def test_an_unexpected_error_ends_in_document_split_failed_with_the_correlation_id(tmp_path: Path) -> None:
    store = MemoryStore()
    envelope = request_envelope(FIXED_1)
    store.put(envelope.payload.source_key, control_letter(), content_type="application/pdf")  # type: ignore[union-attr]
    result = SplitService(store, _BrokenRunner(), _options(tmp_path)).handle(envelope)
    failed = _failed(result.payload, "unerwarteten Fehlers", str(envelope.correlation_id))
    assert "ZeroDivision" not in failed.reason
    assert result.causation_id == envelope.event_id
    assert store.list("accounts/acc-1/letters/letter-1/parts/") == []
    assert list(tmp_path.iterdir()) == []


def test_a_page_too_slow_for_its_budget_fails_the_document_in_time(sandbox: Sandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = _split_in(sandbox, xobject_fanout(), _options(tmp_path))
    elapsed = time.monotonic() - started
    # either the wall clock (1 s per page + 3 s) or the memory limit ends it: never the service
    _failed(result)
    assert result.reason_code is SplitFailureReason.CORRUPT
    assert elapsed < 15
    assert list(tmp_path.iterdir()) == []
    control, _ = _split_in(sandbox, control_letter(), _options(tmp_path))
    assert isinstance(control, DocumentSplit)


def test_a_worker_killed_mid_split_fails_the_document_and_leaves_no_files(tmp_path: Path) -> None:
    # a sandbox of its own with room enough that only the kill (after 1 s) can end the fan-out page
    sandbox = Sandbox(1, Limits(memory_bytes=4096 * MB, cpu_seconds=60))
    killed: list[int] = []

    def kill_busy_workers() -> None:
        time.sleep(1.0)
        for pid in sandbox.worker_pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_busy_workers)
    killer.start()
    options = _options(tmp_path, page_seconds=30.0, document_seconds=60.0)
    try:
        result, store = _split_in(sandbox, xobject_fanout(), options)
        killer.join()
        assert killed
        _failed(result, "Absturz")
        assert list(tmp_path.iterdir()) == []  # source, part files, thumbnail pack: all gone
        assert store.list("accounts/acc-1/letters/letter-1/parts/") == []
        assert sandbox.replaced >= 1
        control, _ = _split_in(sandbox, control_letter(), _options(tmp_path))  # the pool was rebuilt
        assert isinstance(control, DocumentSplit)
    finally:
        sandbox.close()


def test_folders_of_dead_splitter_processes_are_removed_at_start(tmp_path: Path) -> None:
    dead = tmp_path / "splitter-999999999-abc"
    dead.mkdir()
    (dead / "source.pdf").write_bytes(b"%PDF-")
    alive = tmp_path / f"splitter-{os.getpid()}-def"
    alive.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    assert remove_orphaned_work(tmp_path) == 1
    assert not dead.exists()
    assert alive.exists()
    assert other.exists()


def test_documents_split_at_the_same_time_share_the_sandbox_queue(sandbox: Sandbox) -> None:
    service = SplitService(MemoryStore(), sandbox, _options())
    assert service._window() == 4  # alone: two tasks per worker
    with service._counted(), service._counted():
        assert service._window() == 2  # two documents: half each, a slow one cannot fill the queue
    with service._counted(), service._counted(), service._counted(), service._counted(), service._counted():
        assert service._window() == 1


def test_a_stream_no_reader_can_decode_does_not_break_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuzzed file of the pdf.js corpus made qpdf raise a UnicodeDecodeError while decoding a stream."""
    import pikepdf

    from smartpost_splitter.adapters import pdf as pdf_adapter

    def undecodable(stream: object, budget: int) -> int:
        raise UnicodeDecodeError("utf-8", b"\xa9", 0, 1, "invalid start byte")

    monkeypatch.setattr(pdf_adapter, "_stream_bytes", undecodable)
    with pikepdf.open(io.BytesIO(control_letter())) as pdf:
        assert pdf_adapter.decoded_stream_bytes(pdf, 10**9) >= 0
