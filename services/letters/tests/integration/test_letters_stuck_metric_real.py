"""``smartpost_letters_stuck{waiting_for}`` on the letters service's ``/metrics``, over real tansu and SeaweedFS."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from letters_testkit import tiny_pdf
from prometheus_client.parser import text_string_to_metric_families

from smartpost_letters.app import create_app
from smartpost_letters.metrics import StuckLetterSource
from smartpost_letters.settings import Settings
from smartpost_shared.testing.identity import caller_headers

pytestmark = [pytest.mark.real]


def gauge(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels["waiting_for"]] = s.value
    return out


async def test_a_letter_waiting_for_the_splitter_is_counted_as_stuck(
    tmp_path, sqlite_url, kafka_settings, storage_settings, make_id
):
    settings = Settings(
        data_dir=str(tmp_path),
        database_url=sqlite_url,
        kafka=kafka_settings,
        storage=storage_settings,
        log_json=False,
        relay_poll_seconds=0.1,
        consumer_group=f"smartpost-letters-{uuid.uuid4().hex[:8]}",
        stuck_after_seconds=0.5,
    )
    app = create_app(settings)
    account = make_id("acc")
    headers = caller_headers(account, "staff:anna", audience="letters", roles=["prepare", "release"])
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://letters") as client,
    ):
        before = (await client.get("/metrics")).text
        assert gauge(before, "smartpost_letters_stuck") == {"splitter": 0, "assignment": 0, "print-dispatch": 0}

        dt = (await client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=headers)).json()
        r = await client.post(
            "/v1/letters",
            json={
                "title": "Heizkosten",
                "document_type_id": dt["created_id"],
                "recipient_groups": ["tenants"],
                "scope": "cross_property",
            },
            headers=headers,
        )
        lid = r.json()["letter_id"]
        r = await client.post(
            f"/v1/letters/{lid}/documents",
            files={"file": ("a.pdf", tiny_pdf(2), "application/pdf")},
            data={"role": "split"},
            headers=headers,
        )
        assert r.status_code in (200, 201), r.text
        assert (await client.post(f"/v1/letters/{lid}/split", headers=headers)).status_code in (200, 202)
        # No splitter runs: the letter waits for it; after the threshold it is stuck, in the list and the gauge.
        deadline = asyncio.get_running_loop().time() + 20
        stuck: dict[str, float] = {}
        while asyncio.get_running_loop().time() < deadline:
            stuck = gauge((await client.get("/metrics")).text, "smartpost_letters_stuck")
            if stuck.get("splitter"):
                break
            await asyncio.sleep(0.3)
        listed = (await client.get("/v1/stuck-letters", headers=headers)).json()["letters"]
        assert [(s["letter_id"], s["waiting_for"]) for s in listed] == [(lid, "splitter")]
        assert stuck == {"splitter": 1, "assignment": 0, "print-dispatch": 0}
        oldest = gauge((await client.get("/metrics")).text, "smartpost_letters_stuck_oldest_seconds")
        assert oldest["splitter"] >= 0.5
        assert oldest["assignment"] == 0

        # Below the threshold it is waiting, not stuck.
        patient = StuckLetterSource(app.state.projector.engine, app.state.service, stuck_after_seconds=3600)
        families = {f.name: f for f in patient.collect()}
        assert {s.labels["waiting_for"]: s.value for s in families["smartpost_letters_stuck"].samples} == {
            "splitter": 0,
            "assignment": 0,
            "print-dispatch": 0,
        }
