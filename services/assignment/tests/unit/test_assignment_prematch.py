"""Matching ahead from SplitProgress: the DocumentSplit's result is exactly that of a match of the whole document.

A prematch is re-used only for an identical part, the same letter and master-data revision, and the same
letterhead decision for the part's own lines (known for sure only when every part is there).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from smartpost_assignment.adapters.db import create_tables
from smartpost_assignment.application import AssignmentService, import_envelopes
from smartpost_assignment.domain.importing import parse_masterdata
from smartpost_shared.contracts.common import SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, SplitPart, SplitProgress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.db import create_platform_tables, make_engine, pending_outbox
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.messaging import SqlIdempotency

from .test_assignment_application import ACCOUNT, EXAMPLE, letter

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from smartpost_shared.contracts.envelope import Envelope

LETTERHEAD = "Hausverwaltung Muster · Jahresabrechnung 2024"
WINDOWS = [
    ["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"],
    ["Frau Anna Schmidt", "Gartenweg 3", "14467 Potsdam"],
    ["Meyer Immobilien GmbH", "z. Hd. Frau Petra Meyer", "Hauptstraße 1", "80331 München"],
    ["Herrn Hans Mueller", "Lindenstr. 12", "10115 Berlin"],
]


def _part(n: int, *, property_line: bool) -> SplitPart:
    lines = [LETTERHEAD, "Objekt WEG Lindenstraße 12"] if property_line else [LETTERHEAD, f"Rechnung {n}"]
    return SplitPart(
        part_id=f"D1-{n:05d}",
        index=n,
        first_page=2 * n + 1,
        last_page=2 * n + 2,
        page_count=2,
        storage_key=f"k/{n}",
        sha256=hashlib.sha256(str(n).encode()).hexdigest(),
        size_bytes=1,
        address_lines=WINDOWS[n % len(WINDOWS)],
        context_lines=lines,
    )


# The first three letters name the property in a line of their own: while only they are known, that line is on
# every letter so far (letterhead); among all eight it is not. Those three must be matched again at the end.
PARTS = [_part(n, property_line=n < 3) for n in range(8)]


def _engine(tmp_path: Path, name: str) -> tuple[Engine, AssignmentService, SqlIdempotency]:
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    create_tables(engine)
    service = AssignmentService()
    idem = SqlIdempotency(engine, "assignment")
    result = parse_masterdata(EXAMPLE.read_bytes(), filename="masterdata.csv")
    for envelope in import_envelopes(result.events, account_id=ACCOUNT, import_id="x"):
        idem.run_once(service.on_masterdata, envelope)
    idem.run_once(service.on_letter_created, letter())
    return engine, service, idem


def _progress(batch: int, parts: list[SplitPart]) -> Envelope:
    return make_envelope(
        SplitProgress(letter_id="L1", document_id="D1", source_key="s", batch=batch, parts=parts),
        account_id=ACCOUNT,
        producer="splitter",
    )


SPLIT = make_envelope(
    DocumentSplit(
        letter_id="L1",
        document_id="D1",
        source_key="s",
        strategy=SplitStrategy.ADDRESS_BLOCK,
        source_page_count=16,
        parts=PARTS,
    ),
    account_id=ACCOUNT,
    producer="splitter",
)


def _prematch(engine: Engine, service: AssignmentService, envelope: Envelope) -> int:
    with engine.begin() as conn:
        job = service.prematch_job(conn, envelope)
    assert job is not None
    return service.prematch(job)


def _assigned(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        bodies = [json.loads(r["body"]) for r in pending_outbox(conn)]
    (event,) = [b for b in bodies if b["event_type"] == "PagesAssigned"]
    payload: dict[str, Any] = event["payload"]
    return payload


def test_prematched_parts_give_exactly_the_result_of_a_whole_document_match(tmp_path: Path) -> None:
    engine, service, idem = _engine(tmp_path, "ahead.sqlite3")
    assert _prematch(engine, service, _progress(0, PARTS[:3])) == 3
    assert _prematch(engine, service, _progress(1, PARTS[3:6])) == 3
    assert _prematch(engine, service, _progress(1, PARTS[3:6])) == 0  # a re-delivered announcement
    prematches = service._prematches[(ACCOUNT, "L1", "D1")]
    assert idem.run_once(service.on_document_split, SPLIT)
    # Parts 3-5 were re-used; 0-2 (their property line counted as letterhead then) and 6-7 were matched now.
    assert prematches.reused == 3
    assert service._prematches == {}

    plain_engine, plain, plain_idem = _engine(tmp_path, "plain.sqlite3")
    assert plain_idem.run_once(plain.on_document_split, SPLIT)
    assert _assigned(engine) == _assigned(plain_engine)
    statuses = {a["part_id"]: (a["status"], a["contact_id"]) for a in _assigned(engine)["assignments"]}
    assert statuses["D1-00000"] == ("assigned", "C-1001")
    assert statuses["D1-00001"] == ("assigned", "C-1002")


def test_master_data_changed_since_the_prematch_means_everything_is_matched_again(tmp_path: Path) -> None:
    engine, service, idem = _engine(tmp_path, "changed.sqlite3")
    _prematch(engine, service, _progress(0, PARTS[:4]))
    prematches = service._prematches[(ACCOUNT, "L1", "D1")]
    # Anna Schmidt moves: the account's revision changes between the announcement and the split's end.
    moved = ContactUpserted(
        contact_id="C-1002",
        reference_id="K-004712",
        salutation="Frau",
        first_name="Anna",
        last_name="Schmidt",
        street="Neue Straße 9",
        postal_code="14469",
        city="Potsdam",
    )
    idem.run_once(service.on_masterdata, make_envelope(moved, account_id=ACCOUNT, producer="erp"))
    assert idem.run_once(service.on_document_split, SPLIT)
    assert prematches.reused == 0

    plain_engine, plain, plain_idem = _engine(tmp_path, "changed-plain.sqlite3")
    plain_idem.run_once(plain.on_masterdata, make_envelope(moved, account_id=ACCOUNT, producer="erp"))
    assert plain_idem.run_once(plain.on_document_split, SPLIT)
    assert _assigned(engine) == _assigned(plain_engine)


def test_an_announcement_for_an_unknown_letter_is_left_alone(tmp_path: Path) -> None:
    engine, service, _ = _engine(tmp_path, "unknown.sqlite3")
    stray = make_envelope(
        SplitProgress(letter_id="L-unknown", document_id="D9", source_key="s", batch=0, parts=PARTS[:2]),
        account_id=ACCOUNT,
        producer="splitter",
    )
    with engine.begin() as conn:
        assert service.prematch_job(conn, stray) is None
    assert service._prematches == {}
