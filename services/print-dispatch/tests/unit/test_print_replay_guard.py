"""Replay guard: a print order older than print_order_max_age_hours is planned for staff, never submitted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, select

from smartpost_print_dispatch.adapters.db import mailpieces, metadata, orders
from smartpost_print_dispatch.application import PrintDispatch
from smartpost_print_dispatch.domain.geometry import PINGEN
from smartpost_print_dispatch.settings import Settings
from smartpost_shared.contracts.common import PostalAddress
from smartpost_shared.contracts.envelope import make_envelope, parse_envelope
from smartpost_shared.contracts.letters import PrintOptions, PrintOrdered, RecipientFilter, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.db import create_platform_tables, outbox
from smartpost_shared.masterdata import apply_masterdata, create_masterdata_tables
from smartpost_shared.storage import MemoryStore

ACCOUNT = "acc-replay"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Provider:
    name = "filedrop"
    profile = PINGEN
    batches_orders = True


def _order(order_id: str, contact: str, recipient_filter: RecipientFilter = RecipientFilter.ALL) -> PrintOrdered:
    item = ReleasedItem(
        item_id=f"i-{order_id}",
        document_id="d1",
        part_id=f"p-{order_id}",
        contact_id=contact,
        property_id="prop-1",
        unit_id="unit-1",
        storage_key=f"accounts/{ACCOUNT}/letters/l1/parts/d1/{order_id}.pdf",
        page_count=2,
    )
    return PrintOrdered(
        letter_id=f"L-{order_id}",
        print_order_id=order_id,
        title="Hausgeldabrechnung",
        items=[item],
        ordered_by="staff",
        options=PrintOptions(recipient_filter=recipient_filter),
    )


def _dispatch(tmp_path, **settings: object) -> PrintDispatch:
    url = f"sqlite:///{tmp_path / 'pd.sqlite3'}"
    engine = create_engine(url)
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        upsert = ContactUpserted(
            contact_id="c1",
            last_name="Weiß",
            address=PostalAddress(street="Weg 1", postal_code="10115", city="Berlin"),
        )
        apply_masterdata(conn, make_envelope(upsert, account_id=ACCOUNT, producer="erp"))
    return PrintDispatch(
        engine, MemoryStore(), {"filedrop": Provider()}, Settings(database_url=url, **settings), clock=lambda: NOW
    )


def _consume(dispatch: PrintDispatch, order: PrintOrdered, occurred_at: datetime) -> None:
    envelope = make_envelope(order, account_id=ACCOUNT, producer="letters", occurred_at=occurred_at)
    with dispatch.engine.begin() as conn:
        dispatch.on_print_ordered(parse_envelope(envelope.to_bytes()), conn)


def _pieces(dispatch: PrintDispatch, order_id: str) -> list[dict[str, object]]:
    with dispatch.engine.connect() as conn:
        rows = conn.execute(select(mailpieces).where(mailpieces.c.print_order_id == order_id)).mappings()
        return [dict(r) for r in rows]


def test_an_old_print_order_is_held_for_staff_and_a_fresh_one_is_planned_for_submission(tmp_path):
    dispatch = _dispatch(tmp_path)
    _consume(dispatch, _order("po-old", "c1"), NOW - timedelta(hours=73))
    _consume(dispatch, _order("po-fresh", "c1"), NOW - timedelta(hours=71))
    [held] = _pieces(dispatch, "po-old")
    assert (held["status"], held["stage"]) == ("action_required", "final")  # never prepared nor submitted
    assert str(held["reason"]).startswith("Veraltet – bitte prüfen: Ereignis vom 27.11.2026 11:00 UTC ist 73 Std.")
    [fresh] = _pieces(dispatch, "po-fresh")
    assert (fresh["status"], fresh["stage"]) == ("created", "planned")
    # letters learns it like any other problem (PrintJobStatusChanged with the reason): shown at the letter
    with dispatch.engine.connect() as conn:
        events = [parse_envelope(r[0]) for r in conn.execute(select(outbox.c.body))]
    held_events = [e.payload for e in events if getattr(e.payload, "print_order_id", None) == "po-old"]
    assert [e.status.value for e in held_events] == ["created", "action_required"]
    assert held_events[-1].reason == held["reason"]
    # staff may cancel the held mailpiece (the existing route for action_required)
    assert dispatch.prepare_pending() <= 1
    assert _pieces(dispatch, "po-old")[0]["stage"] == "final"


def test_an_old_not_viewed_order_schedules_no_fallback_and_the_guard_can_be_switched_off(tmp_path):
    dispatch = _dispatch(tmp_path)
    _consume(dispatch, _order("po-nv", "c1", RecipientFilter.NOT_VIEWED), NOW - timedelta(days=20))
    with dispatch.engine.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.print_order_id == "po-nv")).mappings().one()
    assert row["fallback_done"] is True
    assert row["fallback_due"] is None
    assert json.loads(row["excluded"]) == []
    assert [p["status"] for p in _pieces(dispatch, "po-nv")] == ["action_required"]
    assert dispatch.run_fallback(NOW.date() + timedelta(days=30)) == 0

    (tmp_path / "off").mkdir()
    off = _dispatch(tmp_path / "off", print_order_max_age_hours=0)
    _consume(off, _order("po-off", "c1"), NOW - timedelta(days=20))
    assert [p["stage"] for p in _pieces(off, "po-off")] == ["planned"]
