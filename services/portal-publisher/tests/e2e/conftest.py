"""The recipients' side running for real: portal-publisher and notifier as processes on the test stack (tansu,
SeaweedFS, aiosmtpd), master data and a released serial letter published as events, the part PDFs in SeaweedFS."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import mailbox
import re
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr

from smartpost_shared.contracts.common import ChannelPreference, ContractRole, DocumentType, PostalAddress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import LetterItemsRevoked, LetterReleased, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.devstack import free_port
from smartpost_shared.localrun import LocalSystem
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.settings import KafkaSettings, StorageSettings
from smartpost_shared.storage import MinioStore, part_key

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterator

    from smartpost_shared.devstack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
COMPANY = "Hausverwaltung Sonnenschein GmbH"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


@dataclass
class Recipient:
    key: str
    contact_id: str
    name: str
    email: str
    property_id: str
    property_name: str
    unit_id: str
    unit_number: str
    item_id: str = ""
    pdf: bytes = b""


@dataclass
class RecipientSystem:
    system: LocalSystem
    stack: Stack
    account_id: str
    letter_id: str
    people: dict[str, Recipient]
    portal_url: str
    sent_at: float = field(default_factory=time.time)

    def invitation(self, key: str) -> str:
        r = httpx.post(
            f"{self.portal_url}/internal/invitations",
            json={"contact_id": self.people[key].contact_id},
            headers=self.stack.caller_headers(self.account_id, audience="portal-publisher", roles=("prepare",)),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def deliveries(self) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.portal_url}/internal/letters/{self.letter_id}/deliveries",
            headers=self.stack.caller_headers(self.account_id, audience="portal-publisher"),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return list(r.json())

    def mails_to(self, address: str) -> list[email.message.EmailMessage]:
        found = []
        for message in mailbox.Maildir(self.stack.maildir, factory=None, create=False):
            parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
            if address in str(parsed["To"]):
                found.append(parsed)
        return found

    def wait_for_mail(self, address: str, subject_part: str, timeout: float = 60) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in self.mails_to(address):
                if subject_part in str(mail["Subject"]):
                    return mail
            time.sleep(0.3)
        logs = {s: self.log(s)[-2000:] for s in ("notifier", "portal-publisher")}
        pytest.fail(f"no mail '{subject_part}' to {address} within {timeout}s; logs: {logs}")

    def revoke(self, key: str) -> None:
        payload = LetterItemsRevoked(
            letter_id=self.letter_id,
            item_ids=[self.people[key].item_id],
            reason="falscher Empfänger",
            actor="anna@hv.example",
        )
        run_async(publish(self.stack.bootstrap_servers, self.account_id, [payload], producer="letters"))

    def log(self, service: str) -> str:
        path = self.stack.root / "logs" / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def link_in(mail: email.message.EmailMessage, pattern: str) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(pattern, body.get_content())
    assert found, body.get_content()
    return found.group(0)


def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine in its own thread (playwright's sync API keeps an event loop in the test thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def publish(bootstrap: str, account_id: str, payloads: list[Any], *, producer: str) -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap), service="portal-e2e")
    await broker.connect()
    try:
        publisher = EventPublisher(broker)
        for payload in payloads:
            await publisher.publish(make_envelope(payload, account_id=account_id, producer=producer))
    finally:
        await broker.stop()


def _pdf(label: str, pages: int) -> bytes:
    import io

    import pikepdf

    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = label
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def recipients(stack: Stack) -> Iterator[RecipientSystem]:
    tag = uuid.uuid4().hex[:6]
    account_id = f"hv-{tag}"
    letter_id = f"letter-{tag}"
    people = {
        "anna": Recipient(
            "anna",
            f"C-anna-{tag}",
            "Anna Arendt",
            f"anna-{tag}@example.org",
            f"P1-{tag}",
            "WEG Parkallee 7",
            f"P1-{tag}-U2",
            "WE 02",
        ),
        "bert": Recipient(
            "bert",
            f"C-bert-{tag}",
            "Bert Brandt",
            f"bert-{tag}@example.org",
            f"P2-{tag}",
            "WEG Lindenstraße 12",
            f"P2-{tag}-U5",
            "WE 05",
        ),
    }
    events: list[Any] = []
    for person in people.values():
        first, last = person.name.split()
        events += [
            PropertyUpserted(property_id=person.property_id, reference=f"REF-{person.key}", name=person.property_name),
            UnitUpserted(unit_id=person.unit_id, property_id=person.property_id, number=person.unit_number),
            ContactUpserted(
                contact_id=person.contact_id,
                first_name=first,
                last_name=last,
                address=PostalAddress(street="Parkallee 7", postal_code="20144", city="Hamburg"),
                email=person.email,
                channel_preference=ChannelPreference.ONLINE,
                portal_registered=True,
            ),
            ContractUpserted(
                contract_id=f"V-{person.key}-{tag}",
                contact_id=person.contact_id,
                unit_id=person.unit_id,
                property_id=person.property_id,
                role=ContractRole.OWNER,
                start=date(2019, 1, 1),
            ),
        ]
    store = MinioStore(
        StorageSettings(endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key), bucket="smartpost")
    )
    store.ensure_bucket()
    items = []
    for index, person in enumerate(people.values()):
        person.item_id = f"{letter_id}-item-{index}"
        person.pdf = _pdf(f"Jahresabrechnung {person.name}", 3)
        key = part_key(account_id, letter_id, "doc-1", index)
        store.put(key, person.pdf, content_type="application/pdf")
        items.append(
            ReleasedItem(
                item_id=person.item_id,
                document_id="doc-1",
                part_id=f"part-{index}",
                contact_id=person.contact_id,
                property_id=person.property_id,
                unit_id=person.unit_id,
                storage_key=key,
                page_count=3,
            )
        )
    release = LetterReleased(
        letter_id=letter_id,
        title="Jahresabrechnung 2025",
        document_type=DocumentType(id="dt-ja", path=["Abrechnungen", "Jahresabrechnung"]),
        letter_date=date(2026, 3, 2),
        notify_by_email=True,
        released_by="anna@hv.example",
        items=items,
    )

    data_dir = Path(tempfile.mkdtemp(prefix="smartpost-portal-e2e-"))
    names = ["portal-publisher", "notifier"]
    system = LocalSystem(stack, data_dir, ports={n: free_port() for n in names}, group_tag=f"pp-{data_dir.name}")
    system.extra_env = {
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_LOG_LEVEL": "INFO",
        "SMARTPOST_PORTAL_PUBLISHER_DOWNLOAD_LINK_SECRET": uuid.uuid4().hex,
        # Short-lived links so the test can see one expire.
        "SMARTPOST_PORTAL_PUBLISHER_DOWNLOAD_LINK_TTL_SECONDS": "5",
        "SMARTPOST_PORTAL_PUBLISHER_ACCOUNTS": json.dumps(
            {account_id: {"name": COMPANY, "contact_line": "Telefon 040 123456"}}
        ),
        "SMARTPOST_NOTIFIER_ACCOUNTS": json.dumps({account_id: {"name": COMPANY}}),
        "SMARTPOST_NOTIFIER_IMMEDIATE_DELAY_SECONDS": "0.5",
        "SMARTPOST_NOTIFIER_DIGEST_ENABLED": "false",
    }
    try:
        for name in names:
            system.start(name)
        for name in names:
            system.wait_healthy(name)
        portal_url = system.url("portal-publisher")
        run_async(publish(stack.bootstrap_servers, account_id, events, producer="erp-integration"))
        run_async(publish(stack.bootstrap_servers, account_id, [release], producer="letters"))
        running = RecipientSystem(system, stack, account_id, letter_id, people, portal_url)
        deadline = time.monotonic() + 90
        while len(running.deliveries()) < len(people):
            if time.monotonic() > deadline:
                pytest.fail(f"release not published: {running.log('portal-publisher')[-3000:]}")
            time.sleep(0.3)
        yield running
    finally:
        system.stop_all()
        for service in names:
            log = stack.root / "logs" / f"{service}.log"
            if log.exists():
                shutil.copy(log, Path(tempfile.gettempdir()) / f"portal-e2e-{service}.log")
        shutil.rmtree(data_dir, ignore_errors=True)
