"""Measure the sender: mails per second from the outbox to a real local aiosmtpd (SQLite, two commits per mail).

.venv/bin/python services/notifier/benchmarks/send_throughput.py [mails]

SEND_CONNECTIONS (default 4) sets the notifier's parallel SMTP connections; RELAY_DELAY_MS (default 0) makes the
relay answer the final dot that much later, like a real relay that checks and stores the mail before its 250.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from smartpost_notifier.adapters.db import create_tables
from smartpost_notifier.app import make_mailer
from smartpost_notifier.application import Notifier
from smartpost_notifier.settings import Settings
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.portal import DocumentPublished
from smartpost_shared.db import make_engine
from smartpost_shared.devstack import free_port
from smartpost_shared.messaging import SqlIdempotency


class SlowMailbox(Mailbox):
    """A Maildir relay whose answer to the final dot takes ``delay`` seconds (other connections go on meanwhile)."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path)
        self.delay = delay

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]  # noqa: ANN001, N802
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def main(count: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    for sub in ("tmp", "new", "cur"):
        (root / "maildir" / sub).mkdir(parents=True)
    port = free_port()
    controller = Controller(
        SlowMailbox(root / "maildir", float(os.environ.get("RELAY_DELAY_MS", "0")) / 1000),
        hostname="127.0.0.1",
        port=port,
    )
    controller.start()
    url = f"sqlite:///{root / 'db.sqlite3'}"
    settings = Settings(
        database_url=url,
        smtp_port=port,
        immediate_delay_seconds=0,
        send_batch_size=100,
        send_connections=int(os.environ.get("SEND_CONNECTIONS", "4")),
    )
    engine = make_engine(url)
    create_tables(engine)
    notifier = Notifier(engine, settings, make_mailer(settings), mailer_factory=lambda: make_mailer(settings))
    idem = SqlIdempotency(engine, "notifier")
    start = time.perf_counter()
    for i in range(count):
        idem.run_once(
            notifier.on_masterdata,
            make_envelope(
                ContactUpserted(contact_id=f"c{i}", email=f"c{i}@example.org", portal_registered=True),
                account_id="bench",
                producer="bench",
            ),
        )
        idem.run_once(
            notifier.on_document_published,
            make_envelope(
                DocumentPublished(
                    document_id=f"d{i}",
                    letter_id="L",
                    item_id=f"i{i}",
                    contact_id=f"c{i}",
                    title="Abrechnung",
                    folder=["Abrechnung"],
                    letter_date=date(2026, 1, 2),
                    notify_by_email=True,
                    published_at=datetime.now(UTC),
                ),
                account_id="bench",
                producer="bench",
            ),
        )
    consumed = time.perf_counter() - start
    start = time.perf_counter()
    sent = 0
    while sent < count:
        sent += notifier.send_due().sent
    elapsed = time.perf_counter() - start
    delivered = len(list((root / "maildir" / "new").iterdir()))
    controller.stop()
    print(f"consume (2 events per recipient): {2 * count / consumed:.0f} events/s")
    print(f"send: {count} mails in {elapsed:.2f}s = {count / elapsed:.0f} mails/s; delivered {delivered}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
