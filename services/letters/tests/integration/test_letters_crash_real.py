"""kill -9 between the event-store commit and the Kafka publish loses no event (real process, real tansu).

The service runs as ``python -m smartpost_letters``. A fault hook (``SMARTPOST_LETTERS_FAULT_INJECTION``) makes it
SIGKILL itself either right after the commit, before the first publish, or right after publishing, before the
relay records its position. After a restart without the fault, the event is on Kafka exactly as stored, with the
event id derived from the stored event (a duplicate with the same id is allowed, loss is not).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from letters_testkit import read_topic

from smartpost_letters.application import LettersApplication, event_store_env
from smartpost_letters.integration import wire_envelopes
from smartpost_shared.devstack import free_port
from smartpost_shared.testing.identity import caller_headers

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.real, pytest.mark.slow]


def start_service(stack, data_dir: Path, port: int, database_url: str, fault: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **stack.env(),
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_LETTERS_DATA_DIR": str(data_dir),
        "SMARTPOST_LETTERS_DATABASE_URL": database_url,
        "SMARTPOST_LETTERS_HTTP_PORT": str(port),
        "SMARTPOST_LETTERS_FAULT_INJECTION": fault,
        "SMARTPOST_LETTERS_LOG_JSON": "false",
        "SMARTPOST_LETTERS_CONSUMER_GROUP": f"smartpost-letters-{os.urandom(4).hex()}",
    }
    log = (data_dir / f"service-{fault or 'normal'}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "smartpost_letters"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"service exited early with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("service did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def h(account: str) -> dict[str, str]:
    return caller_headers(account, "staff:crash-test", audience="letters", roles=["prepare", "release"])


def create_letter(port: int, account: str) -> str | None:
    base = f"http://127.0.0.1:{port}"
    dt = httpx.post(f"{base}/v1/document-types", json={"name": "Briefe"}, headers=h(account), timeout=10)
    dt.raise_for_status()
    try:
        r = httpx.post(
            f"{base}/v1/letters",
            json={
                "title": "Crash",
                "document_type_id": dt.json()["created_id"],
                "recipient_groups": ["owners"],
                "property_id": "p1",
            },
            headers={**h(account), "X-SmartPost-Command-Id": "crash-create"},
            timeout=10,
        )
    except httpx.HTTPError:
        return None  # the process died before answering: the letter id is found in the store instead
    return str(r.json()["letter_id"])


@pytest.mark.parametrize(("fault", "db"), [("before_publish", "sqlite"), ("after_publish", "postgres")])
async def test_kill_9_between_commit_and_publish_loses_no_event(stack, tmp_path, make_id, request, fault, db):
    database_url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "postgres_url")
    account = make_id("acc")
    port = free_port()
    proc = start_service(stack, tmp_path, port, database_url, fault)
    try:
        create_letter(port, account)
        assert proc.wait(30) == -signal.SIGKILL  # it really died by kill -9
    finally:
        stop(proc)

    # The committed event is in the store; compute the envelope the relay must publish for it.
    store_url = database_url if db == "postgres" else f"sqlite:///{tmp_path}/letters-events.sqlite3"
    app = LettersApplication(event_store_env(store_url))
    try:
        created = [n for n in app.recorder.select_notifications(start=1, limit=100) if "SerialLetter" in n.topic]
        assert len(created) == 1
        expected = wire_envelopes(app.mapper.to_domain_event(created[0]))[0]
    finally:
        app.close()
    letter_id = expected.payload.letter_id  # type: ignore[attr-defined]

    before = await read_topic(
        stack.bootstrap_servers,
        "letters.events",
        lambda b, _: b["payload"].get("letter_id") == letter_id,
        until=lambda m: len(m) >= 1,
        timeout=6,
    )
    assert len(before) == (0 if fault == "before_publish" else 1)

    proc = start_service(stack, tmp_path, port, database_url, "")
    try:
        want = 1 if fault == "before_publish" else 2
        found = await read_topic(
            stack.bootstrap_servers,
            "letters.events",
            lambda b, _: b["payload"].get("letter_id") == letter_id,
            until=lambda m: len(m) >= want,
            timeout=30,
        )
        assert len(found) == want
        for body, _ in found:
            assert body["event_id"] == str(expected.event_id)  # same id: consumers dedupe the re-publish
            assert body["payload"] == expected.to_json_dict()["payload"]
            assert body["event_type"] == "LetterCreated"
        # The service answers for the letter after the restart (nothing lost in the store either).
        r = httpx.get(f"http://127.0.0.1:{port}/v1/letters/{letter_id}", headers=h(account), timeout=10)
        assert r.json()["status"] == "draft"
    finally:
        stop(proc)
