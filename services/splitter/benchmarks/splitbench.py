"""Splitter benchmark: floor (bare pikepdf split + bare pypdfium2 text) vs the full pipeline, 1k and 10k pages.

    .venv/bin/python services/splitter/benchmarks/bench_split.py [--processes 2] [--pages 1000 10000]

(``bench_split.py`` only launches this module: spawned worker processes re-import the main script, and the
service's own ``__main__`` is just as slim, so the workers measured here carry what the service's workers carry.)

Starts its own SeaweedFS (smartpost_shared.devstack) so the pipeline uploads for real. Prints, per size and from
one run with the same number of processes: floor, pipeline (download + checks + text + split + thumbnails +
upload), ratio, pages/s, peak memory (main process and main + workers), stored bytes; then the 1k -> 10k scaling
and split correctness of every strategy on generated corpora (100 % of boundaries expected).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Self

import pikepdf
import pypdfium2 as pdfium
from pydantic import SecretStr

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.sample_letters import SampleLetterTruth, demo_recipients, read_truth, write_serial_letter
from smartpost_shared.settings import StorageSettings
from smartpost_shared.storage import MinioStore, source_key
from smartpost_splitter.adapters.sandbox import Sandbox
from smartpost_splitter.application import SplitService, SplitterOptions

CACHE = Path(tempfile.gettempdir()) / "smartpost-splitter-bench"
UPLOAD_THREADS = 8  # as the service's default (SplitterOptions.upload_threads)
RULE = SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"Kontakt-Nr\.?\s*:?\s*(K-\d{6})")


# -- corpus ------------------------------------------------------------------------------------------------------


def corpus(pages: int, name: str = "plain", **kwargs: object) -> tuple[Path, list[SampleLetterTruth]]:
    """A generated file of about ``pages`` pages (cached between runs)."""
    path = CACHE / f"{name}-{pages}.pdf"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        truth = write_serial_letter(path, demo_recipients(max(1, round(pages / 3.5)), seed=pages), seed=pages, **kwargs)  # type: ignore[arg-type]
        print(f"  generated {path.name}: {truth[-1].last_page} pages in {time.perf_counter() - started:.1f} s")
    return path, read_truth(path)


# -- memory ------------------------------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


class MemorySampler:
    """Samples RSS of this process and the splitter's text workers every 20 ms; keeps the peaks."""

    def __init__(self, workers: list[int]) -> None:
        self.workers = workers
        self.peak_total_kb = 0
        self.peak_main_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            main = _rss_kb(me)
            total = main + sum(_rss_kb(pid) for pid in self.workers)
            self.peak_main_kb = max(self.peak_main_kb, main)
            self.peak_total_kb = max(self.peak_total_kb, total)
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- floor -------------------------------------------------------------------------------------------------------


def _text_range(path: str, start: int, stop: int) -> int:
    doc = pdfium.PdfDocument(path)
    chars = 0
    for i in range(start, stop):
        page = doc[i]
        textpage = page.get_textpage()
        chars += len(textpage.get_text_range())
        textpage.close()
        page.close()
    doc.close()
    return chars


def _split_letters(path: str, ranges: list[tuple[int, int]]) -> int:
    total = 0
    with pikepdf.open(path) as src:
        pages = list(src.pages)
        for first, last in ranges:
            out = pikepdf.Pdf.new()
            out.pages.extend(pages[first - 1 : last])
            buffer = io.BytesIO()
            out.save(buffer, compress_streams=False)
            total += buffer.tell()
            out.close()
    return total


def floor(pool: ProcessPoolExecutor, processes: int, path: Path, truth: list[SampleLetterTruth]) -> tuple[float, float]:
    pages = truth[-1].last_page
    step = -(-pages // processes)
    started = time.perf_counter()
    list(
        pool.map(
            _text_range,
            [str(path)] * processes,
            range(0, pages, step),
            [min(s + step, pages) for s in range(0, pages, step)],
        )
    )
    text = time.perf_counter() - started
    ranges = [(t.first_page, t.last_page) for t in truth]
    share = -(-len(ranges) // processes)
    started = time.perf_counter()
    list(
        pool.map(_split_letters, [str(path)] * processes, [ranges[i : i + share] for i in range(0, len(ranges), share)])
    )
    return text, time.perf_counter() - started


def _store_parts(
    path: str, ranges: list[tuple[int, int]], endpoint: str, secret: str, threads: int
) -> tuple[float, int]:
    """Storage floor: PUT the parts of ``ranges`` (cut beforehand, untimed) to the same SeaweedFS, concurrently."""
    parts: list[bytes] = []
    with pikepdf.open(path) as src:
        pages = list(src.pages)
        for first, last in ranges:
            out = pikepdf.Pdf.new()
            out.pages.extend(pages[first - 1 : last])
            buffer = io.BytesIO()
            out.save(buffer, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.generate)
            parts.append(buffer.getvalue())
            out.close()
    store = MinioStore(StorageSettings(endpoint=endpoint, secret_key=SecretStr(secret), bucket="bench"))
    prefix = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda i: store.put(f"floor/{prefix}/{i:05d}.pdf", parts[i], content_type="application/pdf"),
                range(len(parts)),
            )
        )
    return time.perf_counter() - started, sum(len(p) for p in parts)


def storage_floor(pool: ProcessPoolExecutor, stack: Stack, path: Path, truth: list[SampleLetterTruth]) -> float:
    ranges = [(t.first_page, t.last_page) for t in truth]
    seconds, _ = pool.submit(
        _store_parts, str(path), ranges, stack.s3_endpoint, stack.s3_secret_key, UPLOAD_THREADS
    ).result()
    return seconds


# -- pipeline ----------------------------------------------------------------------------------------------------


def pipeline(
    service: SplitService, store: MinioStore, path: Path, rule: SplitRule = RULE
) -> tuple[float, DocumentSplit, int, int, int, int]:
    account, letter, document = "bench", uuid.uuid4().hex[:8], "doc"
    key = source_key(account, letter, document)
    store.put_file(key, str(path), content_type="application/pdf")
    envelope = make_envelope(
        SplitRequested(
            letter_id=letter, document_id=document, source_key=key, filename=path.name, position=0, rule=rule
        ),
        account_id=account,
        producer="bench",
    )
    with MemorySampler(service.runner.worker_pids()) as memory:  # type: ignore[attr-defined]
        started = time.perf_counter()
        result = service.handle(envelope)
        elapsed = time.perf_counter() - started
    payload = result.payload
    assert isinstance(payload, DocumentSplit), payload
    stored = sum(p.size_bytes for p in payload.parts)
    return elapsed, payload, memory.peak_main_kb, memory.peak_total_kb, stored, len(result.to_bytes())


def check(payload: DocumentSplit, truth: list[SampleLetterTruth]) -> tuple[int, int]:
    want = {(t.first_page, t.last_page) for t in truth}
    got = {(p.first_page, p.last_page) for p in payload.parts}
    return len(want & got), len(want)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--pages", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-strategies", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--file", type=Path, help="split this generated PDF (ground truth beside it) instead of the own corpus"
    )
    parser.add_argument(
        "--first-page-text", help="split by this first-page text (as the whole-system benchmark does), not by id"
    )
    args = parser.parse_args()
    rule = RULE
    if args.first_page_text:
        rule = SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text=args.first_page_text)
    processes = args.processes
    print(f"machine: {os.cpu_count()} cores; processes={processes}")

    root = Path(tempfile.mkdtemp(prefix="splitter-bench-"))
    stack = Stack(root, kafka_port=free_port(), s3_port=free_port(), smtp_port=free_port(), with_smtp=False)
    stack.root.mkdir(parents=True, exist_ok=True)
    stack.start_seaweedfs()
    stack.wait_for_s3()
    store = MinioStore(
        StorageSettings(endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key), bucket="bench")
    )
    store.ensure_bucket()
    scanner = Sandbox(processes)
    scanner.warm_up()
    service = SplitService(
        store, scanner, SplitterOptions(upload_threads=UPLOAD_THREADS, thumbnail_width=200, chunk_pages=250)
    )
    floor_pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    try:
        warm, warm_truth = corpus(200, "warm")
        pipeline(service, store, warm)  # start the worker processes
        floor(floor_pool, processes, warm, warm_truth)
        results: dict[int, float] = {}
        inputs = [(args.file, read_truth(args.file))] if args.file else [corpus(pages) for pages in args.pages]
        for path, truth in inputs:
            runs = []
            for _ in range(args.repeat):  # paired runs; the median ratio is what to trust on a noisy machine
                text_s, split_s = floor(floor_pool, processes, path, truth)
                elapsed, payload, main_kb, total_kb, stored, event_bytes = pipeline(service, store, path, rule)
                runs.append((elapsed / (text_s + split_s), text_s, split_s, elapsed, main_kb, total_kb))
            ratio, text_s, split_s, elapsed, _, _ = sorted(runs)[len(runs) // 2]
            main_kb = max(r[4] for r in runs)
            total_kb = max(r[5] for r in runs)
            right, total = check(payload, truth)
            results[truth[-1].last_page] = statistics.median(r[3] for r in runs)
            n = payload.source_page_count
            print(
                f"{n:>6} pages, {len(truth)} letters, {path.stat().st_size / 1e6:.1f} MB | "
                f"floor {text_s + split_s:.2f} s (text {text_s:.2f} + split {split_s:.2f}) | "
                f"pipeline {elapsed:.2f} s = {ratio:.2f}x floor (median of {len(runs)} paired runs; all: "
                f"{', '.join(f'{r[0]:.2f}' for r in runs)}), {n / elapsed:.0f} pages/s | "
                f"peak RSS main {main_kb / 1024:.0f} MB, main+workers {total_kb / 1024:.0f} MB | "
                f"stored {stored / 1e6:.1f} MB parts ({stored / path.stat().st_size:.1f}x input) | "
                f"boundaries {right}/{total} | DocumentSplit event {event_bytes / 1e3:.0f} KB"
            )
            # What storing alone costs on this machine (SeaweedFS shares the cores): the floor the issue defines
            # leaves it out, so show the pipeline against floor + storage floor as well.
            stored_s = statistics.median(storage_floor(floor_pool, stack, path, truth) for _ in range(2))
            print(
                f"        storage floor (bare PUT of the same {len(truth)} parts to the same SeaweedFS, "
                f"{UPLOAD_THREADS} threads) {stored_s:.2f} s = {stored_s / (text_s + split_s):.2f}x floor | "
                f"pipeline = {elapsed / (text_s + split_s + stored_s):.2f}x (floor + storage floor)"
            )
        if len(results) >= 2:
            small, large = sorted(results)
            print(
                f"scaling {small} -> {large} pages: {results[large] / results[small]:.2f}x time "
                f"for {large / small:.0f}x pages (median pipeline times)"
            )
        if not args.skip_strategies:
            strategies(service, store)
    finally:
        floor_pool.shutdown()
        scanner.close()
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def strategies(service: SplitService, store: MinioStore) -> None:
    cases = [
        ("plain", {}, SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")),
        ("plain", {}, SplitRule(strategy=SplitStrategy.FIRST_PAGE, sample_page=1)),
        ("plain", {}, SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form="B")),
        ("form-a", {"address_form": "A"}, SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form="A")),
        ("plain", {}, RULE),
        ("keyword", {"keyword_separators": True}, SplitRule(strategy=SplitStrategy.KEYWORD, keyword="Trennseite")),
        ("blank", {"blank_separators": True}, SplitRule(strategy=SplitStrategy.BLANK_SEPARATOR)),
        ("fixed", {"pages_per_letter": (2, 2)}, SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=2)),
    ]
    print("split correctness (1,000-page corpora):")
    for name, kwargs, rule in cases:
        path, truth = corpus(1000, name, **kwargs)
        elapsed, payload, _, _, _, _ = pipeline(service, store, path, rule)
        right, total = check(payload, truth)
        ids = sum(1 for p, t in zip(payload.parts, truth, strict=False) if t.reference_id in p.identifiers)
        print(
            f"  {rule.strategy:<16} {name:<8} boundaries {right}/{total} ({100 * right / total:.1f} %), "
            f"parts {len(payload.parts)}, ids on part {ids}/{total}, {elapsed:.2f} s"
        )
