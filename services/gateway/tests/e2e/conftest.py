"""The whole of SmartPost running for the gateway's browser tests: every installed service as a process (real
tansu, SeaweedFS, aiosmtpd from the ``stack`` fixture), demo master data published as events, a staff user."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from smartpost_gateway.auth import hash_password
from smartpost_shared.contracts.common import ChannelPreference, ContractRole, PostalAddress
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.localrun import SERVICES, LocalSystem, free_ports_for, installed
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.sample_letters import SampleRecipient
from smartpost_shared.settings import KafkaSettings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smartpost_shared.devstack import Stack

PASSWORD = "Serienbrief-2025!"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Every Content-Security-Policy violation a page reports: the browser's console message ("Refused to execute
# inline script ...") and the ``securitypolicyviolation`` event (forwarded to the console by an init script, which
# the policy does not govern). The browser tests fail on any.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
    " at " + e.sourceFile + ":" + e.lineNumber + " " + (e.sample || ""));
});
"""


def watch_csp(context: Any, seen: list[str] | None = None) -> list[str]:
    """Record every CSP violation of every page of ``context`` in ``seen`` (it grows while the pages run)."""
    seen = [] if seen is None else seen
    context.add_init_script(_REPORT_CSP)

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation"):
            seen.append(f"{message.page.url if message.page else '?'}: {text}")

    context.on("console", on_console)
    return seen


@dataclass(frozen=True)
class Person:
    key: str
    reference_id: str
    first_name: str
    last_name: str
    street: str
    postal_code: str
    city: str
    channel: ChannelPreference = ChannelPreference.ONLINE
    registered: bool = True


@dataclass
class Demo:
    """Master data of one test account: two properties, their units, contacts and ownership contracts."""

    account_id: str
    p1: str
    p2: str
    people: dict[str, Person]
    contact_ids: dict[str, str]
    units: dict[str, tuple[str, str]]  # person key -> (property id, unit id)
    unit_labels: dict[str, str]  # unit id -> "WE 01"

    def recipient(self, key: str, *, reference: str | None = None) -> SampleRecipient:
        person = self.people[key]
        prop, unit = self.units.get(key, (self.p1, ""))
        return SampleRecipient(
            contact_id=self.contact_ids.get(key, key),
            reference_id=reference or person.reference_id,
            address_lines=[
                f"{person.first_name} {person.last_name}",
                person.street,
                f"{person.postal_code} {person.city}",
            ],
            property_ref=("WEG Lindenstraße 5" if prop == self.p1 else "WEG Gartenweg 3"),
            unit_ref=self.unit_labels.get(unit, "WE 99"),
        )


PEOPLE = [
    Person("mueller", "K-1001", "Hans", "Müller", "Lindenstraße 5", "10115", "Berlin", ChannelPreference.POST),
    Person("schmidt", "K-1002", "Anna", "Schmidt", "Lindenstraße 5", "10115", "Berlin"),
    Person("yilmaz", "K-1003", "Lea", "Yilmaz", "Bergstraße 17", "04109", "Leipzig", registered=False),
    Person("becker", "K-1004", "Jonas", "Becker", "Lindenstraße 5", "10115", "Berlin"),
    Person("weber", "K-2001", "Otto", "Weber", "Gartenweg 3", "14467", "Potsdam", ChannelPreference.POST, False),
    Person("klein", "K-2002", "Eva", "Klein", "Gartenweg 3", "14467", "Potsdam"),
]
# Not in the master data: a letter to this person cannot be assigned automatically.
STRANGER = Person("fremd", "K-9999", "Erika", "Unbekannt", "Nirgendweg 1", "99999", "Irgendwo")


def build_demo(account_id: str) -> tuple[Demo, list[Any]]:
    tag = uuid.uuid4().hex[:6]
    p1, p2 = f"P1-{tag}", f"P2-{tag}"
    events: list[Any] = [
        PropertyUpserted(
            property_id=p1,
            reference="WEG-0815",
            name="WEG Lindenstraße 5",
            address=PostalAddress(street="Lindenstraße 5", postal_code="10115", city="Berlin"),
        ),
        PropertyUpserted(
            property_id=p2,
            reference="WEG-0900",
            name="WEG Gartenweg 3",
            address=PostalAddress(street="Gartenweg 3", postal_code="14467", city="Potsdam"),
        ),
    ]
    placement = {
        "mueller": (p1, 1),
        "schmidt": (p1, 2),
        "yilmaz": (p1, 3),
        "becker": (p1, 4),
        "weber": (p2, 1),
        "klein": (p2, 2),
    }
    units: dict[str, tuple[str, str]] = {}
    labels: dict[str, str] = {}
    for key, (prop, n) in placement.items():
        unit_id = f"{prop}-U{n}"
        labels[unit_id] = f"WE {n:02d}"
        units[key] = (prop, unit_id)
        events.append(
            UnitUpserted(
                unit_id=unit_id,
                property_id=prop,
                number=f"WE {n:02d}",
                position=["EG links", "EG rechts", "1. OG links", "1. OG rechts"][n - 1],
            )
        )
    contact_ids = {}
    for person in PEOPLE:
        contact_id = f"C-{person.key}-{tag}"
        contact_ids[person.key] = contact_id
        events.append(
            ContactUpserted(
                contact_id=contact_id,
                reference_id=person.reference_id,
                salutation="",
                first_name=person.first_name,
                last_name=person.last_name,
                address=PostalAddress(street=person.street, postal_code=person.postal_code, city=person.city),
                email=f"{person.key}@example.org",
                channel_preference=person.channel,
                portal_registered=person.registered,
            )
        )
    for key, (prop, unit_id) in units.items():
        events.append(
            ContractUpserted(
                contract_id=f"V-{key}-{tag}",
                contact_id=contact_ids[key],
                unit_id=unit_id,
                property_id=prop,
                role=ContractRole.OWNER,
                start=date(2019, 1, 1),
            )
        )
    # Eva Klein also owns a flat in the other property: in a cross-property letter her contract must be chosen.
    events += [
        UnitUpserted(unit_id=f"{p1}-U5", property_id=p1, number="WE 05", position="2. OG links"),
        ContractUpserted(
            contract_id=f"V-klein-2-{tag}",
            contact_id=contact_ids["klein"],
            unit_id=f"{p1}-U5",
            property_id=p1,
            role=ContractRole.OWNER,
            start=date(2021, 1, 1),
        ),
    ]
    labels[f"{p1}-U5"] = "WE 05"
    people = {p.key: p for p in [*PEOPLE, STRANGER]}
    return Demo(account_id, p1, p2, people, contact_ids, units, labels), events


async def publish(bootstrap: str, account_id: str, events: list[Any]) -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap), service="gateway-e2e")
    await broker.connect()
    try:
        publisher = EventPublisher(broker)
        for payload in events:
            await publisher.publish(make_envelope(payload, account_id=account_id, producer="erp-integration"))
    finally:
        await broker.stop()


@dataclass
class RunningSystem:
    system: LocalSystem
    demo: Demo
    gateway_url: str
    users: dict[str, str]  # role name -> login
    services: list[str]

    def log(self, service: str) -> str:
        path = self.system.stack.root / "logs" / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def staff_users(account_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Anna (prepare + release) and Bernd (prepare only) of ``account_id``: (role name -> login, staff setting)."""
    users = {"anna": f"anna-{account_id}@hv-muster.de", "bernd": f"bernd-{account_id}@hv-muster.de"}
    password_hash = hash_password(PASSWORD)
    staff = {
        users["anna"]: {
            "password_hash": password_hash,
            "account_id": account_id,
            "roles": ["prepare", "release"],
            "name": "Anna Muster",
        },
        users["bernd"]: {
            "password_hash": password_hash,
            "account_id": account_id,
            "roles": ["prepare"],
            "name": "Bernd Vorbereiter",
        },
    }
    return users, staff


@contextmanager
def start_system(stack: Stack, demo: Demo, events: list[Any], *, contacts: int) -> Iterator[RunningSystem]:
    """Every installed service as a process for ``demo``'s account, its master data ``events`` published (and
    ``contacts`` contacts arrived at the assignment service), the staff users of :func:`staff_users`."""
    account_id = demo.account_id
    users, staff = staff_users(account_id)
    data_dir = Path(tempfile.mkdtemp(prefix="smartpost-gw-e2e-"))
    names = [s for s in SERVICES if installed(s)]
    system = LocalSystem(stack, data_dir, ports=free_ports_for(names), group_tag=f"gw-{data_dir.name}")
    system.extra_env = {
        "SMARTPOST_GATEWAY_STAFF_USERS": json.dumps(staff),
        "SMARTPOST_GATEWAY_ACCOUNTS": json.dumps({account_id: {"name": "HV Muster", "four_eyes_release": False}}),
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMARTPOST_LOG_LEVEL": "INFO",
    }
    try:
        started = system.start_all(names)
        asyncio.run(publish(stack.bootstrap_servers, account_id, events))
        # Master data reaches the assignment service through Kafka: wait until it can answer.
        deadline = time.monotonic() + 60
        headers = stack.caller_headers(account_id, "e2e", audience="assignment")
        while True:
            response = httpx.get(f"{system.url('assignment')}/contacts", headers=headers, params={"limit": 50})
            if response.status_code == 200 and len(response.json()["contacts"]) >= contacts:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"master data did not arrive at the assignment service: {response.text[:500]}")
            time.sleep(0.3)
        yield RunningSystem(system, demo, system.url("gateway"), users, started)
    finally:
        system.stop_all()
        for service in ("letters", "gateway", "splitter", "assignment"):
            log = stack.root / "logs" / f"{service}.log"
            if log.exists():
                shutil.copy(log, Path(tempfile.gettempdir()) / f"gw-e2e-{service}.log")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[RunningSystem]:
    demo, events = build_demo(f"hv-{uuid.uuid4().hex[:8]}")
    with start_system(stack, demo, events, contacts=len(PEOPLE)) as system:
        yield system
