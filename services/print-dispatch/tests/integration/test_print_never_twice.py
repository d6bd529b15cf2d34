"""kill -9 between submitting and recording: the restarted service must not send a second paper letter."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest

from smartpost_print_dispatch.testing import PROVIDER_API_KEY, PROVIDER_WEBHOOK_SECRET, write_letter
from smartpost_shared.contracts.common import PostalAddress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import PrintOptions, PrintOrdered, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.devstack import free_port
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.storage import part_key
from smartpost_shared.testing.identity import caller_headers

pytestmark = pytest.mark.real


def start_service(env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", "smartpost_print_dispatch"], env=env, stdout=log, stderr=log)


async def test_kill_9_while_provider_is_slow_sends_one_letter(  # noqa: PLR0915
    kafka_settings, storage_settings, object_store, tmp_path, make_id, fake_provider, wait
):
    account, letter_id, order_id = make_id("acc"), make_id("letter"), make_id("po")
    port = free_port()
    database = tmp_path / "pd.sqlite3"
    env = {
        **os.environ,
        "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_S3_ENDPOINT": storage_settings.endpoint,
        "SMARTPOST_S3_BUCKET": storage_settings.bucket,
        "SMARTPOST_S3_SECRET_KEY": storage_settings.secret_key.get_secret_value(),
        "SMARTPOST_PRINT_DISPATCH_DATABASE_URL": f"sqlite:///{database}",
        "SMARTPOST_PRINT_DISPATCH_HTTP_PORT": str(port),
        "SMARTPOST_PRINT_DISPATCH_CONSUMER_GROUP": make_id("pd"),
        "SMARTPOST_PRINT_DISPATCH_DISPATCH_POLL_SECONDS": "0.1",
        "SMARTPOST_PRINT_DISPATCH_SUBMIT_RETRY_SECONDS": "0.2",
        "SMARTPOST_PRINT_DISPATCH_HTTP_PROVIDERS": json.dumps(
            [
                {
                    "name": "hybridpost",
                    "base_url": fake_provider.url,
                    "profile": "din5008_b",
                    "timeout_seconds": 120,
                    "api_key": PROVIDER_API_KEY,
                    "webhook_secret": PROVIDER_WEBHOOK_SECRET,
                }
            ]
        ),
    }
    # The provider stores the letter, then takes a minute to answer: the service is killed while it waits.
    fake_provider.control(submit_delay_seconds=60)
    key = part_key(account, letter_id, "doc1", 0)
    lines = ["Frau Erika Mustermann", "Lindenallee 12", "50667 Köln"]
    object_store.put(key, write_letter(lines), content_type="application/pdf")
    contact = ContactUpserted(
        contact_id="c1",
        salutation="Frau",
        first_name="Erika",
        last_name="Mustermann",
        address=PostalAddress(street="Lindenallee 12", postal_code="50667", city="Köln"),
    )
    item = ReleasedItem(
        item_id="item0", document_id="doc1", part_id="p0", contact_id="c1", storage_key=key, page_count=2
    )
    order = PrintOrdered(
        letter_id=letter_id,
        print_order_id=order_id,
        title="T",
        items=[item],
        ordered_by="s",
        options=PrintOptions(provider="hybridpost"),
    )

    process = start_service(env, tmp_path / "service.log")
    try:
        await asyncio.to_thread(wait, lambda: _get(f"http://127.0.0.1:{port}/readyz") == 200, 60, 0.2, "service ready")
        broker = make_broker(kafka_settings, service="test")
        await broker.start()
        publisher = EventPublisher(broker)
        await publisher.publish(make_envelope(contact, account_id=account, producer="erp"))
        await asyncio.sleep(1.0)
        await publisher.publish(make_envelope(order, account_id=account, producer="letters"))
        await broker.stop()

        await asyncio.to_thread(wait, lambda: fake_provider.letters()["letters"], 60, 0.2, "letter at provider")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    with sqlite3.connect(database) as conn:
        stage, ref = conn.execute(
            "SELECT stage, provider_ref FROM pd_mailpieces WHERE account_id = ?", (account,)
        ).fetchone()
    assert (stage, ref) == ("submitting", None), "the crash happened between submitting and recording"

    fake_provider.control(submit_delay_seconds=0)
    process = start_service(env, tmp_path / "service.log")
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers=caller_headers(account, audience="print-dispatch", roles=["prepare", "release"]),
        )

        def submitted():
            try:
                body = api.get(f"/orders/{order_id}").json()
            except httpx.HTTPError:
                return None
            piece = body["mailpieces"][0]
            return piece if piece["status"] == "submitted" else None

        piece = await asyncio.to_thread(wait, submitted, 60, 0.2, "submitted after restart")
        api.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    letters = fake_provider.letters()["letters"]
    assert len(letters) == 1, "a restart must not print a second letter"
    assert letters[0]["submit_requests"] == 2
    assert letters[0]["idempotency_key"] == piece["mailpiece_id"]
    assert piece["provider_ref"] == letters[0]["id"]


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


async def test_kill_9_at_a_provider_without_idempotency_goes_to_staff_not_to_paper_again(  # noqa: PLR0915
    kafka_settings, storage_settings, object_store, tmp_path, make_id, fake_provider, wait
):
    """A provider that does not honour idempotency keys would print a resent letter twice: unknown -> staff."""
    account, letter_id, order_id = make_id("acc"), make_id("letter"), make_id("po")
    port = free_port()
    database = tmp_path / "pd.sqlite3"
    env = {
        **os.environ,
        "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_S3_ENDPOINT": storage_settings.endpoint,
        "SMARTPOST_S3_BUCKET": storage_settings.bucket,
        "SMARTPOST_S3_SECRET_KEY": storage_settings.secret_key.get_secret_value(),
        "SMARTPOST_PRINT_DISPATCH_DATABASE_URL": f"sqlite:///{database}",
        "SMARTPOST_PRINT_DISPATCH_HTTP_PORT": str(port),
        "SMARTPOST_PRINT_DISPATCH_CONSUMER_GROUP": make_id("pd"),
        "SMARTPOST_PRINT_DISPATCH_DISPATCH_POLL_SECONDS": "0.1",
        "SMARTPOST_PRINT_DISPATCH_SUBMIT_RETRY_SECONDS": "0.2",
        "SMARTPOST_PRINT_DISPATCH_HTTP_PROVIDERS": json.dumps(
            [
                {
                    "name": "plainpost",
                    "base_url": fake_provider.url,
                    "profile": "din5008_b",
                    "timeout_seconds": 120,
                    "honours_idempotency": False,
                    "api_key": PROVIDER_API_KEY,
                    "webhook_secret": PROVIDER_WEBHOOK_SECRET,
                }
            ]
        ),
    }
    fake_provider.control(submit_delay_seconds=60, honour_idempotency=False)
    key = part_key(account, letter_id, "doc1", 0)
    object_store.put(
        key, write_letter(["Frau Erika Mustermann", "Lindenallee 12", "50667 Köln"]), content_type="application/pdf"
    )
    contact = ContactUpserted(
        contact_id="c1",
        salutation="Frau",
        first_name="Erika",
        last_name="Mustermann",
        address=PostalAddress(street="Lindenallee 12", postal_code="50667", city="Köln"),
    )
    item = ReleasedItem(
        item_id="item0", document_id="doc1", part_id="p0", contact_id="c1", storage_key=key, page_count=2
    )
    order = PrintOrdered(
        letter_id=letter_id,
        print_order_id=order_id,
        title="T",
        items=[item],
        ordered_by="s",
        options=PrintOptions(provider="plainpost"),
    )
    process = start_service(env, tmp_path / "service.log")
    try:
        await asyncio.to_thread(wait, lambda: _get(f"http://127.0.0.1:{port}/readyz") == 200, 60, 0.2, "service ready")
        broker = make_broker(kafka_settings, service="test")
        await broker.start()
        publisher = EventPublisher(broker)
        await publisher.publish(make_envelope(contact, account_id=account, producer="erp"))
        await asyncio.sleep(1.0)
        await publisher.publish(make_envelope(order, account_id=account, producer="letters"))
        await broker.stop()
        await asyncio.to_thread(wait, lambda: fake_provider.letters()["letters"], 60, 0.2, "letter at provider")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    fake_provider.control(submit_delay_seconds=0)
    process = start_service(env, tmp_path / "service.log")
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers=caller_headers(account, audience="print-dispatch", roles=["prepare", "release"]),
        )

        def unclear():
            try:
                body = api.get(f"/orders/{order_id}").json()
            except httpx.HTTPError:
                return None
            piece = body["mailpieces"][0]
            return piece if piece["status"] == "action_required" else None

        piece = await asyncio.to_thread(wait, unclear, 60, 0.2, "status unclear after restart")
        await asyncio.sleep(2.0)  # several dispatch rounds: still nothing resent
        api.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    assert piece["outcome_unknown"] is True
    assert piece["reason"].startswith("Status unklar")
    data = fake_provider.letters()
    assert len(data["letters"]) == 1, "never a second paper letter"
    assert data["submit_requests"] == 1, "a provider without idempotency keys never gets the letter again"
