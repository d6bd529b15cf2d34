"""Replay guard through real tansu and aiosmtpd: an old publication is consumed and held, a fresh one is mailed.

A new consumer group reads the retained history; the notifier's database is fresh, so nothing deduplicates the
old DocumentPublished. Its envelope's ``occurred_at`` (3 days ago, limit 48 h) keeps it from being mailed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from smartpost_notifier.app import create_app
from smartpost_notifier.settings import Settings
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.portal import DocumentPublished
from smartpost_shared.testing.identity import caller_headers

from .notifier_testkit import Producer, mails_of, wait_for

pytestmark = pytest.mark.real


async def test_old_publication_is_held_for_staff_and_a_fresh_one_is_mailed(stack, kafka_settings, sqlite_url, make_id):
    account = make_id("acc")
    old_letter, fresh_letter = make_id("letter-old"), make_id("letter-fresh")
    settings = Settings(
        database_url=sqlite_url,
        kafka=kafka_settings,
        smtp_host="127.0.0.1",
        smtp_port=stack.smtp_port,
        immediate_delay_seconds=0.5,
        send_poll_seconds=0.2,
        digest_enabled=False,
        kafka_group_id=make_id("notifier"),
        log_json=False,
    )
    app = create_app(settings)
    now = datetime.now(UTC)

    def doc(document_id: str, letter_id: str, at: datetime) -> DocumentPublished:
        return DocumentPublished(
            document_id=document_id,
            letter_id=letter_id,
            item_id=f"item-{document_id}",
            contact_id="anna",
            title=f"Brief {document_id}",
            folder=["Abrechnungen"],
            letter_date=date(2026, 1, 2),
            notify_by_email=True,
            published_at=at,
        )

    async with app.router.lifespan_context(app), Producer(kafka_settings, account) as producer:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier")
        headers = caller_headers(account, audience="notifier", roles=["release"])
        await producer.send(
            ContactUpserted(contact_id="anna", last_name="Albers", email="anna@example.org", portal_registered=True)
        )
        three_days_ago = now - timedelta(days=3)
        await producer.publisher.publish(
            make_envelope(
                doc("d-old", old_letter, three_days_ago),
                account_id=account,
                producer="portal-publisher",
                occurred_at=three_days_ago,
            )
        )
        await producer.send(doc("d-fresh", fresh_letter, now), producer="portal-publisher")

        await wait_for(lambda: len(mails_of(stack.maildir, account)) >= 1, 30, what="the fresh mail")

        async def held() -> list:
            body = (await client.get("/internal/mails/stale", headers=headers)).json()
            return list(body["mails"])

        for _ in range(50):
            if await held():
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a mail for the old publication would be out by now
        mails = mails_of(stack.maildir, account)
        assert len(mails) == 1
        text = mails[0].get_body(("plain",)).get_content()
        assert "d-fresh" in text
        assert "d-old" not in text

        [stale] = await held()
        assert stale["letter_id"] == old_letter
        assert stale["status_label"] == "Veraltet – bitte prüfen"
        assert stale["reason"].startswith("Veraltet – bitte prüfen: Ereignis vom ")
        assert "Grenze 48 Std." in stale["reason"]
        stats = (await client.get("/internal/mails/stats", headers=headers)).json()
        assert stats["mails"]["immediate"] == {"sent": 1, "stale": 1}
        metrics = (await client.get("/metrics")).text
        assert 'smartpost_stale_events_total{event_type="DocumentPublished",service="notifier"}' in metrics

        # staff decide the old one is wanted after all: released, it goes out once
        released = await client.post(f"/internal/mails/{stale['mail_id']}/release", headers=headers)
        assert released.status_code == 200, released.text
        assert (await client.post(f"/internal/mails/{stale['mail_id']}/release", headers=headers)).status_code == 409
        await wait_for(lambda: len(mails_of(stack.maildir, account)) >= 2, 30, what="the released mail")
        await client.aclose()
