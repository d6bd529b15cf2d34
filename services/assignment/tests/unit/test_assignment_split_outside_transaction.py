"""A DocumentSplit is matched before its write transaction, and stored in a short one, with the same result.

At 4,000 parts matching takes ~10 s: inside the transaction it held SQLite's write lock that long (the outbox
relay and lease renewals waited; the relay once lost its lease). Now other writers get through while it matches.
"""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from typing import TYPE_CHECKING, Any

from smartpost_assignment.consumers import assign_split
from smartpost_assignment.domain.matching import Matcher
from smartpost_shared.contracts.common import PostalAddress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.db import pending_outbox

from .test_assignment_application import letter, setup, split

if TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from sqlalchemy.engine import Engine

ACCOUNT = "demo"


def _assigned(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        bodies = [json.loads(r["body"]) for r in pending_outbox(conn)]
    return [b["payload"] for b in bodies if b["event_type"] == "PagesAssigned"]


def _database(engine: Engine) -> str:
    return str(engine.url.database)


def test_matching_happens_outside_the_write_transaction_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    engine, service, idem = setup(tmp_path / "a")
    idem.run_once(service.on_letter_created, letter())
    writable: list[bool] = []
    probed = [_database(engine)]  # the database whose write lock the probe tries
    original = Matcher.assign

    def assign_and_probe(self: Matcher, part: Any) -> Any:
        other = sqlite3.connect(probed[0], timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writable.append(True)
        except sqlite3.OperationalError:  # "database is locked"
            writable.append(False)
        finally:
            other.close()
        return original(self, part)

    monkeypatch.setattr(Matcher, "assign", assign_and_probe)
    event = split()
    assert assign_split(service, idem, event)
    assert writable == [True, True]  # every part matched while another writer could write

    # The same event matched the old way (inside the transaction) gives the same PagesAssigned; the probe shows
    # what the old way did to other writers.
    plain_engine, plain, plain_idem = setup(tmp_path / "b")
    plain_idem.run_once(plain.on_letter_created, letter())
    writable.clear()
    probed[0] = _database(plain_engine)
    assert plain_idem.run_once(plain.on_document_split, event)
    assert writable == [False, False]
    assert _assigned(engine) == _assigned(plain_engine)

    # A redelivery is skipped before any matching.
    writable.clear()
    probed[0] = _database(engine)
    assert not assign_split(service, idem, event)
    assert writable == []
    assert len(_assigned(engine)) == 1


def test_master_data_changed_between_matching_and_storing_means_matching_again(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    moved = ContactUpserted(
        contact_id="C-1002",
        reference_id="K-004712",
        salutation="Frau",
        first_name="Anna",
        last_name="Schmidt",
        address=PostalAddress(street="Neue Straße 9", postal_code="14469", city="Potsdam"),
    )
    change = make_envelope(moved, account_id=ACCOUNT, producer="erp")
    event = split()

    engine, service, idem = setup(tmp_path / "a")
    idem.run_once(service.on_letter_created, letter())
    with engine.begin() as conn:
        inputs = service.prepare_document(conn, event)
    assert inputs is not None
    prepared = service.match_prepared(event, *inputs)
    idem.run_once(service.on_masterdata, change)  # arrives while the split was being matched
    assert idem.run_once(partial(service.on_document_split, prepared=prepared), event, None)

    plain_engine, plain, plain_idem = setup(tmp_path / "b")
    plain_idem.run_once(plain.on_letter_created, letter())
    plain_idem.run_once(plain.on_masterdata, change)
    assert plain_idem.run_once(plain.on_document_split, event)
    assert _assigned(engine) == _assigned(plain_engine)
    stale = prepared.assignments["p1"]
    assert stale.evidence != next(a for a in _assigned(engine)[0]["assignments"] if a["part_id"] == "p1")["evidence"]


def test_a_split_before_its_letter_is_still_parked(tmp_path: Path) -> None:
    engine, service, idem = setup(tmp_path)
    assert assign_split(service, idem, split())
    assert _assigned(engine) == []
    idem.run_once(service.on_letter_created, letter())
    assert len(_assigned(engine)) == 1
