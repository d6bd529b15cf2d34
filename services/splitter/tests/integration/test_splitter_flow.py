"""Real tansu + SeaweedFS: SplitRequested in, parts in object storage, DocumentSplit / DocumentSplitFailed out."""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from typing import TYPE_CHECKING, Self

import httpx
import pikepdf
import pytest
from aiokafka import AIOKafkaConsumer
from PIL import Image

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason
from smartpost_shared.contracts.envelope import Envelope, make_envelope, parse_envelope
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.messaging import ClaimCheck, EventPublisher, PermanentError, make_broker
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.storage import ObjectStore, source_key
from smartpost_shared.topics import SPLITTER
from smartpost_splitter.app import create_app
from smartpost_splitter.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


class SplitterEvents:
    """Reads splitter.events from the beginning (no group) and hands out events per document."""

    def __init__(self, bootstrap: str, store: ObjectStore | None = None) -> None:
        self.consumer = AIOKafkaConsumer(SPLITTER.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.seen: list[Envelope] = []
        # Big events travel as claim checks (other tests' too, on the shared broker): resolved with the store.
        self.claims = ClaimCheck(store)

    def _parse(self, raw: bytes) -> Envelope | None:
        data = json.loads(raw)
        if "payload_ref" in data:
            if self.claims.store is None:
                return None
            try:
                raw = self.claims.incoming(data)
            except PermanentError:
                return None  # another test's claim in another bucket
        return parse_envelope(raw)

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(self, document_id: str, count: int = 1, timeout: float = 60.0) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=300)
            for records in batch.values():
                self.seen += [e for r in records if r.value and (e := self._parse(r.value)) is not None]
            found = [e for e in self.seen if getattr(e.payload, "document_id", None) == document_id]
            if len(found) >= count:
                return found
        raise AssertionError(f"no {count} splitter events for {document_id} within {timeout}s")


def _request(account: str, letter: str, document: str, rule: SplitRule, filename: str) -> Envelope:
    return make_envelope(
        SplitRequested(
            letter_id=letter,
            document_id=document,
            source_key=source_key(account, letter, document),
            filename=filename,
            position=0,
            rule=rule,
        ),
        account_id=account,
        producer="letters",
    )


@pytest.mark.real
async def test_split_requested_to_document_split_and_failure(  # noqa: PLR0915 - one flow, checked end to end
    kafka_settings, storage_settings, object_store, make_id, tmp_path: Path
) -> None:
    account, letter = make_id("acc"), make_id("letter")
    good_doc, locked_doc = make_id("doc"), make_id("doc")
    recipients = demo_recipients(30, seed=21)
    pdf = tmp_path / "serienbrief.pdf"
    truth = write_serial_letter(pdf, recipients, seed=21)
    object_store.put(source_key(account, letter, good_doc), pdf.read_bytes(), content_type="application/pdf")
    locked = io.BytesIO()
    with pikepdf.open(pdf) as doc:
        doc.save(locked, encryption=pikepdf.Encryption(user="geheim", owner="geheim"))
    object_store.put(source_key(account, letter, locked_doc), locked.getvalue(), content_type="application/pdf")

    settings = Settings(
        kafka=kafka_settings,
        storage=storage_settings,
        consumer_group=make_id("splitter"),
        text_processes=2,
        chunk_pages=25,  # the generated document (~100 pages) is read in several ranges
        work_dir=str(tmp_path),
        log_json=False,
    )
    app = create_app(settings)
    rule = SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"Kontakt-Nr\.?\s*:?\s*(K-\d{6})")
    publisher_broker = make_broker(kafka_settings, service="test")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://splitter")
    async with app.router.lifespan_context(app), client, SplitterEvents(kafka_settings.bootstrap_servers) as events:
        assert app.state.broker is not None
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        await publisher_broker.start()
        try:
            publisher = EventPublisher(publisher_broker)
            request = _request(account, letter, good_doc, rule, "serienbrief.pdf")
            await publisher.publish(request)
            await publisher.publish(_request(account, letter, locked_doc, rule, "gesperrt.pdf"))
            (split_envelope,) = await events.wait_for(good_doc)
            (failed_envelope,) = await events.wait_for(locked_doc)

            # the same request again (redelivery / re-run): same deterministic event id, same keys
            await publisher.publish(request)
            again = await events.wait_for(good_doc, count=2)
        finally:
            await publisher_broker.stop()

    split = split_envelope.payload
    assert isinstance(split, DocumentSplit)
    assert split_envelope.causation_id == request.event_id
    assert split_envelope.correlation_id == request.correlation_id
    assert split_envelope.account_id == account
    assert [(p.first_page, p.last_page) for p in split.parts] == [(t.first_page, t.last_page) for t in truth]
    for part, recipient in zip(split.parts, recipients, strict=True):
        stored = object_store.get(part.storage_key)
        assert hashlib.sha256(stored).hexdigest() == part.sha256
        assert part.identifiers == [recipient.reference_id]
        assert part.address_lines == recipient.address_lines
        assert part.property_refs == [recipient.property_ref]
        assert part.unit_refs == [recipient.unit_ref]
        assert part.thumbnail_key is not None
        assert part.thumbnail_offset is not None
        assert part.thumbnail_size is not None
        png = object_store.get_range(part.thumbnail_key, part.thumbnail_offset, part.thumbnail_size)
        assert Image.open(io.BytesIO(png)).format == "PNG"
    assert again[1].event_id == split_envelope.event_id
    assert len(object_store.list(f"accounts/{account}/letters/{letter}/parts/{good_doc}/")) == len(truth)

    failed = failed_envelope.payload
    assert isinstance(failed, DocumentSplitFailed)
    assert failed.reason_code == SplitFailureReason.ENCRYPTED
    assert "gesperrt.pdf" in failed.reason
    assert object_store.exists(source_key(account, letter, locked_doc))
    assert object_store.list(f"accounts/{account}/letters/{letter}/parts/{locked_doc}/") == []


@pytest.mark.real
async def test_document_split_of_thousands_of_parts_fits_through_the_broker(
    kafka_settings, object_store, make_id
) -> None:
    """A 10,000-page export gives ~2,900 parts: a 1.6 MB event; it travels as a claim check and arrives whole."""
    from smartpost_shared.contracts.documents import SplitPart
    from smartpost_splitter.app import make_splitter_broker

    account, letter, document = make_id("acc"), make_id("letter"), make_id("doc")
    parts = [
        SplitPart(
            part_id=str(uuid.uuid4()),
            index=i,
            first_page=i * 3 + 1,
            last_page=i * 3 + 3,
            page_count=3,
            storage_key=f"accounts/{account}/letters/{letter}/parts/{document}/{i:05d}.pdf",
            thumbnail_key=f"accounts/{account}/letters/{letter}/thumbnails/{document}/{i:05d}.png",
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            size_bytes=90_000 + i,
            address_lines=[f"Herrn Max Mustermann {i}", "Lindenstraße 5", "12345 Musterstadt"],
            identifiers=[f"K-{i:06d}"],
            property_refs=["WEG-0815 Lindenstraße 5"],
            unit_refs=[f"WE {i % 40:02d} (1. OG links)"],
        )
        for i in range(3000)
    ]
    event = make_envelope(
        DocumentSplit(
            letter_id=letter,
            document_id=document,
            source_key=source_key(account, letter, document),
            strategy=SplitStrategy.IDENTIFIER,
            source_page_count=9000,
            parts=parts,
        ),
        account_id=account,
        producer="splitter",
    )
    assert len(event.to_bytes()) > 1_048_576
    broker = make_splitter_broker(Settings(kafka=kafka_settings))
    async with SplitterEvents(kafka_settings.bootstrap_servers, object_store) as events:
        await broker.start()
        try:
            await EventPublisher(broker, store=object_store).publish(event)
        finally:
            await broker.stop()
        (received,) = await events.wait_for(document)
    assert received.event_id == event.event_id
    assert received.payload == event.payload
