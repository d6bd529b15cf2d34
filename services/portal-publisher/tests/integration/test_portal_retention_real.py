"""Retention over real servers: tansu (Kafka), SeaweedFS (S3) and SQLite, with the job's clock moved by years.

Two letters of one account are released through the broker: an invitation to the owners' meeting (3 years) and an
annual statement (10 years). Five years later the invitation is gone from the portal and from storage, with an audit
record, and the statement stays.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.retention import retention_audit
from smartpost_portal_publisher.settings import Settings
from smartpost_shared.contracts.common import DocumentType
from smartpost_shared.messaging import EventPublisher
from smartpost_shared.testing.identity import caller_headers

pytestmark = [pytest.mark.real]


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def released(scenario, doc_type: DocumentType, contacts: list[str]):
    envelope = scenario.release([scenario.item(i, c) for i, c in enumerate(contacts)])
    payload = envelope.payload.model_copy(update={"document_type": doc_type})
    return envelope.model_copy(update={"payload": payload})


def test_documents_past_retention_leave_portal_and_storage_audited(
    sqlite_url, kafka_settings, storage_settings, object_store, scenario, make_pdf, make_id
):
    statement = type(scenario)(account_id=scenario.account_id, document_id="doc-statement")
    invitation = type(scenario)(account_id=scenario.account_id, document_id="doc-invitation")
    for s in (statement, invitation):
        for index in range(2):
            object_store.put(s.key(index), make_pdf(f"{s.letter_id} {index}"), content_type="application/pdf")
    settings = Settings(
        database_url=sqlite_url,
        kafka=kafka_settings,
        storage=storage_settings,
        consumer_group=make_id("portal"),
        download_link_secret=SecretStr("integration-secret"),
        relay_poll_seconds=0.05,
        log_json=False,
    )
    app = create_app(settings)
    headers = caller_headers(scenario.account_id, audience="portal-publisher")
    with TestClient(app) as client:
        publisher = EventPublisher(app.state.broker)
        for envelope in [
            *scenario.masterdata(),
            released(statement, DocumentType(id="dt-ja", path=["Abrechnungen", "Jahresabrechnung"]), ["c-anna"]),
            released(
                invitation,
                DocumentType(id="dt-ev", path=["Versammlungen", "Einladung Eigentümerversammlung"]),
                ["c-anna", "c-bert"],
            ),
        ]:
            client.portal.call(publisher.publish, envelope)

        def deliveries(s):
            r = client.get(f"/internal/letters/{s.letter_id}/deliveries", headers=headers)
            assert r.status_code == 200, r.text
            return r.json()

        wait_for(lambda: len(deliveries(statement)) == 1 and len(deliveries(invitation)) == 2, "both published")

        job = app.state.retention_job
        # Today nothing is due (the job also ran at start-up with the real clock).
        assert job.run_once().documents_deleted == 0
        now = datetime.now(UTC)
        job.clock = lambda: now + timedelta(days=5 * 366)
        result = job.run_once()
        # The job's counts cover every account: on the shared broker the service also consumed other tests'
        # releases (faster since letters.events is consumed in batches). This account's share: the audit below.
        assert result.documents_deleted >= 2
        assert result.objects_deleted >= 2

        assert deliveries(invitation) == []
        assert not object_store.exists(invitation.key(0))
        assert not object_store.exists(invitation.key(1))
        assert len(deliveries(statement)) == 1
        assert object_store.exists(statement.key(0))

        with app.state.retention_job.engine.connect() as conn:
            audit = (
                conn.execute(select(retention_audit).where(retention_audit.c.account_id == scenario.account_id))
                .mappings()
                .all()
            )
        assert len(audit) == 1
        record = audit[0]
        assert record["actor"] == "system:retention"
        assert record["letter_id"] == invitation.letter_id
        assert record["retention_years"] == 3
        assert record["retention_ended"] == f"{scenario.today.year + 3}-12-31"
        assert (record["documents_deleted"], record["objects_deleted"]) == (2, 2)

        # Idempotent: a second run finds nothing more; eleven years on, the statement goes too.
        assert job.run_once().documents_deleted == 0
        job.clock = lambda: now + timedelta(days=11 * 366)
        assert job.run_once().documents_deleted >= 1  # other accounts' documents may be due too (shared broker)
        assert deliveries(statement) == []
        assert not object_store.exists(statement.key(0))
