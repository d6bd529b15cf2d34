"""Master-data read model (properties, units, contacts, contracts) built from ``masterdata.events``.

Several services need the same view of master data (assignment for candidates, portal for access windows,
notifier for e-mail addresses, print for postal addresses); each keeps its own copy in its own database, built by
this projection. Every row carries ``account_id`` and every query takes it: nothing crosses accounts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from smartpost_shared.contracts.masterdata import (
    ContactArchived,
    ContactUpserted,
    ContractUpserted,
    PropertyUpserted,
    UnitUpserted,
)

if TYPE_CHECKING:
    from datetime import date

    from sqlalchemy.engine import Connection

    from smartpost_shared.contracts.envelope import Envelope

masterdata_metadata = MetaData()

properties = Table(
    "md_properties",
    masterdata_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("property_id", String(128), primary_key=True),
    Column("reference", String(200), nullable=False),
    Column("name", String(300), nullable=False),
    Column("street", String(300), nullable=False, default=""),
    Column("postal_code", String(20), nullable=False, default=""),
    Column("city", String(200), nullable=False, default=""),
)

units = Table(
    "md_units",
    masterdata_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("unit_id", String(128), primary_key=True),
    Column("property_id", String(128), nullable=False),
    Column("number", String(100), nullable=False),
    Column("position", String(200), nullable=False, default=""),
)

contacts = Table(
    "md_contacts",
    masterdata_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("contact_id", String(128), primary_key=True),
    Column("reference_id", String(100)),
    Column("salutation", String(100), nullable=False, default=""),
    Column("first_name", String(200), nullable=False, default=""),
    Column("last_name", String(200), nullable=False, default=""),
    Column("company", String(300), nullable=False, default=""),
    Column("street", String(300), nullable=False, default=""),
    Column("postal_code", String(20), nullable=False, default=""),
    Column("city", String(200), nullable=False, default=""),
    Column("country", String(2), nullable=False, default="DE"),
    Column("extra_lines", Text, nullable=False, default="[]"),
    Column("email", String(320)),
    Column("channel_preference", String(20), nullable=False, default="online"),
    Column("portal_registered", Boolean, nullable=False, default=False),
    Column("archived", Boolean, nullable=False, default=False),
    Index("ix_md_contacts_reference", "account_id", "reference_id"),
)

contracts = Table(
    "md_contracts",
    masterdata_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("contract_id", String(128), primary_key=True),
    Column("contact_id", String(128), nullable=False),
    Column("unit_id", String(128), nullable=False),
    Column("property_id", String(128), nullable=False),
    Column("role", String(20), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date),
    Column("contract_number", String(100), nullable=False, default=""),
    Index("ix_md_contracts_contact", "account_id", "contact_id"),
    Index("ix_md_contracts_property", "account_id", "property_id"),
)


# One counter per account, raised by every applied master-data event (in the same transaction): a service may keep
# an account's snapshot in memory and reuse it while the revision is unchanged (one cheap query instead of
# reloading 20,000 contacts and contracts for every correction).
revisions = Table(
    "md_revisions",
    masterdata_metadata,
    Column("account_id", String(64), primary_key=True),
    Column("revision", Integer, nullable=False),
)


@dataclass(frozen=True)
class Contact:
    account_id: str
    contact_id: str
    reference_id: str | None
    salutation: str
    first_name: str
    last_name: str
    company: str
    street: str
    postal_code: str
    city: str
    country: str
    extra_lines: list[str]
    email: str | None
    channel_preference: str
    portal_registered: bool
    archived: bool

    @property
    def display_name(self) -> str:
        person = " ".join(p for p in (self.first_name, self.last_name) if p)
        return person or self.company

    def postal_lines(self) -> list[str]:
        """Address as printed in the window (without the sender line), max. six lines per DIN 5008."""
        lines: list[str] = []
        if self.company:
            lines.append(self.company)
        person = " ".join(p for p in (self.salutation, self.first_name, self.last_name) if p)
        if person.strip() and (self.first_name or self.last_name):
            lines.append(person)
        lines += [line for line in self.extra_lines if line]
        if self.street:
            lines.append(self.street)
        lines.append(f"{self.postal_code} {self.city}".strip())
        if self.country and self.country.upper() != "DE":
            lines.append(COUNTRY_NAMES.get(self.country.upper(), self.country.upper()))
        return [line for line in lines if line]


COUNTRY_NAMES = {
    "AT": "ÖSTERREICH",
    "CH": "SCHWEIZ",
    "FR": "FRANKREICH",
    "NL": "NIEDERLANDE",
    "IT": "ITALIEN",
    "ES": "SPANIEN",
    "PL": "POLEN",
    "BE": "BELGIEN",
    "DK": "DÄNEMARK",
    "LU": "LUXEMBURG",
    "GB": "VEREINIGTES KÖNIGREICH",
    "US": "USA",
    "CZ": "TSCHECHIEN",
}


@dataclass(frozen=True)
class Contract:
    account_id: str
    contract_id: str
    contact_id: str
    unit_id: str
    property_id: str
    role: str
    start: date
    end: date | None
    contract_number: str

    def valid_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Property:
    account_id: str
    property_id: str
    reference: str
    name: str
    street: str = ""
    postal_code: str = ""
    city: str = ""


@dataclass(frozen=True)
class Unit:
    account_id: str
    unit_id: str
    property_id: str
    number: str
    position: str = ""


@dataclass
class AccountSnapshot:
    """Everything of one account, loaded at once for in-memory matching."""

    account_id: str
    properties: dict[str, Property] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    contracts: list[Contract] = field(default_factory=list)


def create_masterdata_tables(conn_or_engine: Any) -> None:
    masterdata_metadata.create_all(conn_or_engine)


def _upsert(conn: Connection, table: Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    condition = and_(*(table.c[k] == v for k, v in keys.items()))
    if conn.execute(select(table.c[next(iter(keys))]).where(condition)).first() is None:
        conn.execute(insert(table).values(**keys, **values))
    else:
        conn.execute(update(table).where(condition).values(**values))


def _bump_revision(conn: Connection, account: str) -> None:
    raised = conn.execute(
        update(revisions).where(revisions.c.account_id == account).values(revision=revisions.c.revision + 1)
    )
    if raised.rowcount == 0:
        conn.execute(insert(revisions).values(account_id=account, revision=1))


def _row(account: str, payload: Any) -> tuple[Table, dict[str, Any], dict[str, Any]] | None:
    """The table, key and values an upsert event writes (None for ContactArchived and unknown payloads)."""
    if isinstance(payload, PropertyUpserted):
        return (
            properties,
            {"account_id": account, "property_id": payload.property_id},
            {
                "reference": payload.reference,
                "name": payload.name,
                "street": payload.address.street,
                "postal_code": payload.address.postal_code,
                "city": payload.address.city,
            },
        )
    if isinstance(payload, UnitUpserted):
        return (
            units,
            {"account_id": account, "unit_id": payload.unit_id},
            {"property_id": payload.property_id, "number": payload.number, "position": payload.position},
        )
    if isinstance(payload, ContactUpserted):
        return (
            contacts,
            {"account_id": account, "contact_id": payload.contact_id},
            {
                "reference_id": payload.reference_id,
                "salutation": payload.salutation,
                "first_name": payload.first_name,
                "last_name": payload.last_name,
                "company": payload.company,
                "street": payload.address.street,
                "postal_code": payload.address.postal_code,
                "city": payload.address.city,
                "country": payload.address.country.upper(),
                "extra_lines": json.dumps(payload.address.extra_lines),
                "email": str(payload.email) if payload.email else None,
                "channel_preference": payload.channel_preference.value,
                "portal_registered": payload.portal_registered,
                "archived": payload.archived,
            },
        )
    if isinstance(payload, ContractUpserted):
        return (
            contracts,
            {"account_id": account, "contract_id": payload.contract_id},
            {
                "contact_id": payload.contact_id,
                "unit_id": payload.unit_id,
                "property_id": payload.property_id,
                "role": payload.role.value,
                "start": payload.start,
                "end": payload.end,
                "contract_number": payload.contract_number,
            },
        )
    return None


def _archive(conn: Connection, account: str, contact_ids: list[str]) -> None:
    conn.execute(
        update(contacts)
        .where(and_(contacts.c.account_id == account, contacts.c.contact_id.in_(contact_ids)))
        .values(archived=True)
    )


def apply_masterdata(conn: Connection, envelope: Envelope) -> None:
    """Apply one master-data event to the read model (idempotent: upserts are absolute, not deltas)."""
    account = envelope.account_id
    payload = envelope.payload
    _bump_revision(conn, account)
    row = _row(account, payload)
    if row is not None:
        _upsert(conn, *row)
    elif isinstance(payload, ContactArchived):
        _archive(conn, account, [payload.contact_id])


def _bulk_upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], key_names: list[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for many rows in one statement execution (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        pg = postgresql_insert(table)
        pg_values = {c.name: pg.excluded[c.name] for c in table.columns if c.name not in key_names}
        conn.execute(pg.on_conflict_do_update(index_elements=key_names, set_=pg_values), rows)
        return
    lite = sqlite_insert(table)
    lite_values = {c.name: lite.excluded[c.name] for c in table.columns if c.name not in key_names}
    conn.execute(lite.on_conflict_do_update(index_elements=key_names, set_=lite_values), rows)


def apply_masterdata_batch(conn: Connection, envelopes: list[Envelope]) -> None:
    """Apply many master-data events in order with bulk statements (one per run of the same kind).

    The same result as :func:`apply_masterdata` one by one: consecutive upserts of one table become one
    ``INSERT ... ON CONFLICT DO UPDATE`` (the last event per key wins, as it would one by one), an archive between
    two upserts keeps its place. The account's revision is raised once per account.
    """
    run_table: Table | None = None
    run: dict[tuple[Any, ...], dict[str, Any]] = {}
    archived: dict[str, list[str]] = {}

    def flush() -> None:
        nonlocal run_table, run
        if run_table is not None and run:
            keys = [c.name for c in run_table.primary_key.columns]
            _bulk_upsert(conn, run_table, list(run.values()), keys)
        for account, ids in archived.items():
            _archive(conn, account, ids)
        run_table, run = None, {}
        archived.clear()

    for account in dict.fromkeys(e.account_id for e in envelopes):
        _bump_revision(conn, account)
    for envelope in envelopes:
        row = _row(envelope.account_id, envelope.payload)
        if row is None:
            if isinstance(envelope.payload, ContactArchived):
                if run:
                    flush()
                archived.setdefault(envelope.account_id, []).append(envelope.payload.contact_id)
            continue
        table, key, values = row
        if table is not run_table or archived:
            flush()
            run_table = table
        run[tuple(key.values())] = {**key, **values}  # every column: one statement shape for all rows
    flush()


def _contact(row: Any) -> Contact:
    data = dict(row._mapping)  # noqa: SLF001 - SQLAlchemy's documented row mapping accessor
    data["extra_lines"] = json.loads(data["extra_lines"] or "[]")
    return Contact(**data)


def _contract(row: Any) -> Contract:
    return Contract(**dict(row._mapping))  # noqa: SLF001


class MasterDataReader:
    """Queries on the read model; every method is scoped to one account."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def contact(self, account_id: str, contact_id: str) -> Contact | None:
        row = self.conn.execute(
            select(contacts).where(and_(contacts.c.account_id == account_id, contacts.c.contact_id == contact_id))
        ).first()
        return _contact(row) if row else None

    def contacts(self, account_id: str, contact_ids: list[str] | None = None) -> list[Contact]:
        query = select(contacts).where(contacts.c.account_id == account_id)
        if contact_ids is not None:
            query = query.where(contacts.c.contact_id.in_(contact_ids))
        return [_contact(r) for r in self.conn.execute(query.order_by(contacts.c.contact_id))]

    def search_contacts(self, account_id: str, text: str, limit: int = 20) -> list[Contact]:
        pattern = f"%{text.strip().lower()}%"
        query = (
            select(contacts)
            .where(contacts.c.account_id == account_id)
            .where(
                or_(
                    contacts.c.last_name.ilike(pattern),
                    contacts.c.first_name.ilike(pattern),
                    contacts.c.company.ilike(pattern),
                    contacts.c.reference_id.ilike(pattern),
                    contacts.c.email.ilike(pattern),
                )
            )
            .order_by(contacts.c.last_name, contacts.c.first_name)
            .limit(limit)
        )
        return [_contact(r) for r in self.conn.execute(query)]

    def contracts_of_contact(self, account_id: str, contact_id: str) -> list[Contract]:
        query = select(contracts).where(
            and_(contracts.c.account_id == account_id, contracts.c.contact_id == contact_id)
        )
        return [_contract(r) for r in self.conn.execute(query.order_by(contracts.c.start))]

    def contracts_of_property(self, account_id: str, property_id: str) -> list[Contract]:
        query = select(contracts).where(
            and_(contracts.c.account_id == account_id, contracts.c.property_id == property_id)
        )
        return [_contract(r) for r in self.conn.execute(query.order_by(contracts.c.start))]

    def property(self, account_id: str, property_id: str) -> Property | None:
        row = self.conn.execute(
            select(properties).where(
                and_(properties.c.account_id == account_id, properties.c.property_id == property_id)
            )
        ).first()
        return Property(**dict(row._mapping)) if row else None  # noqa: SLF001

    def properties(self, account_id: str) -> list[Property]:
        query = select(properties).where(properties.c.account_id == account_id).order_by(properties.c.name)
        return [Property(**dict(r._mapping)) for r in self.conn.execute(query)]  # noqa: SLF001

    def unit(self, account_id: str, unit_id: str) -> Unit | None:
        row = self.conn.execute(
            select(units).where(and_(units.c.account_id == account_id, units.c.unit_id == unit_id))
        ).first()
        return Unit(**dict(row._mapping)) if row else None  # noqa: SLF001

    def revision(self, account_id: str) -> int:
        """How often this account's master data changed (0: never); a snapshot stays valid while it is unchanged."""
        found = self.conn.execute(select(revisions.c.revision).where(revisions.c.account_id == account_id)).first()
        return int(found[0]) if found else 0

    def snapshot(self, account_id: str) -> AccountSnapshot:
        snap = AccountSnapshot(account_id)
        for r in self.conn.execute(select(properties).where(properties.c.account_id == account_id)):
            p = Property(**dict(r._mapping))  # noqa: SLF001
            snap.properties[p.property_id] = p
        for r in self.conn.execute(select(units).where(units.c.account_id == account_id)):
            u = Unit(**dict(r._mapping))  # noqa: SLF001
            snap.units[u.unit_id] = u
        for r in self.conn.execute(select(contacts).where(contacts.c.account_id == account_id)):
            c = _contact(r)
            snap.contacts[c.contact_id] = c
        snap.contracts = [
            _contract(r) for r in self.conn.execute(select(contracts).where(contracts.c.account_id == account_id))
        ]
        return snap


def forget_account(conn: Connection, account_id: str) -> None:
    """Remove an account's master data (GDPR erasure of a whole tenant)."""
    for table in (contracts, units, contacts, properties):
        conn.execute(delete(table).where(table.c.account_id == account_id))
    _bump_revision(conn, account_id)
