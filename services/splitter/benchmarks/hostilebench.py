"""Body of ``bench_hostile.py`` (see there)."""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import pikepdf
from splitter_hostile_corpus import FIXED_1, Case, cases, control_letter, shared_images

from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import SplitRequested
from smartpost_shared.logging import configure_logging
from smartpost_shared.storage import MemoryStore, source_key
from smartpost_splitter.adapters import pdf as pdf_adapter
from smartpost_splitter.adapters.sandbox import Limits, Sandbox
from smartpost_splitter.application import SplitService, SplitterOptions
from smartpost_splitter.limits import Budgets


def split(
    service: SplitService, store: MemoryStore, name: str, data: bytes, case: Case | None = None
) -> tuple[str, float, object]:
    document = f"d{time.monotonic_ns()}"
    key = source_key("bench", "letter", document)
    store.put(key, data, content_type="application/pdf")
    envelope = make_envelope(
        SplitRequested(
            letter_id="letter",
            document_id=document,
            source_key=key,
            filename=name,
            position=0,
            rule=case.rule if case else FIXED_1,
        ),
        account_id="bench",
        producer="bench",
    )
    started = time.perf_counter()
    payload = service.handle(envelope).payload
    elapsed = time.perf_counter() - started
    if isinstance(payload, DocumentSplit):
        return "split", elapsed, payload
    assert isinstance(payload, DocumentSplitFailed)
    return outcome_class(payload), elapsed, payload


def outcome_class(failed: DocumentSplitFailed) -> str:
    """reason_code, refined by the budget the German reason names (the contract has one code for all of them)."""
    reason = failed.reason
    for words, label in (
        ("entpackte Daten", "budget:stream_bytes"),
        ("Seiten erlaubt", "budget:pages"),
        ("Papierformat", "budget:page_size"),
        ("erlaubten Zeit", "budget:time"),
        ("Arbeitsspeicher", "budget:memory"),
        ("Speicher belegen", "budget:stored_bytes"),
        ("verschachtelt", "nesting"),
        ("zum Absturz", "reader_crashed"),
        ("unerwarteten Fehlers", "INTERNAL_ERROR"),
    ):
        if words in reason:
            return f"{failed.reason_code.value}/{label}"
    return failed.reason_code.value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, nargs="*", default=[])
    parser.add_argument("--shared-pages", type=int, default=400)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--corpus-only", action="store_true", help="skip the crafted and shared-image cases")
    args = parser.parse_args()
    configure_logging("bench", level="ERROR", json=False)
    budgets = Budgets()
    sandbox = Sandbox(args.processes, Limits(memory_bytes=budgets.memory_bytes, cpu_seconds=budgets.cpu_seconds))
    sandbox.warm_up()
    store = MemoryStore()
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    service = SplitService(store, sandbox, SplitterOptions(work_dir=work, budgets=budgets))
    try:
        if not args.corpus_only:
            crafted(service, store, sandbox)
            shared(service, store, args.shared_pages)
        for folder in args.corpus:
            real_world(service, store, folder)
        print(f"temporary files left: {sum(1 for _ in work.rglob('*'))}; workers replaced: {sandbox.replaced}")
    finally:
        sandbox.close()


def crafted(service: SplitService, store: MemoryStore, sandbox: Sandbox) -> None:
    print("crafted corpus, default budgets (each case followed by a control letter):")
    for case in cases():
        outcome, elapsed, payload = split(service, store, f"{case.name}.pdf", case.data, case)
        control, control_s, _ = split(service, store, "control.pdf", control_letter())
        reason = getattr(payload, "reason", "")
        print(
            f"  {case.name:<20} {len(case.data) / 1024:>8.1f} KB  {outcome:<28} {elapsed:6.2f} s  "
            f"control: {control} ({control_s:.2f} s)  {reason[:90]}"
        )
    print(f"  workers replaced so far: {sandbox.replaced}")


def shared(service: SplitService, store: MemoryStore, pages: int) -> None:
    data = shared_images(pages, 10)
    outcome, elapsed, payload = split(service, store, "shared.pdf", data)
    assert isinstance(payload, DocumentSplit), payload
    stored = sum(p.size_bytes for p in payload.parts)
    # what the parts would weigh if the shared dictionary were copied whole (pruning switched off), from 10 parts
    with tempfile.NamedTemporaryFile(suffix=".pdf") as tmp:
        Path(tmp.name).write_bytes(data)
        limit = pdf_adapter.PRUNE_ABOVE_RESOURCES
        pdf_adapter.PRUNE_ABOVE_RESOURCES = 10**9
        try:
            writer = pdf_adapter.PartWriter(Path(tmp.name), [])
            sample = sum(len(writer.write(i, i)[0]) for i in range(10))
            writer.close()
        finally:
            pdf_adapter.PRUNE_ABOVE_RESOURCES = limit
    unpruned = sample / 10 * pages
    print(
        f"shared images: {pages} one-page letters, upload {len(data) / 1e6:.2f} MB -> {outcome} in {elapsed:.2f} s, "
        f"parts {stored / 1e6:.2f} MB ({stored / len(data):.2f}x the upload); copying the shared dictionary "
        f"into every part would store {unpruned / 1e9:.2f} GB ({unpruned / len(data):.0f}x)"
    )


def real_world(service: SplitService, store: MemoryStore, folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    outcomes: Counter[str] = Counter()
    slowest: list[tuple[float, str]] = []
    active: Counter[str] = Counter()
    started = time.perf_counter()
    for path in files:
        outcome, elapsed, payload = split(service, store, path.name, path.read_bytes())
        outcomes[outcome] += 1
        slowest.append((elapsed, path.name))
        if isinstance(payload, DocumentSplit):
            for warning in payload.warnings:
                if warning.startswith("Aktive Inhalte entfernt"):
                    active["documents with active content removed"] += 1
            for part in payload.parts[:1]:
                with pikepdf.open(io.BytesIO(store.get(part.storage_key))) as part_pdf:
                    assert len(part_pdf.pages) >= 1
        if "/" in outcome:  # a budget, a crash, nesting or an internal error: worth a look
            print(f"  {outcome}: {path.name} ({elapsed:.1f} s): {getattr(payload, 'reason', '')[:160]}")
        for key in store.list("accounts/bench/"):  # keep the in-memory store small over a big corpus
            store.delete(key)
    total = time.perf_counter() - started
    print(f"real-world corpus {folder}: {len(files)} PDFs in {total:.1f} s")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:<32} {count}")
    for label, count in active.items():
        print(f"  {label}: {count}")
    print("  slowest: " + ", ".join(f"{name} {seconds:.2f} s" for seconds, name in sorted(slowest)[-3:]))
