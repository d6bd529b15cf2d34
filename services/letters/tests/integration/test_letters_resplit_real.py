"""Issue #15 finding 1: a re-split after a failed split must not hang (letters + splitter + assignment, real tansu).

Staff upload two documents, the split of one fails, they remove it and split again. The splitter answers the
second request for the unchanged document with the same event id as the first time (same file, same rule); the
assignment service used to skip it as a duplicate and the letters service had dropped its first answer as stale,
so the letter stayed in "Wird zugeordnet" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import httpx
import pytest

from smartpost_assignment.app import create_app as create_assignment
from smartpost_assignment.settings import Settings as AssignmentSettings
from smartpost_letters.app import create_app as create_letters
from smartpost_letters.settings import Settings as LettersSettings
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.testing.identity import caller_headers
from smartpost_splitter.app import create_app as create_splitter
from smartpost_splitter.settings import Settings as SplitterSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = [pytest.mark.real]

TIMEOUT = 60.0


def h(account: str) -> dict[str, str]:
    return caller_headers(account, "staff:anna", audience="letters", roles=["prepare", "release"])


@contextlib.asynccontextmanager
async def three_services(tmp_path: Path, kafka_settings, storage_settings) -> AsyncIterator[httpx.AsyncClient]:
    common = {"kafka": kafka_settings, "storage": storage_settings, "log_json": False}
    letters = create_letters(
        LettersSettings(  # type: ignore[arg-type]
            data_dir=str(tmp_path / "letters"),
            relay_poll_seconds=0.1,
            consumer_group=f"{kafka_settings.group_prefix}-letters",
            **common,
        )
    )
    splitter = create_splitter(
        SplitterSettings(  # type: ignore[arg-type]
            data_dir=str(tmp_path / "splitter"),
            text_processes=1,
            work_dir=str(tmp_path),
            consumer_group=f"{kafka_settings.group_prefix}-splitter",
            **common,
        )
    )
    assignment = create_assignment(
        AssignmentSettings(data_dir=str(tmp_path / "assignment"), outbox_poll_seconds=0.1, **common)  # type: ignore[arg-type]
    )
    async with (
        letters.router.lifespan_context(letters),
        splitter.router.lifespan_context(splitter),
        assignment.router.lifespan_context(assignment),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=letters), base_url="http://letters") as client,
    ):
        yield client


async def wait_status(client: httpx.AsyncClient, account: str, lid: str, wanted: set[str]) -> dict:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    body: dict = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await client.get(f"/v1/letters/{lid}", headers=h(account))).json()
        if body["status"] in wanted:
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"letter stuck in {body.get('status')!r}, expected one of {sorted(wanted)}")


async def upload(client: httpx.AsyncClient, account: str, lid: str, name: str, data: bytes) -> dict:
    r = await client.post(
        f"/v1/letters/{lid}/documents",
        files={"file": (name, data, "application/pdf")},
        data={"role": "split"},
        headers=h(account),
    )
    assert r.status_code == 201, r.text
    return next(d for d in r.json()["documents"] if d["filename"] == name)


async def test_resplit_after_a_failed_split_reaches_the_review(
    tmp_path, kafka_settings, storage_settings, object_store, make_id
):
    account = make_id("acc")
    recipients = demo_recipients(3, seed=5)
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    write_serial_letter(good, recipients, seed=5, pages_per_letter=(1, 2))
    # Passes the upload checks (a readable PDF with pages) but the splitter finds no letter: no address at all.
    write_serial_letter(bad, recipients[:1], seed=6, pages_per_letter=(1, 1), address_mode="missing")

    async with three_services(tmp_path, kafka_settings, storage_settings) as client:
        dt = (await client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=h(account))).json()
        r = await client.post(
            "/v1/letters",
            json={
                "title": "Jahresabrechnung",
                "document_type_id": dt["created_id"],
                "recipient_groups": ["owners"],
                "scope": "cross_property",
            },
            headers=h(account),
        )
        lid = r.json()["letter_id"]
        await upload(client, account, lid, "gut.pdf", good.read_bytes())
        bad_doc = await upload(client, account, lid, "ohne-adresse.pdf", bad.read_bytes())

        assert (await client.post(f"/v1/letters/{lid}/split", headers=h(account))).status_code == 200
        body = await wait_status(client, account, lid, {"draft"})
        failed = next(d for d in body["documents"] if d["document_id"] == bad_doc["document_id"])
        assert failed["status"] == "failed"

        # Give the answers for the good document (split result, assignment) time to arrive in the failed round.
        await asyncio.sleep(3)
        r = await client.delete(f"/v1/letters/{lid}/documents/{bad_doc['document_id']}", headers=h(account))
        assert r.status_code == 200, r.text
        assert (await client.post(f"/v1/letters/{lid}/split", headers=h(account))).status_code == 200

        body = await wait_status(client, account, lid, {"in_review"})
        assert len(body["documents"]) == 1
        assert len(body["documents"][0]["parts"]) == len(recipients)

        # Answers of the first round are kept in the history as superseded, not dropped silently.
        audit = (await client.get(f"/v1/letters/{lid}/audit", headers=h(account))).json()
        actions = [e["action"] for e in audit["entries"]]
        assert "answer_superseded" in actions, actions


async def test_a_letter_waiting_for_the_splitter_is_reported_and_resent_with_the_same_event_id(
    tmp_path, kafka_settings, storage_settings, object_store, make_id
):
    """Issue #15 item 4: stuck letters surface; "erneut anstoßen" re-sends the request idempotently."""
    from letters_testkit import read_topic, tiny_pdf

    account = make_id("acc")
    letters = create_letters(
        LettersSettings(  # type: ignore[arg-type]
            data_dir=str(tmp_path / "letters"),
            relay_poll_seconds=0.1,
            consumer_group=f"{kafka_settings.group_prefix}-letters",
            stuck_after_seconds=3600,
            kafka=kafka_settings,
            storage=storage_settings,
            log_json=False,
        )
    )
    async with (
        letters.router.lifespan_context(letters),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=letters), base_url="http://letters") as client,
    ):
        dt = (await client.post("/v1/document-types", json={"name": "Briefe"}, headers=h(account))).json()
        body = {
            "title": "T",
            "document_type_id": dt["created_id"],
            "recipient_groups": ["owners"],
            "scope": "cross_property",
        }
        lid = (await client.post("/v1/letters", json=body, headers=h(account))).json()["letter_id"]
        await upload(client, account, lid, "brief.pdf", tiny_pdf(2))
        assert (await client.post(f"/v1/letters/{lid}/split", headers=h(account))).status_code == 200

        # No splitter runs: the letter waits. Not stuck yet by the configured time, stuck with a threshold of 0.
        assert (await client.get("/v1/stuck-letters", headers=h(account))).json()["letters"] == []
        stuck = (await client.get("/v1/stuck-letters?older_than_seconds=0", headers=h(account))).json()["letters"]
        assert [(s["letter_id"], s["waiting_for"]) for s in stuck] == [(lid, "splitter")]
        assert stuck[0]["since"]

        r = await client.post(f"/v1/letters/{lid}/resend", headers=h(account))
        assert r.status_code == 200, r.text
        (resent_id,) = r.json()["resent_event_ids"]
        found = await read_topic(
            kafka_settings.bootstrap_servers,
            "letters.events",
            lambda b, _h: b["event_type"] == "SplitRequested" and b["payload"]["letter_id"] == lid,
            until=lambda m: len(m) >= 2,
        )
        assert [m[0]["event_id"] for m in found] == [resent_id, resent_id], "the same request, not a new one"
        audit = (await client.get(f"/v1/letters/{lid}/audit", headers=h(account))).json()
        assert "requests_resent" in [e["action"] for e in audit["entries"]]
        # A letter that waits for nobody cannot be nudged.
        await client.post(f"/v1/letters/{lid}/reopen", headers=h(account))
        assert (await client.post(f"/v1/letters/{lid}/resend", headers=h(account))).status_code == 422
