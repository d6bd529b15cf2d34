"""Submission of ready mailpieces: several at once to a provider with idempotency keys, each exactly once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import insert, select

from smartpost_print_dispatch.adapters.db import mailpieces, metadata, orders
from smartpost_print_dispatch.adapters.providers.base import SubmitResult
from smartpost_print_dispatch.application import PrintDispatch
from smartpost_print_dispatch.domain.geometry import PINGEN
from smartpost_print_dispatch.settings import Settings
from smartpost_shared.contracts.letters import PrintOptions
from smartpost_shared.db import create_platform_tables, make_engine

ACCOUNT = "acc-submit"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Store:
    def get(self, key: str) -> bytes:
        return b"%PDF-1.7 " + key.encode()


class SlowProvider:
    """Answers after a pause; records how many submissions were in flight at once and every mailpiece seen."""

    profile = PINGEN
    batches_orders = False

    def __init__(self, name: str, *, honours_idempotency: bool) -> None:
        self.name = name
        self.honours_idempotency = honours_idempotency
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen: list[str] = []

    async def submit(self, batch_id: str, submissions):
        del batch_id
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.02)
        self.in_flight -= 1
        self.seen.extend(s.mailpiece_id for s in submissions)
        return [SubmitResult(s.mailpiece_id, f"ref-{s.mailpiece_id}", "submitted") for s in submissions]


def _dispatch(sqlite_url: str, provider: SlowProvider, pieces: int) -> PrintDispatch:
    engine = make_engine(sqlite_url)
    create_platform_tables(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(orders).values(
                account_id=ACCOUNT,
                print_order_id="po1",
                letter_id="L1",
                title="Abrechnung",
                options=PrintOptions(provider=provider.name).model_dump_json(),
                items="[]",
                ordered_by="staff:test",
                ordered_at=NOW,
                correlation_id="00000000-0000-0000-0000-000000000001",
                causation_id="00000000-0000-0000-0000-000000000002",
            )
        )
        conn.execute(
            insert(mailpieces),
            [
                {
                    "account_id": ACCOUNT,
                    "mailpiece_id": f"mp{i:03d}",
                    "print_order_id": "po1",
                    "letter_id": "L1",
                    "contact_id": f"c{i}",
                    "item_ids": json.dumps([f"i{i}"]),
                    "segments": "[]",
                    "position": i,
                    "provider": provider.name,
                    "status": "created",
                    "stage": "ready",
                    "pages": 2,
                    "sheets": 1,
                    "letter_class": "standard",
                    "envelope": "C5",
                    "address_lines": json.dumps(["Erika Muster", "Weg 1", "50667 Köln"]),
                    "print_key": f"accounts/{ACCOUNT}/print/mp{i:03d}.pdf",
                    "correlation_id": "00000000-0000-0000-0000-000000000001",
                    "causation_id": "00000000-0000-0000-0000-000000000002",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(pieces)
            ],
        )
    settings = Settings(database_url=sqlite_url, submit_concurrency=4)
    return PrintDispatch(engine, Store(), {provider.name: provider}, settings, clock=lambda: NOW)  # type: ignore[arg-type]


def _stages(dispatch: PrintDispatch) -> set[str]:
    with dispatch.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(mailpieces.c.stage))}


async def test_idempotent_provider_gets_several_submissions_at_once_each_mailpiece_once(sqlite_url):
    provider = SlowProvider("hybridpost", honours_idempotency=True)
    dispatch = _dispatch(sqlite_url, provider, 20)
    assert await dispatch.submit_ready() == 20
    assert provider.most_in_flight == 4  # settings.submit_concurrency
    assert sorted(provider.seen) == [f"mp{i:03d}" for i in range(20)]
    assert _stages(dispatch) == {"tracking"}
    assert await dispatch.submit_ready() == 0  # nothing is submitted twice


async def test_provider_without_idempotency_keys_gets_one_submission_at_a_time(sqlite_url):
    provider = SlowProvider("plainpost", honours_idempotency=False)
    dispatch = _dispatch(sqlite_url, provider, 6)
    assert await dispatch.submit_ready() == 6
    assert provider.most_in_flight == 1
    assert sorted(provider.seen) == [f"mp{i:03d}" for i in range(6)]
