"""Retention in the letters service: when a letter is due, and what the job records (SQLite, in-memory storage)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from letters_testkit import LetterBuilder, tiny_pdf

from smartpost_letters.app import create_app
from smartpost_letters.domain.errors import IllegalTransitionError
from smartpost_letters.domain.letter import Actor
from smartpost_letters.settings import Settings
from smartpost_shared.retention import is_due, retention_for
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers


def test_a_letter_is_due_after_its_document_types_period():
    letter = LetterBuilder().to_released().letter  # "Abrechnungen / Heizkosten", dated 2026-03-01
    retention = retention_for(letter.document_type.path)
    assert retention.years == 10
    assert not is_due(letter.letter_date, retention.years, date(2036, 12, 31))
    assert is_due(letter.letter_date, retention.years, date(2037, 1, 1))


def test_expiry_is_recorded_once_with_what_was_removed():
    builder = LetterBuilder().to_released()
    letter = builder.letter
    files = letter.stored_files()
    assert len(files) == 1 + 3 + 3  # the source, three parts, three thumbnails
    letter.expire_retention(
        retention_years=10,
        retention_source="default: abrechnung",
        retention_ended=date(2036, 12, 31),
        objects_deleted=len(files),
        actor=Actor("system:retention"),
    )
    assert letter.retention_expired_at is not None
    with pytest.raises(IllegalTransitionError):
        letter.expire_retention(
            retention_years=10,
            retention_source="x",
            retention_ended=date(2036, 12, 31),
            objects_deleted=0,
            actor=Actor("system:retention"),
        )


def test_the_job_removes_files_of_due_letters_only(tmp_path):
    """The job with an injected clock: the invitation (3 years) expires after 5 years, the statement (10) stays."""
    store = MemoryStore()
    app = create_app(Settings(data_dir=str(tmp_path), log_json=False), store=store)
    client = TestClient(app)
    h = caller_headers("acc-ret", "staff:anna", audience="letters", roles=["prepare", "release"])
    letters = {}
    for name in ("Einladung Eigentümerversammlung", "Jahresabrechnung"):
        dt = client.post("/v1/document-types", json={"name": name}, headers=h).json()["created_id"]
        body = {"title": name, "document_type_id": dt, "recipient_groups": ["owners"], "scope": "cross_property"}
        lid = client.post("/v1/letters", json=body, headers=h).json()["letter_id"]
        r = client.post(
            f"/v1/letters/{lid}/documents",
            files={"file": ("brief.pdf", tiny_pdf(1), "application/pdf")},
            data={"role": "split"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        letters[name] = (lid, r.json()["documents"][0]["source_key"])
    app.state.projector.catch_up()
    job = app.state.retention_job
    try:
        assert job.run_once().letters == 0
        now = datetime.now(UTC)
        job.clock = lambda: now + timedelta(days=5 * 366)
        assert (job.run_once().letters, job.run_once().letters) == (1, 0)  # the second run finds nothing new

        invitation, invitation_key = letters["Einladung Eigentümerversammlung"]
        statement, statement_key = letters["Jahresabrechnung"]
        assert not store.exists(invitation_key)
        assert store.exists(statement_key)
        assert client.get(f"/v1/letters/{invitation}", headers=h).json()["retention_expired_at"]
        assert client.get(f"/v1/letters/{statement}", headers=h).json()["retention_expired_at"] is None
        audit = client.get(f"/v1/letters/{invitation}/audit", headers=h).json()
        (entry,) = [e for e in audit["entries"] if e["action"] == "retention_expired"]
        assert entry["actor"] == "system:retention"
        assert entry["details"]["retention_years"] == 3
        assert entry["details"]["objects_deleted"] == 1
    finally:
        app.state.event_app.close()


def test_an_operator_override_lengthens_the_period(tmp_path):
    app = create_app(
        Settings(data_dir=str(tmp_path), log_json=False, retention_years={"Einladung Eigentümerversammlung": 8}),
        store=MemoryStore(),
    )
    client = TestClient(app)
    h = caller_headers("acc-ret2", "staff:anna", audience="letters", roles=["prepare", "release"])
    dt = client.post("/v1/document-types", json={"name": "Einladung Eigentümerversammlung"}, headers=h).json()
    body = {"title": "ETV", "document_type_id": dt["created_id"], "recipient_groups": ["owners"]}
    assert client.post("/v1/letters", json={**body, "scope": "cross_property"}, headers=h).status_code == 201
    app.state.projector.catch_up()
    job = app.state.retention_job
    try:
        now = datetime.now(UTC)
        job.clock = lambda: now + timedelta(days=5 * 366)
        assert job.run_once().letters == 0  # 8 years, not the default 3
        job.clock = lambda: now + timedelta(days=10 * 366)
        assert job.run_once().letters == 1
    finally:
        app.state.event_app.close()
