"""The SMTP relay is down for a while: mails wait with backoff and go out exactly once when it is back."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from sqlalchemy import select

from smartpost_notifier.adapters.db import mails
from smartpost_notifier.app import create_app
from smartpost_notifier.settings import Settings
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.portal import DocumentPublished
from smartpost_shared.devstack import free_port

from .notifier_testkit import Producer, ensure_maildir, mails_of, message_id_counts, start_group_at_end, wait_for

pytestmark = pytest.mark.real


async def test_smtp_outage_is_retried_with_backoff_without_loss_or_duplicate(
    stack, kafka_settings, sqlite_url, tmp_path, make_id
):
    account = make_id("acc")
    group = make_id("notifier")
    await start_group_at_end(stack.bootstrap_servers, group, ["portal.events"])
    await start_group_at_end(stack.bootstrap_servers, f"{group}-masterdata", ["masterdata.events"])
    maildir = ensure_maildir(tmp_path / "maildir")
    port = free_port()
    settings = Settings(
        database_url=sqlite_url,
        kafka=kafka_settings,
        smtp_host="127.0.0.1",
        smtp_port=port,  # nothing listens yet: the relay is down
        smtp_timeout_seconds=2,
        immediate_delay_seconds=0,
        send_poll_seconds=0.1,
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        digest_enabled=False,
        kafka_group_id=group,
        log_json=False,
    )
    app = create_app(settings)
    contacts = [f"c{i}" for i in range(5)]
    async with app.router.lifespan_context(app), Producer(kafka_settings, account) as producer:
        await producer.send(
            *(ContactUpserted(contact_id=c, email=f"{c}@example.org", portal_registered=True) for c in contacts)
        )
        await producer.send(
            *(
                DocumentPublished(
                    document_id=f"d-{c}",
                    letter_id="L",
                    item_id=f"i-{c}",
                    contact_id=c,
                    title="Mahnung",
                    folder=["Mahnungen"],
                    letter_date=date(2026, 1, 2),
                    notify_by_email=True,
                    published_at=datetime.now(UTC),
                )
                for c in contacts
            ),
            producer="portal-publisher",
        )
        engine = app.state.engine

        def attempts() -> list[tuple[str, int]]:
            with engine.connect() as conn:
                query = select(mails.c.status, mails.c.attempts).where(mails.c.account_id == account)
                return [(r.status, r.attempts) for r in conn.execute(query)]

        # Backoff: the first mail keeps failing (attempts grow), the others wait behind the outage.
        # (The app also sees other tests' events on the shared broker: everything is scoped to this account.)
        await wait_for(lambda: any(n >= 3 for _, n in attempts()), 60, what="three failed attempts")
        # Nothing is given up or counted as sent; a row may be claimed ("sending") at this very moment.
        assert {status for status, _ in attempts()} <= {"pending", "sending"}
        assert mails_of(maildir, account) == []
        assert len(attempts()) == len(contacts)

        controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await wait_for(lambda: len(mails_of(maildir, account)) >= len(contacts), 60, what="mails after outage")
            await asyncio.sleep(1.5)
        finally:
            controller.stop()
        counts = message_id_counts(mails_of(maildir, account))
        assert len(counts) == len(contacts)
        assert set(counts.values()) == {1}
        await wait_for(lambda: {status for status, _ in attempts()} == {"sent"}, 10, what="all rows sent")
