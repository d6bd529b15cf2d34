"""Use case: split one source document (SplitRequested) into stored parts and report DocumentSplit or the failure.

Flow, streaming and bounded in memory; every read of the uploaded bytes runs in the sandbox (worker processes
with memory/CPU limits and wall-clock budgets, :mod:`.adapters.sandbox`), the service process only moves files:
1. download the source to a temporary file (hashing it on the way); the sandbox checks it against the budgets
   (pages, decoded stream bytes, page size) and rejects what cannot be split;
2. sandbox workers read the pages in ranges and return small per-page facts (+ thumbnails of candidate first
   pages); the :class:`~smartpost_splitter.domain.Segmenter` turns them into letters as they arrive;
3. finished letters are cut in batches by sandbox workers (pikepdf; active content removed, unused shared
   resources dropped) into temporary files, which a small thread pool uploads; thumbnails go into one temporary
   "thumbnail pack" file;
4. the pack is stored as one object (parts name their byte range in it);
5. only when every part and the pack are stored is the DocumentSplit event returned.

Keys and ids are versioned per split request: ``…/parts/<document>/<split id>/<index>.pdf`` and
``…/thumbnails/<document>/<split id>/thumbnails.pngpack`` with split id = the SplitRequested event id, so a re-split
(a new SplitRequested) never overwrites the parts of an earlier split, while a re-run of the same request (crash,
redelivery, resumed job) writes the same keys, the same bytes and the same event id.

Every failure ends in a DocumentSplitFailed with a German reason (budgets, crashes and timeouts of the reader,
unexpected errors with the correlation id); the technical detail goes to the log. Only a storage outage is raised
(``TransientError``: the job is retried, nothing is lost). Parts written before a failure are removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason, SplitPart
from smartpost_shared.contracts.envelope import Envelope, caused_by, deterministic_event_id
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import PermanentError, TransientError
from smartpost_shared.storage import (
    ObjectNotFoundError,
    StorageUnavailableError,
    part_key,
    thumbnail_pack_key,
)
from smartpost_splitter.adapters.pdf import (
    CutJob,
    CutResult,
    ObjGen,
    OutputBudgetError,
    PdfRejectedError,
    SourceReport,
    cut_parts,
    inspect_source,
    removed_warning,
)
from smartpost_splitter.adapters.sandbox import SandboxError, SandboxFault, deadline_after, remaining
from smartpost_splitter.adapters.scan import PageUnreadableError, blank_thumbnail, head_text_task, scan_range
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
from smartpost_splitter.limits import (
    Budgets,
    internal_error,
    reader_crashed,
    too_much_memory,
    too_much_output,
    too_slow,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)
PRODUCER = "splitter"
WORK_PREFIX = "splitter-"
T = TypeVar("T")


class TaskRunner(Protocol):
    """Where document code runs: the :class:`~.adapters.sandbox.Sandbox` (or in-process in unit tests)."""

    processes: int

    def submit(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> Future[T]: ...

    def call(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> T: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SplitterOptions:
    work_dir: Path | None = None
    upload_threads: int = 8
    thumbnail_width: int = 200
    chunk_pages: int = 250
    evidence_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS
    budgets: Budgets = field(default_factory=Budgets)


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
    split_id: str
    source: Path
    source_sha256: str
    upload_bytes: int
    attachments: tuple[str, ...]
    attachment_pages: int
    plan: SplitPlan
    uploader: Uploader
    tmp: Path
    deadline: float
    stored_budget: int
    page_objects: tuple[ObjGen, ...] | None = None  # from the input check: cut batches open only their pages
    parts: list[SplitPart] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)
    removed: Counter[str] = field(default_factory=Counter)
    not_a4: int = 0
    scanned: int = 0
    pages: int = 0
    last_short: bool = False
    rule_digest: str = field(init=False)
    pack: BinaryIO = field(init=False)
    pack_size: int = 0
    next_index: int = 0
    in_flight: list[Future[Any]] = field(default_factory=list)

    def track(self, future: Future[Any]) -> None:
        """Remember a sandbox task until it is finished (for :meth:`SplitService._abandon`).

        Finished tasks are dropped here: a finished future keeps its result, and the page facts of a 10k-page
        document held this way were ~38 MB of the service process's peak.
        """
        self.in_flight = [f for f in self.in_flight if not f.done()]
        self.in_flight.append(future)

    def __post_init__(self) -> None:
        self.rule_digest = rule_fingerprint(self.request)  # once per split, not once per part
        self.pack = (self.tmp / "thumbnails.pngpack").open("wb")

    @property
    def pack_path(self) -> Path:
        return self.tmp / "thumbnails.pngpack"


def split_document_id(request: SplitRequested, split_id: str) -> str:
    """The key segment of one split of a document: ``<document>/<split id>``."""
    return f"{request.document_id}/{split_id}"


class SplitService:
    def __init__(self, store: ObjectStore, runner: TaskRunner, options: SplitterOptions | None = None) -> None:
        self.store = store
        self.runner = runner
        self.options = options or SplitterOptions()
        self._active = 0  # documents being split right now (by concurrent job runners)
        self._active_lock = threading.Lock()

    @property
    def budgets(self) -> Budgets:
        return self.options.budgets

    def handle(self, envelope: Envelope) -> Envelope:
        """Split the document of a SplitRequested event; return the event to publish (success or failure).

        Raises only :class:`TransientError` (storage outage: retry) and :class:`PermanentError` (not a
        SplitRequested); every other problem becomes a DocumentSplitFailed.
        """
        request = envelope.payload
        if not isinstance(request, SplitRequested):
            raise PermanentError(f"splitter cannot handle {envelope.event_type}")
        split_id = str(envelope.event_id)
        source_sha = "unknown"
        payload: DocumentSplit | DocumentSplitFailed
        with work_directory(self.options.work_dir) as tmp, self._counted():
            try:
                source_sha = self._download(request.source_key, tmp / "source.pdf")
                payload = self._split(envelope, request, split_id, source_sha, tmp)
            except ObjectNotFoundError:
                payload = self._failed(
                    request,
                    Failure(
                        SplitFailureReason.SOURCE_MISSING,
                        f"Die Quelldatei „{request.filename}“ wurde im Speicher nicht gefunden.",
                    ),
                )
                log.warning("split.source_missing", source_key=request.source_key)
            except (TransientError, PermanentError):
                raise
            except Exception:  # every other failure reaches staff, with the detail in the log
                log.exception("split.internal_error", document_id=request.document_id)
                payload = self._failed(request, internal_error(request.filename, str(envelope.correlation_id)))
        kind = "split" if isinstance(payload, DocumentSplit) else "split-failed"
        # The split request is part of the identity: a re-split (new SplitRequested, same file and rule) is a new
        # result that downstream consumers (deduplicating by event id) must not drop; a re-run of the same request
        # re-emits the same id.
        event_id = deterministic_event_id(
            kind,
            envelope.account_id,
            request.letter_id,
            request.document_id,
            split_id,
            source_sha,
            rule_fingerprint(request),
        )
        return caused_by(envelope, payload, producer=PRODUCER, event_id=event_id)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    # -- steps ---------------------------------------------------------------------------------------------------

    def _split(
        self, envelope: Envelope, request: SplitRequested, split_id: str, source_sha: str, tmp: Path
    ) -> DocumentSplit | DocumentSplitFailed:
        source = tmp / "source.pdf"
        deadline = deadline_after(self.budgets.document_seconds)
        label = request.filename
        try:
            plan = plan_from_rule(request.rule, evidence_patterns=self.options.evidence_patterns)
            report = self._inspect(source, label, deadline)
            attachments, attachment_pages = self._attachments(request, tmp, deadline)
            if plan.needs_fingerprint:
                assert plan.sample_page is not None
                sample_text = ""
                if plan.sample_page <= report.page_count:
                    sample_text = self.runner.call(
                        head_text_task,
                        str(source),
                        plan.sample_page - 1,
                        timeout=self._timeout(deadline, 1),
                    )
                plan = with_fingerprint(plan, report.page_count, sample_text)
        except RuleError as exc:
            return self._failed(request, Failure(SplitFailureReason.INVALID_RULE, str(exc)))
        except Exception as exc:  # noqa: BLE001 - mapped to a reason for staff
            return self._failed(request, self._failure_of(exc, label, envelope))
        log.info(
            "split.started",
            document_id=request.document_id,
            split_id=split_id,
            pages=report.page_count,
            strategy=plan.strategy,
            stream_bytes=report.stream_bytes,
        )
        upload_bytes = source.stat().st_size + sum(Path(a).stat().st_size for a in attachments)
        uploader = Uploader(self.store, self.options.upload_threads)
        run = _Run(
            envelope.account_id,
            request,
            split_id,
            source,
            source_sha,
            upload_bytes,
            attachments,
            attachment_pages,
            plan,
            uploader,
            tmp,
            deadline,
            self.budgets.stored_budget(upload_bytes),
            report.page_objects,
        )
        run.removed.update(report.removed)
        try:
            return self._stream(run, report.page_count)
        except (TransientError, PermanentError):
            self._abandon(run)
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a reason for staff; parts written so far go again
            self._abandon(run)
            self._remove_written(run)
            return self._failed(request, self._failure_of(exc, label, envelope, run=run))
        finally:
            run.pack.close()
            uploader.close()

    def _timeout(self, deadline: float, pages: int) -> float:
        left = remaining(deadline)
        if left <= 0:
            raise SandboxError(SandboxFault.TIMEOUT, "document time budget used up")
        return min(self.budgets.task_seconds(pages), left)

    def _inspect(self, path: Path, label: str, deadline: float) -> SourceReport:
        report: SourceReport = self.runner.call(
            inspect_source,
            str(path),
            label,
            self.budgets,
            timeout=self._timeout(deadline, 50),
        )
        return report

    def _failure_of(  # noqa: PLR0911 - one reason per kind of failure
        self, exc: BaseException, label: str, envelope: Envelope, *, run: _Run | None = None
    ) -> Failure:
        if isinstance(exc, PdfRejectedError):
            return exc.failure
        if isinstance(exc, PageUnreadableError):
            log.warning("split.page_unreadable", page=exc.index + 1, detail=exc.detail)
            return Failure(
                SplitFailureReason.CORRUPT,
                f"„{label}“: Seite {exc.index + 1} ist beschädigt und nicht lesbar. Bitte das Dokument neu "
                "exportieren.",
            )
        if isinstance(exc, OutputBudgetError):
            upload = run.upload_bytes if run else 0
            stored = run.stored_budget if run else exc.stored
            log.warning("split.output_budget", written=exc.stored, budget=stored)
            return too_much_output(label, stored, upload)
        if isinstance(exc, SandboxError):
            log.warning("split.sandbox_fault", fault=exc.fault.value, detail=exc.detail, pages_read=run and run.pages)
            if exc.fault in {SandboxFault.TIMEOUT, SandboxFault.CPU}:
                return too_slow(label, self.budgets, page=(run.pages + 1) if run else None)
            if exc.fault is SandboxFault.MEMORY:
                return too_much_memory(label, self.budgets)
            return reader_crashed(label)
        log.error("split.internal_error", event_id=str(envelope.event_id), exc_info=exc)
        return internal_error(label, str(envelope.correlation_id))

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

    def _attachments(self, request: SplitRequested, tmp: Path, deadline: float) -> tuple[tuple[str, ...], int]:
        paths: list[str] = []
        pages = 0
        for number, key in enumerate(request.attachment_keys):
            path = tmp / f"attachment-{number}.pdf"
            label = f"Anhang {number + 1} ({key.rsplit('/', 1)[-1]})"
            try:
                self._download(key, path)
            except ObjectNotFoundError:
                raise PdfRejectedError(
                    Failure(SplitFailureReason.SOURCE_MISSING, f"{label} wurde im Speicher nicht gefunden.")
                ) from None
            pages += self._inspect(path, label, deadline).page_count
            paths.append(str(path))
        return tuple(paths), pages

    def _stream(self, run: _Run, page_count: int) -> DocumentSplit | DocumentSplitFailed:
        segmenter = Segmenter(run.plan)
        chunk = self.options.chunk_pages
        ranges = deque((start, min(start + chunk, page_count)) for start in range(0, page_count, chunk))
        scans: deque[tuple[int, Future[list[PageFacts]]]] = deque()
        cuts: deque[Future[list[CutResult]]] = deque()
        batch: list[CutJob] = []
        window = self._window()
        while ranges or scans:
            window = self._window()  # shrinks while other documents are being split (fair share of the workers)
            while ranges and len(scans) < window:
                start, stop = ranges.popleft()
                future = self.runner.submit(
                    scan_range,
                    str(run.source),
                    run.plan,
                    start,
                    stop,
                    self.options.thumbnail_width,
                    timeout=self._timeout(run.deadline, stop - start),
                )
                scans.append((start, future))
                run.track(future)
            _, head = scans.popleft()
            for facts in head.result():
                self._count(run, facts)
                batch.extend(self._job(run, segment) for segment in segmenter.feed(self._keep_thumbnail(run, facts)))
            if sum(j.last - j.first + 1 for j in batch) >= chunk:
                cuts.append(self._submit_cut(run, batch, last=False))
                batch = []
                self._drain(run, cuts, keep=window)
        batch += [self._job(run, segment) for segment in segmenter.finish()]
        failure = ocr_failure(run.request.filename, page_count, run.scanned)
        if failure is None and segmenter.letters == 0:
            failure = no_letter_failure(run.request.filename, run.plan, page_count)
        if failure is not None:
            self._abandon(run)
            self._remove_written(run)
            return self._failed(run.request, failure)
        if batch:
            cuts.append(self._submit_cut(run, batch, last=True))
        self._drain(run, cuts, keep=0)
        run.uploader.wait()
        self._store_pack(run)
        self._remove_stale(run)
        warnings = document_warnings(len(run.parts), run.not_a4, run.scanned, run.last_short, run.plan)
        removed = removed_warning(run.removed)
        if removed:
            warnings.append(removed)
        log.info(
            "split.done",
            parts=len(run.parts),
            pages=page_count,
            stored_bytes=run.uploader.bytes,
            upload_bytes=run.upload_bytes,
            removed=dict(run.removed),
        )
        return DocumentSplit(
            letter_id=run.request.letter_id,
            document_id=run.request.document_id,
            source_key=run.request.source_key,
            strategy=run.plan.strategy,
            source_page_count=page_count,
            parts=run.parts,
            warnings=warnings,
        )

    def _window(self) -> int:
        """Sandbox tasks one document may have queued or running: two per worker, shared among the documents.

        A slow document thus never has more than its share of the queue ahead of another one.
        """
        with self._active_lock:
            active = max(1, self._active)
        return max(1, (max(1, self.runner.processes) * 2) // active)

    def _job(self, run: _Run, segment: Segment) -> CutJob:
        index = run.next_index
        run.next_index += 1
        run.segments[index] = segment
        return CutJob(index, segment.first, segment.last, need_thumbnail=segment.first not in run.thumbnails)

    def _submit_cut(self, run: _Run, jobs: list[CutJob], *, last: bool) -> Future[list[CutResult]]:
        pages = sum(j.last - j.first + 1 for j in jobs)
        objects = run.page_objects
        batch_objects = (
            {i: objects[i] for job in jobs for i in range(job.first, job.last + 1)} if objects is not None else None
        )
        future = self.runner.submit(
            cut_parts,
            str(run.source),
            run.attachments,
            tuple(jobs),
            str(run.tmp),
            self.options.thumbnail_width,
            max(0, run.stored_budget - run.uploader.bytes - run.pack_size),
            last,
            batch_objects,
            timeout=self._timeout(run.deadline, pages),
        )
        run.track(future)
        return future

    def _drain(self, run: _Run, cuts: deque[Future[list[CutResult]]], *, keep: int) -> None:
        """Store the results of finished cut batches, in order; block while more than ``keep`` are pending."""
        while cuts and (len(cuts) > keep or cuts[0].done()):
            for result in cuts.popleft().result():
                self._store_part(run, result)

    def _abandon(self, run: _Run) -> None:
        """Cancel queued sandbox tasks of this run and wait for running ones (each is bounded by its budget)."""
        for future in run.in_flight:
            future.cancel()
        futures_wait(run.in_flight)

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

    def _store_part(self, run: _Run, result: CutResult) -> None:
        index = result.index
        request = run.request
        segment = run.segments.pop(index)
        path = Path(result.path)
        data = path.read_bytes()
        path.unlink()
        if run.uploader.bytes + run.pack_size + len(data) > run.stored_budget:  # parts and thumbnails
            raise OutputBudgetError(run.uploader.bytes + run.pack_size + len(data))
        key = part_key(run.account_id, request.letter_id, split_document_id(request, run.split_id), index)
        run.uploader.put(
            key,
            data,
            "application/pdf",
            {"sha256": result.sha256, "source-pages": f"{segment.first + 1}-{segment.last + 1}"},
        )
        del data
        thumbnail = (
            result.thumbnail or run.thumbnails.pop(segment.first, None) or blank_thumbnail(self.options.thumbnail_width)
        )
        for stale in [i for i in run.thumbnails if i <= segment.last]:
            del run.thumbnails[stale]
        thumbnail_offset = run.pack_size
        run.pack.write(thumbnail)
        run.pack_size += len(thumbnail)
        evidence = segment.evidence()
        warnings = list(evidence.warnings)
        removed = removed_warning(result.removed)
        if removed:
            warnings.append(removed)
            run.removed.update(result.removed)
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
                        run.split_id,
                        run.source_sha256,
                        run.rule_digest,
                        index,
                    )
                ),
                index=index,
                first_page=segment.first + 1,
                last_page=segment.last + 1,
                page_count=segment.page_count + run.attachment_pages,
                storage_key=key,
                thumbnail_key=self._pack_key(run),
                thumbnail_offset=thumbnail_offset,
                thumbnail_size=len(thumbnail),
                sha256=result.sha256,
                size_bytes=result.size,
                address_lines=list(evidence.address_lines),
                identifiers=list(evidence.identifiers),
                property_refs=list(evidence.property_refs),
                unit_refs=list(evidence.unit_refs),
                context_lines=list(evidence.context_lines),
                warnings=warnings,
            )
        )

    @staticmethod
    def _pack_key(run: _Run) -> str:
        request = run.request
        return thumbnail_pack_key(run.account_id, request.letter_id, split_document_id(request, run.split_id))

    def _store_pack(self, run: _Run) -> None:
        """Store every thumbnail of the document as one object (the parts carry their byte range)."""
        run.pack.close()
        key = self._pack_key(run)
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
        """A re-run of the same request that yields fewer parts must not leave parts of its earlier run behind.

        Only this split's own prefix is cleaned: the parts of earlier split requests stay untouched.
        """
        request = run.request
        keep = set(run.uploader.keys)
        first_part = part_key(run.account_id, request.letter_id, split_document_id(request, run.split_id), 0)
        prefix = first_part.rsplit("/", 1)[0] + "/"
        try:
            for key in self.store.list(prefix):
                if key not in keep:
                    self.store.delete(key)
        except StorageUnavailableError as exc:
            raise TransientError(str(exc)) from exc

    def failed_event(self, envelope: Envelope, failure: Failure) -> Envelope:
        """A DocumentSplitFailed for a request that is given up without a split (e.g. repeatedly aborted)."""
        request = envelope.payload
        assert isinstance(request, SplitRequested)
        event_id = deterministic_event_id(
            "split-failed",
            envelope.account_id,
            request.letter_id,
            request.document_id,
            str(envelope.event_id),
            "given-up",
        )
        return caused_by(envelope, self._failed(request, failure), producer=PRODUCER, event_id=event_id)

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


@contextlib.contextmanager
def work_directory(parent: Path | None) -> Any:
    """A temporary folder for one split, removed on every exit path (named after the process: see below)."""
    path = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_work(parent: Path | None) -> int:
    """Remove folders left by splitter processes that died (their pid no longer runs); called at start-up."""
    base = parent or Path(tempfile.gettempdir())
    removed = 0
    for folder in base.glob(f"{WORK_PREFIX}*-*"):
        pid_text = folder.name.removeprefix(WORK_PREFIX).split("-", 1)[0]
        if not pid_text.isdigit() or not folder.is_dir():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rule_fingerprint(request: SplitRequested) -> str:
    """A short digest of everything besides the source file that decides the parts: rule and attachments."""
    material = request.rule.model_dump_json() + "|" + "|".join(request.attachment_keys)
    return hashlib.sha256(material.encode()).hexdigest()[:16]
