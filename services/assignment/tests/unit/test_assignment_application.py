"""Use cases on a real SQLite file (no servers): parking splits, corrections, re-matching, import atomicity."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smartpost_assignment.adapters.db import AssignmentStore, create_tables
from smartpost_assignment.application import AssignmentService, import_envelopes, letter_view
from smartpost_assignment.domain.importing import parse_masterdata
from smartpost_assignment.domain.warnings import document_warnings
from smartpost_shared.contracts.base import EventPayload
from smartpost_shared.contracts.common import ContractRole, DocumentType, LetterScope, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, SplitPart
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import AssignmentCorrected, CorrectionAction, LetterCreated
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted
from smartpost_shared.db import create_platform_tables, make_engine, outbox, pending_outbox
from smartpost_shared.masterdata import MasterDataReader, create_masterdata_tables
from smartpost_shared.messaging import SqlIdempotency


def part(lines: list[str], ids: list[str] = (), pid: str = "p-0") -> SplitPart:  # type: ignore[assignment]
    return SplitPart(
        part_id=pid,
        index=int(pid[1:]),
        first_page=1,
        last_page=2,
        page_count=2,
        storage_key="k",
        sha256=hashlib.sha256(pid.encode()).hexdigest(),
        size_bytes=1,
        address_lines=lines,
        identifiers=list(ids),
    )


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "masterdata.csv"
ACCOUNT = "demo"


def setup(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    create_tables(engine)
    service = AssignmentService()
    idem = SqlIdempotency(engine, "assignment")
    result = parse_masterdata(EXAMPLE.read_bytes(), filename="masterdata.csv")
    for envelope in import_envelopes(result.events, account_id=ACCOUNT, import_id="x"):
        idem.run_once(service.on_masterdata, envelope)
    return engine, service, idem


def published(engine) -> list[dict]:
    with engine.connect() as conn:
        return [json.loads(r["body"]) for r in pending_outbox(conn)]


def letter(letter_id: str = "L1"):
    return make_envelope(
        LetterCreated(
            letter_id=letter_id,
            title="Abrechnung",
            document_type=DocumentType(id="d", path=["Abrechnungen"]),
            recipient_groups=["owners"],
            scope=LetterScope.PROPERTY,
            property_id="P-0815",
            letter_date=date(2025, 3, 1),
            created_by="staff",
        ),
        account_id=ACCOUNT,
        producer="letters",
    )


def split(letter_id: str = "L1"):
    parts = [
        part(["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"], ["K-004711"], pid="p0"),
        part(["Frau Anna Schmidt", "Gartenweg 3", "14467 Potsdam"], pid="p1"),
    ]
    return make_envelope(
        DocumentSplit(
            letter_id=letter_id,
            document_id="D1",
            source_key="s",
            strategy=SplitStrategy.ADDRESS_BLOCK,
            source_page_count=4,
            parts=parts,
        ),
        account_id=ACCOUNT,
        producer="splitter",
    )


def test_split_before_letter_is_parked_then_matched_once(tmp_path: Path) -> None:
    engine, service, idem = setup(tmp_path)
    split_event = split()
    assert idem.run_once(service.on_document_split, split_event)
    assert published(engine) == []
    idem.run_once(service.on_letter_created, letter())
    events = published(engine)
    assert [e["event_type"] for e in events] == ["PagesAssigned"]
    assert events[0]["causation_id"] == str(split_event.event_id)
    assignments = {a["part_id"]: a for a in events[0]["payload"]["assignments"]}
    assert assignments["p0"]["contact_id"] == "C-1001"
    assert assignments["p0"]["unit_id"] == "U-0815-01"
    assert assignments["p1"]["contact_id"] == "C-1002"
    # Redelivery changes nothing.
    assert not idem.run_once(service.on_document_split, split_event)
    assert len(published(engine)) == 1
    codes = {w["code"] for w in events[0]["payload"]["warnings"]}
    # Meyer Immobilien owns WE 03 but got no letter; Schmidt prefers post and has an address (no warning).
    assert "contact_without_part" in codes


def test_correction_is_re_emitted_and_survives_rematch(tmp_path: Path) -> None:
    engine, service, idem = setup(tmp_path)
    idem.run_once(service.on_letter_created, letter())
    idem.run_once(service.on_document_split, split())
    correction = make_envelope(
        AssignmentCorrected(
            letter_id="L1",
            document_id="D1",
            part_id="p1",
            action=CorrectionAction.REASSIGN,
            contact_id="C-1003",
            actor="staff@hv",
        ),
        account_id=ACCOUNT,
        producer="letters",
    )
    idem.run_once(service.on_assignment_corrected, correction)
    corrected = published(engine)[-1]["payload"]
    assert corrected["is_correction"] is True
    (only,) = corrected["assignments"]
    assert (only["contact_id"], only["method"], only["unit_id"]) == ("C-1003", "manual", "U-0815-03")
    # The echo is slim: only the corrected part's warnings, not the document's (e.g. contact_without_part).
    assert all(w["part_id"] == "p1" for w in corrected["warnings"])
    first = published(engine)[0]["payload"]
    assert any(w["part_id"] != "p1" for w in first["warnings"])
    with engine.begin() as conn:
        service.rematch_letter(conn, ACCOUNT, "L1", "staff@hv")
    with engine.connect() as conn:
        view = letter_view(conn, ACCOUNT, "L1")
        assert letter_view(conn, "other-account", "L1") is None
    assert view is not None
    parts = {p["part_id"]: p for p in view["documents"][0]["parts"]}
    assert parts["p1"]["contact_id"] == "C-1003"
    assert parts["p1"]["confirmed"] is True
    assert parts["p0"]["method"] == "auto"


def test_invalid_import_queues_nothing_valid_import_queues_everything(tmp_path: Path) -> None:
    engine, service, _ = setup(tmp_path)
    bad = EXAMPLE.read_bytes() + b"contract,P-0815,,,,,,U-unknown,,,C-1001,,,,,,,,,,,,V-9,owner,2020-01-01,,\n"
    with engine.begin() as conn:
        result, _ = service.import_masterdata(conn, ACCOUNT, bad, "m.csv", "staff")
    assert not result.ok
    assert [e.row for e in result.errors] == ["line 14"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
    with engine.begin() as conn:
        result, _ = service.import_masterdata(conn, ACCOUNT, EXAMPLE.read_bytes(), "m.csv", "staff")
    assert result.ok
    types = [e["event_type"] for e in published(engine)]
    assert types.count("ContactUpserted") == 4
    assert types.count("ContractUpserted") == 4
    with engine.connect() as conn:
        assert len(MasterDataReader(conn).contacts(ACCOUNT)) == 4  # applied earlier through the consumer path


def test_import_status_counts_queued_published_and_applied_events(tmp_path: Path) -> None:
    from smartpost_assignment.adapters.imports import import_status
    from smartpost_shared.contracts.envelope import parse_envelope
    from smartpost_shared.db import mark_published

    engine = make_engine(f"sqlite:///{tmp_path / 'i.sqlite3'}")
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    create_tables(engine)
    service = AssignmentService()
    with engine.begin() as conn:
        result, import_id = service.import_masterdata(conn, ACCOUNT, EXAMPLE.read_bytes(), "m.csv", "staff")
    total = sum(result.counts.values())

    def status() -> dict:
        with engine.connect() as conn:
            found = import_status(conn, account_id=ACCOUNT, import_id=import_id, consumer="assignment")
        assert found is not None
        return found

    assert (status()["total"], status()["published"], status()["applied"], status()["stage"]) == (
        total,
        0,
        0,
        "publishing",
    )
    assert status()["status"] == "received"
    rows = published(engine)
    with engine.begin() as conn:
        mark_published(conn, list(range(1, len(rows) + 1)))
    assert status()["stage"] == "applying"
    idem = SqlIdempotency(engine, "assignment")
    half = len(rows) // 2
    idem.run_batch(
        dict.fromkeys({r["event_type"] for r in rows}, service.on_masterdata), [parse_envelope(r) for r in rows[:half]]
    )
    assert status()["applied"] == half
    for row in rows[half:]:
        idem.run_once(service.on_masterdata, parse_envelope(row))
    assert (status()["applied"], status()["status"], status()["stage"]) == (total, "applied", "applied")
    with engine.begin() as conn:  # the same file again is the same import
        service.import_masterdata(conn, ACCOUNT, EXAMPLE.read_bytes(), "m.csv", "staff")
    assert status()["total"] == total
    with engine.connect() as conn:
        assert import_status(conn, account_id="other", import_id=import_id, consumer="assignment") is None


def test_corrections_reuse_the_account_snapshot_until_master_data_changes(tmp_path: Path) -> None:
    engine, service, idem = setup(tmp_path)
    idem.run_once(service.on_letter_created, letter())
    idem.run_once(service.on_document_split, split())
    loads = service.snapshot_loads

    def correct(part_id: str, contact_id: str) -> None:
        idem.run_once(
            service.on_assignment_corrected,
            make_envelope(
                AssignmentCorrected(
                    letter_id="L1",
                    document_id="D1",
                    part_id=part_id,
                    action=CorrectionAction.REASSIGN,
                    contact_id=contact_id,
                    actor="staff@hv",
                ),
                account_id=ACCOUNT,
                producer="letters",
            ),
        )

    correct("p0", "C-1003")
    correct("p1", "C-1001")
    assert service.snapshot_loads == loads  # no reload of the account per correction
    from smartpost_shared.contracts.masterdata import ContactUpserted

    idem.run_once(
        service.on_masterdata,
        make_envelope(
            ContactUpserted(contact_id="C-2000", last_name="Neu", first_name="Nora"), account_id=ACCOUNT, producer="erp"
        ),
    )
    correct("p1", "C-2000")  # the new contact is known at once: the snapshot was reloaded
    assert service.snapshot_loads == loads + 1
    assert published(engine)[-1]["payload"]["assignments"][0]["contact_id"] == "C-2000"


def test_billing_period_of_the_letter_is_kept_and_decides_validity(tmp_path: Path) -> None:
    # Meyer Immobilien's contract for WE 03 ended 30.06.2025. A letter dated 01.09.2025 reaches Meyer only when
    # its billing period (2025) overlaps the contract; the period survives a restart (stored with the letter).
    engine, service, idem = setup(tmp_path)
    base = letter().payload
    assert isinstance(base, LetterCreated)
    meyer = part(["Meyer Immobilien GmbH", "Hauptstraße 1", "80331 München"], ["K-004713"], pid="p0")
    for letter_id, period in (("L-date", None), ("L-period", (date(2025, 1, 1), date(2025, 12, 31)))):
        payload = base.model_copy(
            update={
                "letter_id": letter_id,
                "letter_date": date(2025, 9, 1),
                "period_start": period[0] if period else None,
                "period_end": period[1] if period else None,
            }
        )
        idem.run_once(service.on_letter_created, make_envelope(payload, account_id=ACCOUNT, producer="letters"))
        document = DocumentSplit(
            letter_id=letter_id, document_id="D1", source_key="s", strategy=SplitStrategy.ADDRESS_BLOCK,
            source_page_count=2, parts=[meyer],
        )  # fmt: skip
        idem.run_once(service.on_document_split, make_envelope(document, account_id=ACCOUNT, producer="splitter"))
    by_letter = {e["payload"]["letter_id"]: e["payload"] for e in published(engine)}
    at_date = by_letter["L-date"]["assignments"][0]
    in_period = by_letter["L-period"]["assignments"][0]
    assert at_date["status"] == "needs_review"
    assert (in_period["status"], in_period["contact_id"], in_period["unit_id"]) == ("assigned", "C-1003", "U-0815-03")
    assert "contract_ended" not in {w["code"] for w in by_letter["L-period"]["warnings"]}
    with engine.connect() as conn:
        stored = AssignmentStore(conn).letter(ACCOUNT, "L-period")
    assert stored is not None
    assert (stored.period_start, stored.period_end) == (date(2025, 1, 1), date(2025, 12, 31))


@pytest.mark.parametrize("scope", [LetterScope.PROPERTY, LetterScope.CROSS_PROPERTY])
def test_a_correction_updates_the_documents_warnings_as_a_full_recomputation_would(
    tmp_path: Path, scope: LetterScope
) -> None:
    """A correction recomputes only the warnings it can change; the stored result must equal the full computation."""
    engine, service, idem = setup(tmp_path)
    created = LetterCreated(
        letter_id="L1",
        title="Abrechnung",
        document_type=DocumentType(id="d", path=["Abrechnungen"]),
        recipient_groups=["owners"],
        scope=scope,
        property_id="P-0815" if scope is LetterScope.PROPERTY else None,
        letter_date=date(2025, 9, 1),  # after C-1003's contract ended: a contract warning when assigned to them
        created_by="staff",
    )
    idem.run_once(service.on_letter_created, make_envelope(created, account_id=ACCOUNT, producer="letters"))
    parts = [
        part(["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"], ["K-004711"], pid="p0"),
        part(["Frau Anna Schmidt", "Gartenweg 3", "14467 Potsdam"], pid="p1"),
        part(["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"], ["K-004711"], pid="p2"),
        part(["Herrn Niemand Unbekannt", "Irgendwo 9", "99999 Nirgends"], pid="p3"),
        part(["Frau Lea Yilmaz", "Lindenstraße 12", "10115 Berlin"], pid="p4"),
    ]
    parts[4] = parts[4].model_copy(update={"page_count": 9, "last_page": 9})  # unusual page count, never changes
    split_event = make_envelope(
        DocumentSplit(
            letter_id="L1",
            document_id="D1",
            source_key="s",
            strategy=SplitStrategy.ADDRESS_BLOCK,
            source_page_count=17,
            parts=parts,
        ),
        account_id=ACCOUNT,
        producer="splitter",
    )
    idem.run_once(service.on_document_split, split_event)
    # Master data changes between corrections: the other parts' contract and channel warnings must follow it.
    extended = ContractUpserted(
        contract_id="V-3",
        contact_id="C-1003",
        unit_id="U-0815-03",
        property_id="P-0815",
        role=ContractRole.OWNER,
        start=date(2015, 5, 1),
    )
    ended = extended.model_copy(update={"end": date(2025, 6, 30)})
    no_email = ContactUpserted(contact_id="C-1001", last_name="Müller", first_name="Hans")  # online, no e-mail
    steps: list[tuple[str, CorrectionAction | None, str | None] | EventPayload] = [
        ("p1", CorrectionAction.REASSIGN, "C-1001"),  # a third letter for Müller's unit
        ("p0", CorrectionAction.UNASSIGN, None),
        ("p3", CorrectionAction.REASSIGN, "C-1003"),  # contract ended before the letter date
        extended,  # now it has not: the stored contract_ended warning of p3 must go at the next correction
        ("p2", CorrectionAction.DISCARD, None),
        ended,
        no_email,  # Müller wants online delivery and has no address any more
        ("p1", CorrectionAction.REASSIGN, "C-1002"),
        ("p4", CorrectionAction.REASSIGN, "C-1003"),
        ("p3", CorrectionAction.UNASSIGN, None),
        ("p0", CorrectionAction.REASSIGN, "C-1001"),
    ]
    seen_codes: set[str] = set()
    for step in steps:
        if isinstance(step, EventPayload):
            idem.run_once(service.on_masterdata, make_envelope(step, account_id=ACCOUNT, producer="erp"))
            continue
        part_id, action, contact = step
        assert action is not None
        correction = AssignmentCorrected(
            letter_id="L1", document_id="D1", part_id=part_id, action=action, contact_id=contact, actor="staff@hv"
        )
        idem.run_once(
            service.on_assignment_corrected, make_envelope(correction, account_id=ACCOUNT, producer="letters")
        )
        with engine.connect() as conn:
            store = AssignmentStore(conn)
            context = store.letter(ACCOUNT, "L1")
            assert context is not None
            stored = store.document(ACCOUNT, "L1", "D1")
            assert stored is not None
            assignments = [p.assignment for p in store.parts(ACCOUNT, "L1", "D1").values()]
            full = document_warnings(
                MasterDataReader(conn).snapshot(ACCOUNT), context, {p.part_id: p.page_count for p in parts}, assignments
            )
        as_json = sorted(json.dumps(w.model_dump(mode="json"), sort_keys=True) for w in stored.warnings)
        assert as_json == sorted(json.dumps(w.model_dump(mode="json"), sort_keys=True) for w in full), (part_id, action)
        seen_codes |= {w.code for w in full}
        echo = published(engine)[-1]["payload"]
        assert sorted(json.dumps(w, sort_keys=True) for w in echo["warnings"]) == sorted(
            json.dumps(w.model_dump(mode="json"), sort_keys=True) for w in full if w.part_id == part_id
        )
    # The sequence exercised the warnings a correction can change (and one it cannot).
    assert {"duplicate_assignment", "contract_ended", "part_needs_review", "unusual_page_count", "missing_email"} <= (
        seen_codes
    )
    if scope is LetterScope.PROPERTY:
        assert "contact_without_part" in seen_codes
