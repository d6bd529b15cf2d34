"""Joins what the services return into what one screen shows (names instead of ids).

No business rules here: every state, warning and decision comes from the services as they sent it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from smartpost_gateway import texts
from smartpost_gateway.adapters.http import Caller, ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from smartpost_gateway.adapters.assignment import AssignmentClient

Json = dict[str, Any]
LOOKUP_CONCURRENCY = 8


def contact_name(contact: Json | None, contact_id: str | None = None) -> str:
    if not contact:
        return contact_id or "–"
    person = " ".join(p for p in (contact.get("first_name", ""), contact.get("last_name", "")) if p).strip()
    if contact.get("display_name"):
        return str(contact["display_name"])
    company = str(contact.get("company") or "")
    if person and company:
        return f"{person} ({company})"
    return person or company or str(contact.get("contact_id", contact_id or "–"))


def contact_address(contact: Json | None) -> str:
    if not contact:
        return ""
    if contact.get("postal_lines"):
        return ", ".join(str(line) for line in contact["postal_lines"][1:] or contact["postal_lines"])
    nested = contact.get("address")
    address: Json = nested if isinstance(nested, dict) else contact
    street = str(address.get("street", "") or "")
    city = " ".join(p for p in (str(address.get("postal_code", "") or ""), str(address.get("city", "") or "")) if p)
    return ", ".join(p for p in (street, city) if p)


@dataclass
class MasterData:
    """Names of properties, units and contacts for one page, fetched once and concurrently."""

    properties: dict[str, Json] = field(default_factory=dict)
    units: dict[str, Json] = field(default_factory=dict)
    contacts: dict[str, Json] = field(default_factory=dict)
    unavailable: bool = False

    def property_name(self, property_id: str | None) -> str:
        if not property_id:
            return "–"
        prop = self.properties.get(property_id)
        return str(prop.get("name") or prop.get("reference") or property_id) if prop else property_id

    def unit_label(self, unit_id: str | None) -> str:
        if not unit_id:
            return "–"
        unit = self.units.get(unit_id)
        if not unit:
            return unit_id
        position = str(unit.get("position") or "")
        return f"{unit.get('number', unit_id)} ({position})" if position else str(unit.get("number", unit_id))

    def contact(self, contact_id: str | None) -> Json | None:
        return self.contacts.get(contact_id) if contact_id else None

    def contact_name(self, contact_id: str | None) -> str:
        return contact_name(self.contact(contact_id), contact_id)

    def contact_address(self, contact_id: str | None) -> str:
        return contact_address(self.contact(contact_id))


async def load_master_data(
    assignment: AssignmentClient,
    caller: Caller,
    *,
    contact_ids: set[str] | None = None,
    property_ids: set[str] | None = None,
) -> MasterData:
    data = MasterData()
    try:
        for prop in await assignment.properties(caller):
            data.properties[str(prop["property_id"])] = prop
    except ServiceError:
        data.unavailable = True
        return data
    semaphore = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def units_of(property_id: str) -> None:
        async with semaphore:
            try:
                for unit in await assignment.units(caller, property_id):
                    data.units[str(unit["unit_id"])] = unit
            except ServiceError:
                data.unavailable = True

    async def contact_of(contact_id: str) -> None:
        async with semaphore:
            try:
                data.contacts[contact_id] = await assignment.contact(caller, contact_id)
            except ServiceError:
                data.unavailable = True

    await asyncio.gather(
        *(units_of(p) for p in sorted(property_ids or set()) if p in data.properties),
        *(contact_of(c) for c in sorted(contact_ids or set())),
    )
    return data


def letter_contact_ids(letter: Json) -> set[str]:
    ids: set[str] = set()
    for doc in letter.get("documents", []):
        for part in doc.get("parts", []):
            assignment = part.get("assignment") or {}
            if assignment.get("contact_id"):
                ids.add(str(assignment["contact_id"]))
            ids.update(str(c["contact_id"]) for c in assignment.get("candidates", []) if c.get("contact_id"))
        for warning in doc.get("warnings", []):
            if warning.get("contact_id"):
                ids.add(str(warning["contact_id"]))
    ids.update(str(i["contact_id"]) for i in letter.get("items", []))
    if letter.get("print_order"):
        ids.update(str(m["contact_id"]) for m in letter["print_order"].get("mailpieces", []))
    return ids


def letter_property_ids(letter: Json) -> set[str]:
    ids: set[str] = set()
    if letter.get("property_id"):
        ids.add(str(letter["property_id"]))
    for doc in letter.get("documents", []):
        for part in doc.get("parts", []):
            assignment = part.get("assignment") or {}
            if assignment.get("property_id"):
                ids.add(str(assignment["property_id"]))
        for warning in doc.get("warnings", []):
            if warning.get("property_id"):
                ids.add(str(warning["property_id"]))
    ids.update(str(i["property_id"]) for i in letter.get("items", []) if i.get("property_id"))
    return ids


def all_parts(letter: Json) -> list[Json]:
    return [part for doc in letter.get("documents", []) for part in doc.get("parts", [])]


def letter_warnings(letter: Json) -> list[Json]:
    """Assignment warnings that concern the letter as a whole (not one part), e.g. contacts without a document."""
    return [w for doc in letter.get("documents", []) for w in doc.get("warnings", []) if not w.get("part_id")]


# The review list, paged (a serial letter can hold thousands of individual letters).
REVIEW_PAGE_SIZE = 50
REVIEW_FILTERS = {
    "review": "Zur Prüfung",
    "unassigned": "Nicht zugeordnet",
    "needs_review": "Vorschlag prüfen",
    "assigned": "Zugeordnet",
    "discarded": "Verworfen",
    "deferred": "Zurückgestellt",
    "warnings": "Mit Warnung",
    "all": "Alle",
}


@dataclass(frozen=True)
class ReviewQuery:
    part_filter: str
    property_id: str | None
    offset: int

    def url(self, base: str, **changes: Any) -> str:
        """The review tab's URL with some parameters changed (filter, liegenschaft, ab)."""
        values = {"filter": self.part_filter, "liegenschaft": self.property_id or "", "ab": self.offset}
        values.update(changes)
        query = "&".join(f"{k}={quote(str(v))}" for k, v in values.items() if v not in ("", None, 0) or k == "filter")
        return f"{base}?{query}"


def review_query(params: Mapping[str, str]) -> ReviewQuery:
    part_filter = params.get("filter", "all")
    if part_filter not in REVIEW_FILTERS:
        part_filter = "all"
    try:
        offset = max(0, int(params.get("ab", "0")))
    except ValueError:
        offset = 0
    return ReviewQuery(part_filter, params.get("liegenschaft") or None, offset)


def page_property_ids(page: Json | None) -> set[str]:
    if not page:
        return set()
    return {str(p["property_id"]) for p in page.get("properties", []) if p.get("property_id")}


async def add_audit_master_data(
    master: MasterData, assignment: AssignmentClient, caller: Caller, entries: list[Json]
) -> None:
    """Contacts and properties the Verlauf names but the letter no longer does (earlier assignments)."""
    contacts: set[str] = set()
    properties: set[str] = set()
    for entry in entries:
        details = entry.get("details") or {}
        if details.get("contact_id") and details["contact_id"] not in master.contacts:
            contacts.add(str(details["contact_id"]))
        if details.get("property_id") and details.get("unit_id") and details["unit_id"] not in master.units:
            properties.add(str(details["property_id"]))
    if not contacts and not properties:
        return
    extra = await load_master_data(assignment, caller, contact_ids=contacts, property_ids=properties)
    master.contacts.update(extra.contacts)
    master.units.update(extra.units)
    master.properties.update(extra.properties)


def staff_namer(staff: dict[str, Any]) -> Callable[[str], str]:
    """Login -> the staff member's name (the login when no name is configured)."""

    def staff_name(login: str) -> str:
        user = staff.get(login)
        name = getattr(user, "name", None) if user is not None else None
        return str(name) if name else login

    return staff_name


def audit_names(master: MasterData, parts: list[Json], staff: dict[str, Any]) -> texts.AuditNames:
    """Names for the Verlauf: staff by login, contacts/properties/units from master data, parts by number."""
    numbers = {str(p.get("part_id")): index for index, p in enumerate(parts, start=1)}
    staff_name = staff_namer(staff)

    def contact(contact_id: str | None) -> str:
        return master.contact_name(contact_id) if contact_id else "niemandem"

    return texts.AuditNames(
        staff_name=staff_name,
        contact_name=contact,
        property_name=master.property_name,
        unit_label=master.unit_label,
        part_number=lambda part_id: numbers.get(str(part_id)) if part_id else None,
    )
