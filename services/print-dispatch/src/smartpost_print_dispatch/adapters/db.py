"""The service's own tables: print orders, mailpieces (with their status history) and portal views."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

orders = Table(
    "pd_orders",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("print_order_id", String(128), primary_key=True),
    Column("letter_id", String(128), nullable=False),
    Column("title", String(300), nullable=False),
    Column("options", Text, nullable=False),
    Column("items", Text, nullable=False),
    Column("excluded", Text, nullable=False, default="[]"),
    Column("ordered_by", String(200), nullable=False),
    Column("ordered_at", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(36), nullable=False),
    Column("causation_id", String(36), nullable=False),
    # Digital-first fallback: the day unopened letters go out on paper; done once decided.
    Column("fallback_due", Date),
    Column("fallback_done", Boolean, nullable=False, default=False),
    Index("ix_pd_orders_letter", "account_id", "letter_id"),
    Index("ix_pd_orders_fallback", "fallback_done", "fallback_due"),
)

item_views = Table(
    "pd_item_views",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("item_id", String(128), primary_key=True),
    Column("first_viewed_at", DateTime(timezone=True), nullable=False),
)

# Whether the recipient can read an item in the portal (DocumentPublished.visible_on_publication): the portal
# decides with the contract's access window and the letter's billing period. An item the portal hides goes on
# paper under every recipient filter (a former owner registered in the portal must not lose the letter).
item_portal_visibility = Table(
    "pd_item_portal_visibility",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("item_id", String(128), primary_key=True),
    Column("readable", Boolean, nullable=False),
)

# stage (internal work state): planned -> ready -> submitting -> tracking -> final
mailpieces = Table(
    "pd_mailpieces",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mailpiece_id", String(128), primary_key=True),
    Column("print_order_id", String(128), nullable=False),
    Column("letter_id", String(128), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("item_ids", Text, nullable=False),
    Column("segments", Text, nullable=False),
    # Order of the mailpiece within its order's plan (envelopes and batches follow the letter's order).
    Column("position", Integer, nullable=False, default=0),
    Column("part_index", Integer, nullable=False, default=1),
    Column("part_count", Integer, nullable=False, default=1),
    Column("provider", String(100), nullable=False),
    Column("status", String(30), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("provider_ref", String(200)),
    Column("provider_status", String(50)),
    Column("tracking_number", String(100)),
    Column("pages", Integer),
    Column("sheets", Integer),
    Column("letter_class", String(20)),
    Column("envelope", String(4)),
    Column("cost_cents", Integer),
    Column("reason", Text),
    Column("findings", Text, nullable=False, default="[]"),
    Column("address_lines", Text, nullable=False, default="[]"),
    Column("print_key", String(500)),
    Column("batch_id", String(100)),
    Column("submit_attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_polled_at", DateTime(timezone=True)),
    Column("event_seq", Integer, nullable=False, default=0),
    Column("correlation_id", String(36), nullable=False),
    Column("causation_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_pd_mailpieces_stage", "stage", "provider"),
    Index("ix_pd_mailpieces_order", "account_id", "print_order_id"),
    Index("ix_pd_mailpieces_letter", "account_id", "letter_id"),
    Index("ix_pd_mailpieces_ref", "provider", "provider_ref"),
)

status_history = Table(
    "pd_status_history",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mailpiece_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("status", String(30), nullable=False),
    Column("provider_status", String(50)),
    Column("reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
)
