"""Master-data queries the shared reader does not offer (staff contact search by property, units of a property)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, func, or_, select

from smartpost_shared.masterdata import Contact, MasterDataReader, Unit, contacts, contracts, properties, units

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def _contact_query(conn: Connection, account_id: str, text: str, property_id: str | None) -> Select[Any]:
    """Contacts of one account matching ``text`` (case-insensitive).

    Matches name, company, reference id, e-mail or the contact's street, or a property the contact has a contract in
    (its name, reference or street).
    """
    del conn
    query = select(contacts.c.contact_id).where(contacts.c.account_id == account_id)
    text = text.strip()
    if text:
        pattern = f"%{text}%"
        in_matching_property = select(contracts.c.contact_id).where(
            and_(
                contracts.c.account_id == account_id,
                contracts.c.property_id.in_(
                    select(properties.c.property_id).where(
                        and_(
                            properties.c.account_id == account_id,
                            or_(
                                properties.c.name.ilike(pattern),
                                properties.c.reference.ilike(pattern),
                                properties.c.street.ilike(pattern),
                            ),
                        )
                    )
                ),
            )
        )
        query = query.where(
            or_(
                contacts.c.street.ilike(pattern),
                contacts.c.contact_id.in_(in_matching_property),
                contacts.c.last_name.ilike(pattern),
                contacts.c.first_name.ilike(pattern),
                contacts.c.company.ilike(pattern),
                contacts.c.reference_id.ilike(pattern),
                contacts.c.email.ilike(pattern),
                contacts.c.contact_id.ilike(pattern),
                (contacts.c.first_name + " " + contacts.c.last_name).ilike(pattern),
            )
        )
    if property_id:
        members = select(contracts.c.contact_id).where(
            and_(contracts.c.account_id == account_id, contracts.c.property_id == property_id)
        )
        query = query.where(contacts.c.contact_id.in_(members))
    return query


def search_contacts(
    conn: Connection, account_id: str, text: str, *, property_id: str | None = None, limit: int = 20, offset: int = 0
) -> list[Contact]:
    """Contacts of one account matching ``text`` (see :func:`_contact_query`), one page of them.

    Sorted by name, then contact id (a stable order, so pages with ``offset`` neither skip nor repeat anyone).
    """
    query = (
        _contact_query(conn, account_id, text, property_id)
        .order_by(contacts.c.last_name, contacts.c.first_name, contacts.c.company, contacts.c.contact_id)
        .limit(limit)
        .offset(offset)
    )
    ids = [str(r[0]) for r in conn.execute(query)]
    found = {c.contact_id: c for c in MasterDataReader(conn).contacts(account_id, ids)}
    return [found[i] for i in ids if i in found]


def count_contacts(conn: Connection, account_id: str, text: str, *, property_id: str | None = None) -> int:
    """How many contacts :func:`search_contacts` finds in all pages."""
    inner = _contact_query(conn, account_id, text, property_id).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def units_of_property(conn: Connection, account_id: str, property_id: str) -> list[Unit]:
    rows = conn.execute(
        select(units)
        .where(and_(units.c.account_id == account_id, units.c.property_id == property_id))
        .order_by(units.c.number)
    )
    return [Unit(**dict(r._mapping)) for r in rows]  # noqa: SLF001 - SQLAlchemy's documented accessor


def known_ids(conn: Connection, account_id: str) -> tuple[set[str], dict[str, str], set[str]]:
    """Ids of existing properties, units (-> property) and contacts of one account, for import validation."""
    from smartpost_shared.masterdata import properties  # noqa: PLC0415

    props = {
        str(r[0]) for r in conn.execute(select(properties.c.property_id).where(properties.c.account_id == account_id))
    }
    unit_map = {
        str(r[0]): str(r[1])
        for r in conn.execute(select(units.c.unit_id, units.c.property_id).where(units.c.account_id == account_id))
    }
    contact_ids = {
        str(r[0]) for r in conn.execute(select(contacts.c.contact_id).where(contacts.c.account_id == account_id))
    }
    return props, unit_map, contact_ids
