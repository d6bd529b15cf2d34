"""Parsing and validating master-data exports (CSV or JSON, as ERPs export them) into master-data events.

Pure: bytes in, events or row-level errors out. All-or-nothing: a caller publishes the events only when
``errors`` is empty. The format is documented in the README ("Importer") with examples under ``examples/``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from smartpost_assignment.domain.normalize import fold
from smartpost_shared.contracts.common import ChannelPreference, ContractRole, PostalAddress
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted

if TYPE_CHECKING:
    from smartpost_shared.contracts.base import EventPayload

RECORD_TYPES = {
    "property": "property",
    "properties": "property",
    "liegenschaft": "property",
    "unit": "unit",
    "units": "unit",
    "einheit": "unit",
    "contact": "contact",
    "contacts": "contact",
    "kontakt": "contact",
    "contract": "contract",
    "contracts": "contract",
    "vertrag": "contract",
}
ID_FIELD = {"property": "property_id", "unit": "unit_id", "contact": "contact_id", "contract": "contract_id"}
REQUIRED = {
    "property": ("property_id", "reference", "name"),
    "unit": ("unit_id", "property_id", "number"),
    "contact": ("contact_id",),
    "contract": ("contact_id", "unit_id", "role", "start"),  # contract_id is derived when the ERP has none
}
# A file may carry master data of several accounts in this column (CSV) or key (JSON record / top level).
ACCOUNT_FIELD = "account_id"
ORDER = ("property", "unit", "contact", "contract")
ROLES = {"owner": "owner", "eigentuemer": "owner", "eigentumer": "owner", "tenant": "tenant", "mieter": "tenant"}
CHANNELS = {"post": "post", "postalisch": "post", "brief": "post", "online": "online", "portal": "online",
            "email": "online", "e mail": "online"}  # fmt: skip
TRUE_WORDS = {"1", "true", "ja", "yes", "x", "j", "wahr"}
FALSE_WORDS = {"", "0", "false", "nein", "no", "n", "falsch"}


class ImportFormatError(ValueError):
    """The file as a whole cannot be read (not CSV/JSON, no record_type column, foreign accounts ...)."""


def derived_contract_id(data: dict[str, Any]) -> str:
    """A stable contract id for an ERP that exports none.

    The same contact, unit, role and start give the same id on every import (re-importing updates, never
    duplicates).
    """
    try:
        start = str(_date(data, "start") or "")
    except ValueError:
        start = _text(data, "start")  # reported as a row error later; the id only has to be stable
    role = ROLES.get(fold(_text(data, "role")), _text(data, "role"))
    key = "\0".join((_text(data, "contact_id"), _text(data, "unit_id"), role, start))
    return "V-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RowError:
    row: str  # "line 7" (CSV) or "contacts[3]" / "record 5" (JSON)
    record_type: str
    record_id: str
    message: str


@dataclass
class KnownIds:
    """Master data that already exists (the read model), so a file may reference it without repeating it."""

    properties: set[str] = field(default_factory=set)
    units: dict[str, str] = field(default_factory=dict)  # unit_id -> property_id
    contacts: set[str] = field(default_factory=set)


@dataclass
class ImportResult:
    events: list[EventPayload] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Row:
    label: str
    data: dict[str, Any]


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFormatError("file is neither UTF-8 nor Windows-1252 text")


def _csv_rows(text: str) -> list[_Row]:
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if not reader.fieldnames or "record_type" not in [f.strip() for f in reader.fieldnames]:
        raise ImportFormatError("CSV needs a header row with a 'record_type' column")
    rows: list[_Row] = []
    for record in reader:
        data = {(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in record.items()}
        if not any(v for v in data.values() if isinstance(v, str)):
            continue  # blank line
        rows.append(_Row(f"line {reader.line_num}", data))
    return rows


def _json_rows(text: str) -> list[_Row]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: "[[[[…" nested too deeply, not a 500
        raise ImportFormatError(f"invalid JSON: {exc}") from None
    rows: list[_Row] = []
    if isinstance(data, list):
        for i, item in enumerate(data, 1):
            rows.append(_Row(f"record {i}", item if isinstance(item, dict) else {"__invalid__": item}))
        return rows
    if isinstance(data, dict):
        top_account = data.get(ACCOUNT_FIELD)
        unknown = sorted(set(data) - {"properties", "units", "contacts", "contracts", ACCOUNT_FIELD})
        if unknown:
            raise ImportFormatError(f"unknown top-level key(s): {', '.join(unknown)}")
        for key in ("properties", "units", "contacts", "contracts"):
            items = data.get(key, [])
            if not isinstance(items, list):
                raise ImportFormatError(f"'{key}' must be a list")
            for i, item in enumerate(items):
                record = dict(item) if isinstance(item, dict) else {"__invalid__": item}
                record.setdefault("record_type", key)
                if top_account is not None:
                    record.setdefault(ACCOUNT_FIELD, top_account)
                rows.append(_Row(f"{key}[{i}]", record))
        return rows
    raise ImportFormatError("JSON must be a list of records or an object with properties/units/contacts/contracts")


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    return str(value).strip()


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if isinstance(value, bool):
        return value
    word = _text(data, key).lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{key}: '{word}' is not a yes/no value")


def _date(data: dict[str, Any], key: str) -> date | None:
    text = _text(data, key)
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no time zone
        except ValueError:
            continue
    raise ValueError(f"{key}: '{text}' is not a date (YYYY-MM-DD or DD.MM.YYYY)")


def _address(data: dict[str, Any]) -> PostalAddress:
    nested = data.get("address")
    source = nested if isinstance(nested, dict) else data
    extra = source.get("extra_lines") or []
    if isinstance(extra, str):
        extra = [line.strip() for line in extra.split("|") if line.strip()]
    return PostalAddress(
        street=_text(source, "street"),
        postal_code=_text(source, "postal_code"),
        city=_text(source, "city"),
        country=(_text(source, "country") or "DE").upper(),
        extra_lines=list(extra),
    )


def _build(kind: str, data: dict[str, Any], known: KnownIds, units_in_file: dict[str, str]) -> EventPayload:
    if kind == "property":
        return PropertyUpserted(
            property_id=_text(data, "property_id"),
            reference=_text(data, "reference"),
            name=_text(data, "name"),
            address=_address(data),
        )
    if kind == "unit":
        return UnitUpserted(
            unit_id=_text(data, "unit_id"),
            property_id=_text(data, "property_id"),
            number=_text(data, "number"),
            position=_text(data, "position"),
        )
    if kind == "contact":
        if not (_text(data, "last_name") or _text(data, "company")):
            raise ValueError("a contact needs last_name or company")
        channel_word = fold(_text(data, "channel_preference") or "online")
        channel = CHANNELS.get(channel_word)
        if channel is None:
            raise ValueError(f"channel_preference: '{channel_word}' is not post or online")
        return ContactUpserted(
            contact_id=_text(data, "contact_id"),
            reference_id=_text(data, "reference_id") or None,
            salutation=_text(data, "salutation"),
            first_name=_text(data, "first_name"),
            last_name=_text(data, "last_name"),
            company=_text(data, "company"),
            address=_address(data),
            email=_text(data, "email") or None,
            channel_preference=ChannelPreference(channel),
            portal_registered=_bool(data, "portal_registered"),
            archived=_bool(data, "archived"),
        )
    role = ROLES.get(fold(_text(data, "role")))
    if role is None:
        raise ValueError(f"role: '{_text(data, 'role')}' is not owner or tenant")
    start = _date(data, "start")
    end = _date(data, "end")
    if start is None:
        raise ValueError("start: missing")
    if end is not None and end < start:
        raise ValueError(f"end {end} is before start {start}")
    unit_id = _text(data, "unit_id")
    unit_property = units_in_file.get(unit_id) or known.units.get(unit_id)
    property_id = _text(data, "property_id") or unit_property or ""
    if unit_property and property_id != unit_property:
        raise ValueError(f"property_id {property_id} does not match the unit's property {unit_property}")
    return ContractUpserted(
        contract_id=_text(data, "contract_id"),
        contact_id=_text(data, "contact_id"),
        unit_id=unit_id,
        property_id=property_id,
        role=ContractRole(role),
        start=start,
        end=end,
        contract_number=_text(data, "contract_number"),
    )


def _references(kind: str, data: dict[str, Any], known: KnownIds, ids: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    if kind == "unit" and _text(data, "property_id") not in ids["property"] | known.properties:
        problems.append(f"unknown property_id '{_text(data, 'property_id')}'")
    if kind == "contract":
        if _text(data, "contact_id") not in ids["contact"] | known.contacts:
            problems.append(f"unknown contact_id '{_text(data, 'contact_id')}'")
        if _text(data, "unit_id") not in ids["unit"] | set(known.units):
            problems.append(f"unknown unit_id '{_text(data, 'unit_id')}'")
    return problems


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _read_rows(raw: bytes, filename: str) -> list[_Row]:
    text = _decode(raw)
    if not text.strip():
        raise ImportFormatError("file is empty")
    is_json = filename.lower().endswith(".json") or (
        not filename.lower().endswith(".csv") and text.lstrip()[:1] in "[{"
    )
    return _json_rows(text) if is_json else _csv_rows(text)


def accounts_in(raw: bytes, filename: str = "") -> list[str]:
    """The accounts a file names in its ``account_id`` column/key (empty: the file does not say)."""
    return sorted({_text(r.data, ACCOUNT_FIELD) for r in _read_rows(raw, filename) if _text(r.data, ACCOUNT_FIELD)})


def _rows_of_account(rows: list[_Row], account: str | None) -> list[_Row]:
    """The rows for ``account`` of a file that may name accounts; refuses what would cross accounts."""
    named = sorted({_text(r.data, ACCOUNT_FIELD) for r in rows if _text(r.data, ACCOUNT_FIELD)})
    if not named:
        return rows
    unnamed = [r.label for r in rows if not _text(r.data, ACCOUNT_FIELD)]
    if unnamed:
        raise ImportFormatError(
            f"column '{ACCOUNT_FIELD}' is empty in {len(unnamed)} row(s) (first: {unnamed[0]}) while other rows "
            f"name an account: every row must name its account"
        )
    if account is None:
        if len(named) > 1:
            raise ImportFormatError(
                f"the file holds several accounts (column '{ACCOUNT_FIELD}': {', '.join(named)}); import them one "
                "by one (the command line importer does that)"
            )
        return rows
    if account not in named:
        raise ImportFormatError(
            f"the file holds no rows for account '{account}' (column '{ACCOUNT_FIELD}': {', '.join(named)})"
        )
    return [r for r in rows if _text(r.data, ACCOUNT_FIELD) == account]


def parse_masterdata(  # noqa: C901, PLR0912 - validation passes over all rows
    raw: bytes,
    *,
    filename: str = "",
    known: KnownIds | None = None,
    account: str | None = None,
    only_account: bool = False,
) -> ImportResult:
    """Read a CSV or JSON export; return master-data events in dependency order, or every row-level error.

    A file may name accounts in an ``account_id`` column (key): then only the rows of ``account`` are read. With
    ``only_account`` (an upload scoped to one account) a file that also holds other accounts is refused, naming
    the column, so nothing of another account is ever read on this account's behalf.
    """
    known = known or KnownIds()
    rows = _read_rows(raw, filename)
    if not rows:
        raise ImportFormatError("file contains no records")
    if only_account and account is not None:
        others = sorted({_text(r.data, ACCOUNT_FIELD) for r in rows} - {account, ""})
        if others:
            raise ImportFormatError(
                f"the file also holds master data of other accounts (column '{ACCOUNT_FIELD}': {', '.join(others)}); "
                f"upload only the rows of account '{account}'"
            )
    rows = _rows_of_account(rows, account)
    result = ImportResult()
    typed: list[tuple[str, _Row]] = []
    ids: dict[str, set[str]] = {kind: set() for kind in ORDER}
    units_in_file: dict[str, str] = {}
    for row in rows:
        if "__invalid__" in row.data:
            result.errors.append(RowError(row.label, "", "", "record is not an object"))
            continue
        kind = RECORD_TYPES.get(fold(_text(row.data, "record_type")).replace(" ", ""))
        if kind is None:
            result.errors.append(
                RowError(
                    row.label,
                    _text(row.data, "record_type"),
                    "",
                    "record_type must be property, unit, contact or contract",
                )
            )
            continue
        if kind == "contract" and not _text(row.data, "contract_id"):
            row.data["contract_id"] = derived_contract_id(row.data)
        record_id = _text(row.data, ID_FIELD[kind])
        missing = [f for f in REQUIRED[kind] if not _text(row.data, f)]
        if missing:
            result.errors.append(RowError(row.label, kind, record_id, "missing " + ", ".join(missing)))
            continue
        if record_id in ids[kind]:
            result.errors.append(RowError(row.label, kind, record_id, f"{kind} {record_id} appears twice in the file"))
            continue
        ids[kind].add(record_id)
        if kind == "unit":
            units_in_file[record_id] = _text(row.data, "property_id")
        typed.append((kind, row))
    for kind, row in typed:
        record_id = _text(row.data, ID_FIELD[kind])
        problems = _references(kind, row.data, known, ids)
        if problems:
            result.errors.append(RowError(row.label, kind, record_id, "; ".join(problems)))
            continue
        try:
            result.events.append(_build(kind, row.data, known, units_in_file))
        except (ValueError, ValidationError) as exc:
            result.errors.append(RowError(row.label, kind, record_id, _error_text(exc)))
    result.events.sort(key=lambda e: ORDER.index(_kind_of(e)))
    for kind in ORDER:
        result.counts[kind] = sum(1 for e in result.events if _kind_of(e) == kind)
    if result.errors:
        result.events = []
    return result


def _kind_of(event: EventPayload) -> str:
    return {
        PropertyUpserted: "property",
        UnitUpserted: "unit",
        ContactUpserted: "contact",
        ContractUpserted: "contract",
    }[type(event)]
