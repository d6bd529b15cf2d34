"""Review cost at the mission's size: one serial letter with N parts (default 4,000), over the real HTTP API.

Drives a letter to review through the service (split result and assignments as the splitter and the assignment
service report them, with three candidates per part), then times what staff and the pipeline do per correction:

- ``discard``: ``POST /parts/{id}/discard`` (command + save + response);
- ``echo``: the assignment service's echo of that correction (``PagesAssigned`` with ``is_correction``);
- ``confirm``: ``POST /review/confirm`` right after; then the echo of a correction made before it;
- ``read model``: the letter-list projector catching up after a correction;
- ``parts page``: ``GET /parts?filter=review&limit=50`` (one page of the review list);
- ``bulk``: each bulk action as one command (where the service has them).

Usage: ``.venv/bin/python services/letters/benchmarks/bench_review.py [--parts 4000] [--sqlite|--postgres URL]``.
Prints a table; numbers are wall-clock seconds (median of ``--repeat`` runs where it says so).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from letters_testkit import make_parts, tiny_pdf

from smartpost_letters.app import create_app
from smartpost_letters.settings import Settings
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    AssignmentWarning,
    Candidate,
    PartAssignment,
)
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers, install

ACCOUNT = "acc-bench"


def headers(command: str | None = None) -> dict[str, str]:
    h = caller_headers(ACCOUNT, "staff:anna", audience="letters", roles=["prepare", "release"])
    if command:
        h["X-SmartPost-Command-Id"] = command
    return h


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def proposals(parts: list[Any]) -> tuple[list[PartAssignment], list[AssignmentWarning]]:
    out: list[PartAssignment] = []
    warnings: list[AssignmentWarning] = []
    for i, p in enumerate(parts):
        kind = i % 10
        status = AssignmentStatus.ASSIGNED if kind < 7 else AssignmentStatus.NEEDS_REVIEW
        if kind == 9:
            status = AssignmentStatus.UNMATCHED
        candidates = [
            Candidate(
                contact_id=f"C-{i:05d}-{k}",
                score=12.0 - 3 * k,
                property_id=f"P-{i % 240:03d}",
                unit_id=f"U-{i:05d}",
                evidence=["Name im Anschriftenfeld", "Straße und Hausnummer", "Postleitzahl und Ort"],
            )
            for k in range(3 if status != AssignmentStatus.UNMATCHED else 0)
        ]
        out.append(
            PartAssignment(
                part_id=p.part_id,
                status=status,
                contact_id=f"C-{i:05d}-0" if status != AssignmentStatus.UNMATCHED else None,
                property_id=f"P-{i % 240:03d}" if status != AssignmentStatus.UNMATCHED else None,
                unit_id=f"U-{i:05d}" if status == AssignmentStatus.ASSIGNED else None,
                method=AssignmentMethod.AUTO,
                score=12.0 if status == AssignmentStatus.ASSIGNED else 6.0,
                evidence=["Name im Anschriftenfeld", "Straße und Hausnummer"],
                candidates=candidates,
            )
        )
        if status != AssignmentStatus.ASSIGNED:
            warnings.append(
                AssignmentWarning(
                    code="needs_review" if status == AssignmentStatus.NEEDS_REVIEW else "unmatched",
                    message="Brief bitte prüfen",
                    part_id=p.part_id,
                )
            )
    return out, warnings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="postgresql://app:app@127.0.0.1:5432/<db> (must exist)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-review-")
    install()  # the test suite's caller and event keys: this process stands in for the gateway and the services
    settings = Settings(
        data_dir=tmp, log_json=False, log_level="WARNING", database_url=args.postgres, local_development=True
    )
    app = create_app(settings, store=MemoryStore())
    client = TestClient(app)
    service = app.state.service
    rows: list[tuple[str, str]] = []

    dt = client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=headers()).json()["created_id"]
    body = {"title": "Jahresabrechnung 2025", "document_type_id": dt, "recipient_groups": ["owners"]}
    letter = client.post("/v1/letters", json={**body, "scope": "cross_property"}, headers=headers()).json()
    lid = letter["letter_id"]
    pdf = tiny_pdf()
    client.post(
        f"/v1/letters/{lid}/documents",
        files={"file": ("brief.pdf", pdf, "application/pdf")},
        data={"role": "split", "rule": '{"strategy": "address_block"}'},
        headers=headers(),
    )
    doc_id = client.post(f"/v1/letters/{lid}/split", headers=headers()).json()["documents"][0]["document_id"]
    letter_uuid = uuid.UUID(lid)
    parts = make_parts(ACCOUNT, lid, doc_id, args.parts, thumbnail_pack=True)
    seconds, _ = timed(
        lambda: service.record_split(
            ACCOUNT,
            letter_uuid,
            inbound_event_id=str(uuid.uuid4()),
            document_id=doc_id,
            source_page_count=args.parts * 2,
            parts=parts,
            warnings=[],
            actor="service:splitter",
        )
    )
    rows.append(("record split result", f"{seconds:.2f}"))
    assignments, warnings = proposals(parts)
    seconds, _ = timed(
        lambda: service.record_assignments(
            ACCOUNT,
            letter_uuid,
            inbound_event_id=str(uuid.uuid4()),
            document_id=doc_id,
            assignments=assignments,
            warnings=warnings,
            is_correction=False,
            actor="service:assignment",
        )
    )
    rows.append(("record assignments", f"{seconds:.2f}"))
    seconds, _ = timed(app.state.projector.catch_up)
    rows.append(("read model catch-up (first)", f"{seconds:.2f}"))

    review = [a for a in assignments if a.status != AssignmentStatus.ASSIGNED]
    discards, echoes, projections, reads = [], [], [], []
    for n in range(args.repeat):
        part = review[n]
        seconds, response = timed(
            lambda part=part: client.post(
                f"/v1/letters/{lid}/parts/{part.part_id}/discard?parts=none", headers=headers()
            )
        )
        assert response.status_code == 200, response.text
        discards.append((seconds, len(response.content)))
        echo = PartAssignment(
            part_id=part.part_id,
            status=AssignmentStatus.DISCARDED,
            method=AssignmentMethod.MANUAL,
            evidence=["von staff:anna verworfen"],
            candidates=part.candidates,
        )
        seconds, outcome = timed(
            lambda echo=echo: service.record_assignments(
                ACCOUNT,
                letter_uuid,
                inbound_event_id=str(uuid.uuid4()),
                document_id=doc_id,
                assignments=[echo],
                warnings=[],
                is_correction=True,
                actor="service:assignment",
            )
        )
        echoes.append((seconds, outcome.value))
        seconds, _ = timed(app.state.projector.catch_up)
        projections.append(seconds)
        seconds, response = timed(
            lambda: client.get(f"/v1/letters/{lid}/parts?filter=review&limit=50", headers=headers())
        )
        reads.append((seconds, response.status_code, len(response.content)))
    rows.append(
        (
            f"discard one part (median of {args.repeat}, response bytes)",
            f"{statistics.median(s for s, _ in discards):.3f} ({discards[-1][1]:,} B)",
        )
    )
    rows.append(
        (
            "assignment echo of that correction (outcome)",
            f"{statistics.median(s for s, _ in echoes):.3f} ({echoes[-1][1]})",
        )
    )
    rows.append(("read model after a correction", f"{statistics.median(projections):.3f}"))
    rows.append(
        (
            "one page of the review list (status, bytes)",
            f"{statistics.median(s for s, _, _ in reads):.3f} ({reads[-1][1]}, {reads[-1][2]:,} B)",
        )
    )
    seconds, response = timed(lambda: client.get(f"/v1/letters/{lid}", headers=headers()))
    rows.append(("GET whole letter (bytes)", f"{seconds:.3f} ({len(response.content):,} B)"))
    for name, path in (
        ("bulk: alle sicheren Vorschläge übernehmen", "review/accept-safe"),
        ("bulk: alle nicht zuordenbaren verwerfen", "review/discard-unmatched"),
    ):
        seconds, response = timed(
            lambda path=path: client.post(f"/v1/letters/{lid}/{path}?parts=none", headers=headers())
        )
        rows.append((f"{name} (status)", f"{seconds:.3f} ({response.status_code})"))
    seconds, response = timed(lambda: client.post(f"/v1/letters/{lid}/review/confirm?parts=none", headers=headers()))
    rows.append(("confirm review (status)", f"{seconds:.3f} ({response.status_code})"))
    seconds, response = timed(
        lambda: client.post(f"/v1/letters/{lid}/release?parts=none", json={"notify_by_email": True}, headers=headers())
    )
    rows.append(("release (status)", f"{seconds:.3f} ({response.status_code})"))
    events = service.app.recorder.max_notification_id() or 0
    store = Path(tmp) / "letters-events.sqlite3"
    size = sum(p.stat().st_size for p in Path(tmp).glob("letters-events.sqlite3*")) if store.exists() else 0
    rows.append(("event store (events, bytes)", f"{events} ({size:,} B)"))
    app.state.event_app.close()

    width = max(len(r[0]) for r in rows)
    print(f"letters review benchmark: {args.parts} parts, {'PostgreSQL' if args.postgres else 'SQLite'}")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
