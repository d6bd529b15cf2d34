"""Use case: split one source document (SplitRequested) into stored parts and report DocumentSplit or the failure.

Flow, streaming and bounded in memory:
1. download the source to a temporary file (hashing it on the way), check the rule and the PDF (reject early);
2. worker processes read the pages in ranges and return small per-page facts (+ thumbnails of candidate first
   pages); the :class:`~smartpost_splitter.domain.Segmenter` turns them into letters as they arrive;
3. each finished letter is cut (pikepdf) and uploaded by a small thread pool while later pages are still being
   read; its thumbnail is appended to a temporary "thumbnail pack" file; nothing but the part list is kept;
4. the pack is stored as one object (2,857 small PUTs cost as much as 1.6 s of SeaweedFS and client CPU on the
   10k-page benchmark; parts name their byte range in it);
5. only when every part and the pack are stored is the DocumentSplit event returned (deterministic id, so a re-run
   after a crash re-emits the same event and overwrites the same keys). On a failure the parts written so far are
   removed again and a DocumentSplitFailed event is returned; the source always stays in storage.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason, SplitPart
from smartpost_shared.contracts.envelope import Envelope, caused_by, deterministic_event_id
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import PermanentError, TransientError
from smartpost_shared.storage import (
    ObjectNotFoundError,
    StorageUnavailableError,
    part_key,
    thumbnail_key,
    thumbnail_pack_key,
)
from smartpost_splitter.adapters.pdf import PartWriter, PdfRejectedError, inspect_pdf, thumbnail_of
from smartpost_splitter.domain import (
    DEFAULT_IDENTIFIER_PATTERNS,
    Failure,
    PageFacts,
    RuleError,
    Segment,
    Segmenter,
    SplitPlan,
    document_warnings,
    no_letter_failure,
    ocr_failure,
    plan_from_rule,
    with_fingerprint,
)

if TYPE_CHECKING:
    from smartpost_shared.storage import ObjectStore
    from smartpost_splitter.adapters.pdf import PageScanner

log = get_logger(__name__)
PRODUCER = "splitter"


@dataclass(frozen=True)
class SplitterOptions:
    work_dir: Path | None = None
    upload_threads: int = 8
    thumbnail_width: int = 200
    evidence_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS


class Uploader:
    """Uploads in a few threads with a bounded backlog, so parts never pile up in memory.

    Finished uploads are forgotten at once (only failures are kept): a Future costs ~3.7 KB, and holding the
    5,700 of a 10k-page document until the end was 20 MB of the splitter's peak memory.
    """

    def __init__(self, store: ObjectStore, threads: int) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="splitter-upload")
        self._slots = threading.BoundedSemaphore(threads * 2)
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()
        self._errors: list[BaseException] = []
        self.keys: list[str] = []
        self.bytes = 0

    def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> None:
        if self._errors:
            self.wait()  # storage failed: stop cutting parts now rather than at the end of a 10k-page document
        self._slots.acquire()
        self.keys.append(key)
        self.bytes += len(data)
        future = self._pool.submit(self._put, key, data, content_type, metadata)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)

    def _put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None) -> None:
        try:
            self.store.put(key, data, content_type=content_type, metadata=metadata)
        except BaseException as exc:
            # Recorded inside the task, before its future counts as done: wait() can never miss it (a done
            # callback runs only after waiters have been woken).
            with self._lock:
                self._errors.append(exc)
            raise

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        self._slots.release()

    def wait(self) -> None:
        """Block until everything is stored; an outage becomes a TransientError (the event is retried)."""
        with self._lock:
            pending = list(self._pending)
        futures_wait(pending)
        with self._lock:
            failed, self._errors = self._errors, []
        if failed:
            if any(isinstance(e, (StorageUnavailableError, ConnectionError, OSError)) for e in failed):
                msg = f"object storage unavailable while storing parts: {failed[0]}"
                raise TransientError(msg) from failed[0]
            raise failed[0]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class _Run:
    """State of one split while pages stream through."""

    account_id: str
    request: SplitRequested
    source: Path
    source_sha256: str
    plan: SplitPlan
    writer: PartWriter
    uploader: Uploader
    thumbnail_width: int
    pack_path: Path
    parts: list[SplitPart] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    not_a4: int = 0
    scanned: int = 0
    pages: int = 0
    last_short: bool = False
    rule_digest: str = field(init=False)
    pack: BinaryIO = field(init=False)
    pack_size: int = 0

    def __post_init__(self) -> None:
        self.rule_digest = rule_fingerprint(self.request)  # once per split, not once per part
        self.pack = self.pack_path.open("wb")


class SplitService:
    def __init__(self, store: ObjectStore, scanner: PageScanner, options: SplitterOptions | None = None) -> None:
        self.store = store
        self.scanner = scanner
        self.options = options or SplitterOptions()

    def handle(self, envelope: Envelope) -> Envelope:
        """Split the document of a SplitRequested event; return the event to publish (success or failure)."""
        request = envelope.payload
        if not isinstance(request, SplitRequested):
            raise PermanentError(f"splitter cannot handle {envelope.event_type}")
        with tempfile.TemporaryDirectory(prefix="splitter-", dir=self.options.work_dir) as tmp:
            payload, source_sha = self._split(envelope.account_id, request, Path(tmp))
        kind = "split" if isinstance(payload, DocumentSplit) else "split-failed"
        # The rule is part of the identity: a re-split of the same file with another rule is a new result, which
        # downstream consumers (deduplicating by event id) must not drop.
        event_id = deterministic_event_id(
            kind, envelope.account_id, request.letter_id, request.document_id, source_sha, rule_fingerprint(request)
        )
        return caused_by(envelope, payload, producer=PRODUCER, event_id=event_id)

    # -- steps ---------------------------------------------------------------------------------------------------

    def _split(
        self, account_id: str, request: SplitRequested, tmp: Path
    ) -> tuple[DocumentSplit | DocumentSplitFailed, str]:
        source = tmp / "source.pdf"
        try:
            source_sha = self._download(request.source_key, source)
        except ObjectNotFoundError:
            return self._failed(
                request,
                Failure(
                    SplitFailureReason.SOURCE_MISSING,
                    f"Die Quelldatei „{request.filename}“ wurde im Speicher nicht gefunden ({request.source_key}).",
                ),
            ), "missing"
        try:
            plan = plan_from_rule(request.rule, evidence_patterns=self.options.evidence_patterns)
            info = inspect_pdf(source, request.filename)
            attachments = self._attachments(request, tmp)
            if plan.needs_fingerprint:
                assert plan.sample_page is not None
                sample_text = (
                    self.scanner.head_text(source, plan.sample_page - 1) if plan.sample_page <= info.page_count else ""
                )
                plan = with_fingerprint(plan, info.page_count, sample_text)
        except RuleError as exc:
            return self._failed(request, Failure(SplitFailureReason.INVALID_RULE, str(exc))), source_sha
        except PdfRejectedError as exc:
            return self._failed(request, exc.failure), source_sha
        log.info("split.started", document_id=request.document_id, pages=info.page_count, strategy=plan.strategy)
        writer = PartWriter(source, attachments)
        uploader = Uploader(self.store, self.options.upload_threads)
        try:
            run = self._new_run(account_id, request, source, source_sha, plan, writer, uploader, tmp)
        except BaseException:
            uploader.close()
            writer.close()
            raise
        try:
            result = self._stream(run, info.page_count)
        except BaseException:
            uploader.close()
            raise
        finally:
            writer.close()
            run.pack.close()
        uploader.close()
        return result, source_sha

    def _new_run(
        self,
        account_id: str,
        request: SplitRequested,
        source: Path,
        source_sha: str,
        plan: SplitPlan,
        writer: PartWriter,
        uploader: Uploader,
        tmp: Path,
    ) -> _Run:
        return _Run(
            account_id,
            request,
            source,
            source_sha,
            plan,
            writer,
            uploader,
            self.options.thumbnail_width,
            tmp / "thumbnails.pngpack",
        )

    def _download(self, key: str, target: Path) -> str:
        digest = hashlib.sha256()
        try:
            with target.open("wb") as fh:
                for chunk in self.store.stream(key):
                    digest.update(chunk)
                    fh.write(chunk)
        except StorageUnavailableError as exc:
            raise TransientError(f"object storage unavailable: {exc}") from exc
        return digest.hexdigest()

    def _attachments(self, request: SplitRequested, tmp: Path) -> list[Path]:
        paths: list[Path] = []
        for number, key in enumerate(request.attachment_keys):
            path = tmp / f"attachment-{number}.pdf"
            label = f"Anhang {number + 1} ({key.rsplit('/', 1)[-1]})"
            try:
                self._download(key, path)
            except ObjectNotFoundError:
                raise PdfRejectedError(
                    Failure(SplitFailureReason.SOURCE_MISSING, f"{label} wurde im Speicher nicht gefunden.")
                ) from None
            inspect_pdf(path, label)
            paths.append(path)
        return paths

    def _stream(self, run: _Run, page_count: int) -> DocumentSplit | DocumentSplitFailed:
        segmenter = Segmenter(run.plan)
        for chunk in self.scanner.scan(run.source, run.plan, page_count):
            for facts in chunk:
                self._count(run, facts)
                for segment in segmenter.feed(self._keep_thumbnail(run, facts)):
                    self._store_part(run, segment)
        for segment in segmenter.finish():
            self._store_part(run, segment)
        failure = ocr_failure(run.request.filename, page_count, run.scanned)
        if failure is None and segmenter.letters == 0:
            failure = no_letter_failure(run.request.filename, run.plan, page_count)
        if failure is not None:
            self._remove_written(run)
            return self._failed(run.request, failure)
        run.uploader.wait()
        self._store_pack(run)
        self._remove_stale(run)
        warnings = document_warnings(len(run.parts), run.not_a4, run.scanned, run.last_short, run.plan)
        log.info("split.done", parts=len(run.parts), pages=page_count, stored_bytes=run.uploader.bytes)
        return DocumentSplit(
            letter_id=run.request.letter_id,
            document_id=run.request.document_id,
            source_key=run.request.source_key,
            strategy=run.plan.strategy,
            source_page_count=page_count,
            parts=run.parts,
            warnings=warnings,
        )

    @staticmethod
    def _count(run: _Run, facts: PageFacts) -> None:
        run.pages += 1
        if not facts.is_a4_portrait:
            run.not_a4 += 1
        if facts.needs_ocr:
            run.scanned += 1

    @staticmethod
    def _keep_thumbnail(run: _Run, facts: PageFacts) -> PageFacts:
        if facts.thumbnail is None:
            return facts
        run.thumbnails[facts.index] = facts.thumbnail
        return replace(facts, thumbnail=None)

    def _store_part(self, run: _Run, segment: Segment) -> None:
        index = len(run.parts)
        request = run.request
        data = run.writer.write(segment.first, segment.last)
        sha = hashlib.sha256(data).hexdigest()
        size = len(data)
        key = part_key(run.account_id, request.letter_id, request.document_id, index)
        run.uploader.put(
            key,
            data,
            "application/pdf",
            {"sha256": sha, "source-pages": f"{segment.first + 1}-{segment.last + 1}"},
        )
        del data
        thumbnail = run.thumbnails.pop(segment.first, None)
        if thumbnail is None:
            thumbnail = thumbnail_of(str(run.source), segment.first, run.thumbnail_width)
        for stale in [i for i in run.thumbnails if i <= segment.last]:
            del run.thumbnails[stale]
        thumbnail_offset = run.pack_size
        run.pack.write(thumbnail)
        run.pack_size += len(thumbnail)
        evidence = segment.evidence()
        if run.plan.pages_per_letter and segment.page_count < run.plan.pages_per_letter:
            run.last_short = True
        run.parts.append(
            SplitPart(
                part_id=str(
                    deterministic_event_id(
                        "part",
                        run.account_id,
                        request.letter_id,
                        request.document_id,
                        run.source_sha256,
                        run.rule_digest,
                        index,
                    )
                ),
                index=index,
                first_page=segment.first + 1,
                last_page=segment.last + 1,
                page_count=segment.page_count + run.writer.attachment_page_count,
                storage_key=key,
                thumbnail_key=thumbnail_pack_key(run.account_id, request.letter_id, request.document_id),
                thumbnail_offset=thumbnail_offset,
                thumbnail_size=len(thumbnail),
                sha256=sha,
                size_bytes=size,
                address_lines=list(evidence.address_lines),
                identifiers=list(evidence.identifiers),
                property_refs=list(evidence.property_refs),
                unit_refs=list(evidence.unit_refs),
                warnings=list(evidence.warnings),
            )
        )

    def _store_pack(self, run: _Run) -> None:
        """Store every thumbnail of the document as one object (the parts carry their byte range)."""
        run.pack.close()
        request = run.request
        key = thumbnail_pack_key(run.account_id, request.letter_id, request.document_id)
        try:
            self.store.put_file(key, str(run.pack_path), content_type="application/octet-stream")
        except (StorageUnavailableError, ConnectionError, OSError) as exc:
            raise TransientError(f"object storage unavailable while storing thumbnails: {exc}") from exc
        run.uploader.keys.append(key)
        run.uploader.bytes += run.pack_size

    def _remove_written(self, run: _Run) -> None:
        try:
            run.uploader.wait()
        except Exception:
            log.warning("split.cleanup_wait_failed", exc_info=True)
        for key in run.uploader.keys:
            try:
                self.store.delete(key)
            except Exception:
                log.warning("split.cleanup_failed", key=key, exc_info=True)

    def _remove_stale(self, run: _Run) -> None:
        """A re-run that yields fewer parts must not leave parts of the earlier run behind."""
        request = run.request
        keep = set(run.uploader.keys)
        first_part = part_key(run.account_id, request.letter_id, request.document_id, 0)
        first_thumb = thumbnail_key(run.account_id, request.letter_id, request.document_id, 0)
        for prefix in (first_part.rsplit("/", 1)[0] + "/", first_thumb.rsplit("/", 1)[0] + "/"):
            try:
                for key in self.store.list(prefix):
                    if key not in keep:
                        self.store.delete(key)
            except StorageUnavailableError as exc:
                raise TransientError(str(exc)) from exc

    @staticmethod
    def _failed(request: SplitRequested, failure: Failure) -> DocumentSplitFailed:
        log.warning("split.failed", document_id=request.document_id, reason_code=failure.code, reason=failure.reason)
        return DocumentSplitFailed(
            letter_id=request.letter_id,
            document_id=request.document_id,
            source_key=request.source_key,
            reason_code=failure.code,
            reason=failure.reason,
        )


def rule_fingerprint(request: SplitRequested) -> str:
    """A short digest of everything besides the source file that decides the parts: rule and attachments."""
    material = request.rule.model_dump_json() + "|" + "|".join(request.attachment_keys)
    return hashlib.sha256(material.encode()).hexdigest()[:16]
