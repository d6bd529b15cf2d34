"""Events and requests that point at another account's objects (issue #13, item 2), over the real broker.

Before: a PrintOrdered with another account's part key posted that account's letter to this account's contact; a
SplitRequested with another account's source key copied its PDF into this account's area; the print estimate read
another account's object by key.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from smartpost_shared.contracts import Envelope, make_envelope
from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.letters import PrintOptions, PrintOrdered, ReleasedItem, SplitRequested
from smartpost_shared.messaging import EventConsumer, EventPublisher, make_broker
from smartpost_shared.storage import account_key_problem
from smartpost_shared.topics import LETTERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_shared.settings import KafkaSettings

pytestmark = pytest.mark.real


def item(key: str) -> ReleasedItem:
    return ReleasedItem(item_id="i1", document_id="d1", part_id="p1", contact_id="c1", storage_key=key, page_count=1)


async def test_no_handler_sees_an_event_naming_another_accounts_object(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    mine, victim = make_id("acc"), make_id("victim")
    handled: list[str] = []

    async def record(envelope: Envelope) -> None:
        if envelope.account_id == mine:
            handled.append(envelope.event_type)

    broker = make_broker(kafka_settings, service="print-dispatch-test")
    consumer = EventConsumer(broker, service="t", backoff_seconds=0.05)
    consumer.subscribe(
        LETTERS,
        {"PrintOrdered": record, "SplitRequested": record},
        group_id=make_id("g"),
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await broker.start()
    try:
        publisher = EventPublisher(broker)
        foreign_part = f"accounts/{victim}/letters/L/parts/D/00000.pdf"
        order = PrintOrdered(
            letter_id="L",
            print_order_id="po",
            title="T",
            options=PrintOptions(),
            items=[item(foreign_part)],
            ordered_by="x",
        )
        rule = SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=1)
        copy = SplitRequested(
            letter_id="L",
            document_id="D",
            source_key=f"accounts/{victim}/letters/L/sources/D.pdf",
            filename="a.pdf",
            position=0,
            rule=rule,
        )
        sneaky = SplitRequested(
            letter_id="L",
            document_id="D2",
            source_key=f"accounts/{mine}/letters/L/sources/D2.pdf",
            filename="b.pdf",
            position=1,
            rule=rule,
            attachment_keys=[f"accounts/{mine}/../{victim}/letters/L/sources/D.pdf"],
        )
        fine = PrintOrdered(
            letter_id="L",
            print_order_id="po2",
            title="T",
            options=PrintOptions(),
            items=[item(f"accounts/{mine}/letters/L/parts/D/00000.pdf")],
            ordered_by="x",
        )
        for payload in (order, copy, sneaky, fine):
            await publisher.publish(make_envelope(payload, account_id=mine, producer="letters"))
        deadline = time.monotonic() + 30
        while not handled and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the three refused ones were published first; give them time to (not) arrive
    finally:
        await broker.stop()
    assert handled == ["PrintOrdered"], "only the order with the account's own part reaches the handler"
    assert consumer.dead_lettered >= 3


@pytest.mark.parametrize(
    "key",
    [
        "accounts/other/letters/L/parts/D/00000.pdf",
        "accounts/acc-1/../other/letters/L.pdf",
        "accounts/acc-1//x.pdf",
        "accounts/acc-10/letters/L.pdf",
        "accounts/acc-1\\..\\other.pdf",
        "/accounts/acc-1/x.pdf",
    ],
)
def test_key_outside_the_account_area_is_named(key: str) -> None:
    assert account_key_problem("acc-1", key) is not None
    assert account_key_problem("acc-1", "accounts/acc-1/letters/L/parts/D/00000.pdf") is None


def test_print_estimate_refuses_another_accounts_part(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from smartpost_print_dispatch.app import create_app
    from smartpost_print_dispatch.settings import Settings
    from smartpost_shared.testing.identity import caller_headers

    client = TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/pd.sqlite3")))
    body = {"items": [item("accounts/victim/letters/L/parts/D/00000.pdf").model_dump(mode="json")]}
    answer = client.post(
        "/estimates", json=body, headers=caller_headers("acc-1", audience="print-dispatch", roles=["release"])
    )
    assert answer.status_code == 422
    assert "gehört nicht zu diesem Konto" in answer.text
