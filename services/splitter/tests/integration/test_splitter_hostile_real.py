"""The hostile corpus against the real splitter service (tansu + SeaweedFS, sandbox worker processes).

Every crafted case ends in a clean split or a clear DocumentSplitFailed within its budget, a control letter sent
after each case splits, the service stays up, parts carry no active content, no temporary file stays behind, and a
job recorded by an earlier (crashed) instance is resumed at start.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from splitter_hostile_corpus import Case, active_markers, cases, control_letter

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed
from smartpost_shared.contracts.envelope import Envelope, make_envelope
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.storage import source_key
from smartpost_splitter.app import create_app
from smartpost_splitter.jobs import JOB_PREFIX, job_key
from smartpost_splitter.settings import Settings

from .test_splitter_flow import SplitterEvents

if TYPE_CHECKING:
    from pathlib import Path


def _request(account: str, letter: str, document: str, case: Case) -> Envelope:
    return make_envelope(
        SplitRequested(
            letter_id=letter,
            document_id=document,
            source_key=source_key(account, letter, document),
            filename=f"{case.name}.pdf",
            position=0,
            rule=case.rule,
        ),
        account_id=account,
        producer="letters",
    )


def _outcome(envelope: Envelope) -> str:
    payload = envelope.payload
    if isinstance(payload, DocumentSplit):
        return "split"
    assert isinstance(payload, DocumentSplitFailed)
    return payload.reason_code.value


@pytest.mark.real
async def test_hostile_corpus_against_the_real_service(  # noqa: C901, PLR0912, PLR0915 - one run of the whole corpus
    kafka_settings, storage_settings, object_store, make_id, tmp_path: Path
) -> None:
    account, letter = make_id("acc"), make_id("letter")
    corpus = cases(bomb_mb=96, pages=30_000)
    control = Case("control", control_letter(), "split")
    requests: list[tuple[Case, Envelope]] = []
    for case in corpus:
        for item in (case, control):
            document = make_id(item.name)
            object_store.put(source_key(account, letter, document), item.data, content_type="application/pdf")
            requests.append((item, _request(account, letter, document, item)))
    # A job accepted by an earlier instance that died before splitting it: resumed when the service starts.
    orphan_doc = make_id("resumed")
    object_store.put(source_key(account, letter, orphan_doc), control.data, content_type="application/pdf")
    orphan = _request(account, letter, orphan_doc, control)
    object_store.put(
        job_key(orphan),
        json.dumps({"attempts": 1, "envelope": orphan.to_bytes().decode()}).encode(),
        content_type="application/json",
    )
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    settings = Settings(
        kafka=kafka_settings,
        storage=storage_settings,
        consumer_group=make_id("splitter"),
        text_processes=2,
        concurrent_documents=2,
        chunk_pages=50,
        work_dir=str(work_dir),
        log_json=False,
        max_stream_mb=64,
        page_seconds=1.0,
        task_overhead_seconds=4.0,
        document_seconds=20.0,
        worker_memory_mb=1024,
        worker_cpu_seconds=20,
    )
    app = create_app(settings)
    publisher_broker = make_broker(kafka_settings, service="test")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://splitter")
    started = time.monotonic()
    async with (
        app.router.lifespan_context(app),
        client,
        SplitterEvents(kafka_settings.bootstrap_servers, object_store) as events,
    ):
        (resumed,) = await events.wait_for(orphan_doc, timeout=60)
        await publisher_broker.start()
        try:
            publisher = EventPublisher(publisher_broker)
            for _, request in requests:
                await publisher.publish(request)
            results: dict[str, Envelope] = {}
            for _, request in requests:
                document = request.payload.document_id  # type: ignore[union-attr]
                (results[document],) = await events.wait_for(document, timeout=240)
        finally:
            await publisher_broker.stop()
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        sandbox = app.state.sandbox
        assert len(sandbox.worker_pids()) >= 1
        replaced = sandbox.replaced
    elapsed = time.monotonic() - started

    assert isinstance(resumed.payload, DocumentSplit)
    assert resumed.causation_id == orphan.event_id
    report = []
    for case, request in requests:
        document = request.payload.document_id  # type: ignore[union-attr]
        result = results[document]
        outcome = _outcome(result)
        report.append(f"{case.name}: {outcome}")
        assert outcome in {case.expect, *case.alternatives}, (case.name, result.payload)
        if isinstance(result.payload, DocumentSplitFailed):
            reason = result.payload.reason
            assert f"{case.name}.pdf" in reason
            assert str(work_dir) not in reason
            assert "/tmp" not in reason
            if outcome == case.expect:
                for word in case.words:
                    assert word in reason, (case.name, reason)
                if case.any_words:
                    assert any(word in reason for word in case.any_words), (case.name, reason)
        else:
            assert isinstance(result.payload, DocumentSplit)
            for part in result.payload.parts:
                assert active_markers(object_store.get(part.storage_key)) == [], (case.name, part.index)
        if case.name == "control":
            assert outcome == "split", report
    active = next(results[r.payload.document_id] for c, r in requests if c.name == "active-content")  # type: ignore[union-attr]
    assert isinstance(active.payload, DocumentSplit)
    assert any("Aktive Inhalte entfernt" in w for w in active.payload.warnings)
    assert list(work_dir.iterdir()) == []  # every temporary file removed, also of killed workers
    assert object_store.list(JOB_PREFIX) == []  # every job finished
    print(f"hostile corpus: {len(requests)} documents in {elapsed:.1f}s, workers replaced: {replaced}")
    print("\n".join(report))
