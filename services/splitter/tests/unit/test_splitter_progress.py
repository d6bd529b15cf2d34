"""SplitProgress: a long split announces its cut parts in batches before DocumentSplit (advisory events).

DocumentSplit stays the event that counts; the announcements must carry exactly the parts it lists, in order,
each once, under ids that a re-run of the same request repeats (consumers drop duplicates by event id).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, SplitProgress
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.storage import MemoryStore
from smartpost_splitter.adapters.sandbox import InlineRunner
from smartpost_splitter.application import SplitService, SplitterOptions
from smartpost_splitter.jobs import SplitJobs

from .splitter_helpers import request_envelope

if TYPE_CHECKING:
    from pathlib import Path

    from smartpost_shared.contracts.envelope import Envelope

RULE = SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")


@pytest.fixture(scope="module")
def letters_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = tmp_path_factory.mktemp("progress") / "letters.pdf"
    write_serial_letter(path, demo_recipients(23, seed=5), seed=5)
    return path.read_bytes()


def _split(data: bytes, envelope: Envelope, *, progress_parts: int) -> tuple[Envelope, list[Envelope]]:
    store = MemoryStore()
    assert envelope.payload is not None
    store.put(envelope.payload.source_key, data, content_type="application/pdf")  # type: ignore[attr-defined]
    service = SplitService(
        store,
        InlineRunner(),
        SplitterOptions(upload_threads=2, chunk_pages=11, thumbnail_width=80, progress_parts=progress_parts),
    )
    announced: list[Envelope] = []
    result = service.handle(envelope, announced.append)
    return result, announced


def test_parts_are_announced_in_batches_each_once_and_in_order(letters_pdf: bytes) -> None:
    envelope = request_envelope(RULE)
    result, announced = _split(letters_pdf, envelope, progress_parts=5)
    assert isinstance(result.payload, DocumentSplit)
    parts = result.payload.parts
    assert len(parts) == 23
    # 4 full batches of 5 are announced while the split runs; the last 3 parts come only with DocumentSplit.
    assert [e.event_type for e in announced] == ["SplitProgress"] * 4
    payloads = [e.payload for e in announced]
    assert all(isinstance(p, SplitProgress) for p in payloads)
    assert [p.batch for p in payloads] == [0, 1, 2, 3]  # type: ignore[union-attr]
    flat = [part for p in payloads for part in p.parts]  # type: ignore[union-attr]
    assert flat == parts[:20]  # the very parts DocumentSplit lists, evidence included
    for event in announced:
        assert event.account_id == result.account_id
        assert event.correlation_id == envelope.correlation_id
        assert event.payload.letter_id == result.payload.letter_id  # type: ignore[union-attr]
        assert event.payload.document_id == result.payload.document_id  # type: ignore[union-attr]
    assert len({e.event_id for e in announced}) == 4


def test_a_rerun_announces_under_the_same_ids(letters_pdf: bytes) -> None:
    envelope = request_envelope(RULE)
    _, first = _split(letters_pdf, envelope, progress_parts=10)
    _, again = _split(letters_pdf, envelope, progress_parts=10)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert [e.payload for e in first] == [e.payload for e in again]
    # Another split request of the same file is new work: new ids.
    _, other = _split(letters_pdf, request_envelope(RULE), progress_parts=10)
    assert not {e.event_id for e in first} & {e.event_id for e in other}


def test_a_short_document_or_a_switched_off_setting_announces_nothing(letters_pdf: bytes) -> None:
    result, announced = _split(letters_pdf, request_envelope(RULE), progress_parts=0)
    assert isinstance(result.payload, DocumentSplit)
    assert announced == []
    result, announced = _split(letters_pdf, request_envelope(RULE), progress_parts=250)
    assert isinstance(result.payload, DocumentSplit)
    assert announced == []


def test_a_failing_announcement_never_fails_the_split(letters_pdf: bytes) -> None:
    envelope = request_envelope(RULE)
    store = MemoryStore()
    store.put(envelope.payload.source_key, letters_pdf, content_type="application/pdf")  # type: ignore[union-attr]
    service = SplitService(store, InlineRunner(), SplitterOptions(upload_threads=2, progress_parts=5))

    def broken(_event: Envelope) -> None:
        raise RuntimeError("broker gone")

    result = service.handle(envelope, broken)
    assert isinstance(result.payload, DocumentSplit)
    assert len(result.payload.parts) == 23


async def test_the_job_runner_publishes_the_announcements_before_the_result(letters_pdf: bytes) -> None:
    store = MemoryStore()
    envelope = request_envelope(RULE)
    store.put(envelope.payload.source_key, letters_pdf, content_type="application/pdf")  # type: ignore[union-attr]
    published: list[Envelope] = []
    refused = 0

    async def publish(event: Envelope) -> None:
        nonlocal refused
        await asyncio.sleep(0.01)  # the broker takes a moment: the result must still come last
        if event.event_type == "SplitProgress" and event.payload.batch == 1:  # type: ignore[union-attr]
            refused += 1
            raise ConnectionError("broker busy")  # advisory: dropped, not retried, the split goes on
        published.append(event)

    service = SplitService(store, InlineRunner(), SplitterOptions(upload_threads=2, progress_parts=5))
    jobs = SplitJobs(store, service, publish)
    await jobs.accept(envelope)
    jobs.start()
    try:
        await asyncio.wait_for(jobs.idle(), 60)
    finally:
        await jobs.stop()
    assert [e.event_type for e in published] == ["SplitProgress"] * 3 + ["DocumentSplit"]
    assert [e.payload.batch for e in published[:3]] == [0, 2, 3]  # type: ignore[union-attr]
    assert refused == 1
