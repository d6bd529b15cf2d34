"""Contract tests: the code's contracts match the exported schemas and golden examples.

A field removed or retyped without a new schema_version fails here (and so fails CI).
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from pydantic import ValidationError

from smartpost_shared.contracts import make_envelope, parse_envelope, registered_payloads
from smartpost_shared.contracts.asyncapi import asyncapi_document
from smartpost_shared.contracts.examples import example_messages
from smartpost_shared.contracts.letters import LetterCreated
from smartpost_shared.contracts.masterdata import ContactUpserted
from smartpost_shared.contracts.schemas import (
    SCHEMA_DIR,
    breaking_changes,
    envelope_schema,
    payload_schema,
    stored_versions,
)
from smartpost_shared.topics import ALL_TOPICS, topic_for_event

ROOT = SCHEMA_DIR.parent.parent


def test_every_registered_event_has_a_stored_schema_and_golden_example() -> None:
    stored = stored_versions()
    for key in registered_payloads():
        assert key in stored, f"no stored schema for {key}: run scripts/export_contracts.py"
        assert stored[key].with_name(f"v{key[1]}.example.json").exists(), f"no golden example for {key}"


def test_stored_versions_are_still_supported() -> None:
    """An old version may only disappear deliberately: consumers may still receive it."""
    registered = registered_payloads()
    for key in stored_versions():
        assert key in registered, f"{key} was removed from the code but has a stored schema"


@pytest.mark.parametrize("key", sorted(registered_payloads()), ids=lambda k: f"{k[0]}.v{k[1]}")
def test_no_breaking_change_without_version_bump(key: tuple[str, int]) -> None:
    stored = json.loads(stored_versions()[key].read_text())
    problems = breaking_changes(stored, payload_schema(*key))
    assert not problems, f"{key[0]} v{key[1]}: {problems}; bump schema_version and keep v{key[1]}"


@pytest.mark.parametrize("key", sorted(registered_payloads()), ids=lambda k: f"{k[0]}.v{k[1]}")
def test_stored_schema_is_up_to_date(key: tuple[str, int]) -> None:
    stored = json.loads(stored_versions()[key].read_text())
    assert stored == payload_schema(*key), "compatible change not exported: run scripts/export_contracts.py"


@pytest.mark.parametrize("key", sorted(registered_payloads()), ids=lambda k: f"{k[0]}.v{k[1]}")
def test_golden_example_still_parses_and_round_trips(key: tuple[str, int]) -> None:
    golden = json.loads(stored_versions()[key].with_name(f"v{key[1]}.example.json").read_text())
    envelope = parse_envelope(golden)
    again = envelope.to_json_dict()
    for field, value in golden["payload"].items():
        assert _without_new_optional_fields(again["payload"][field], value) == value, field
    assert again["event_id"] == golden["event_id"]


def _without_new_optional_fields(now: object, golden: object) -> object:
    """``now`` without keys the golden example lacks whose value is null: optional fields added since (compatible)."""
    if isinstance(now, dict) and isinstance(golden, dict):
        return {
            k: _without_new_optional_fields(v, golden.get(k)) for k, v in now.items() if k in golden or v is not None
        }
    if isinstance(now, list) and isinstance(golden, list) and len(now) == len(golden):
        return [_without_new_optional_fields(a, b) for a, b in zip(now, golden, strict=True)]
    return now


def test_envelope_schema_is_up_to_date() -> None:
    assert json.loads((SCHEMA_DIR / "envelope.schema.json").read_text()) == envelope_schema()


def test_asyncapi_document_is_up_to_date_and_covers_every_topic() -> None:
    document = asyncapi_document()
    assert json.loads((ROOT / "docs" / "asyncapi.json").read_text()) == document
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {t.name for t in ALL_TOPICS}


def test_every_event_type_has_exactly_one_topic() -> None:
    for event_type, _ in registered_payloads():
        assert topic_for_event(event_type).name
    seen: dict[str, str] = {}
    for topic in ALL_TOPICS:
        for event_type in topic.event_types:
            assert event_type not in seen, f"{event_type} on {seen.get(event_type)} and {topic.name}"
            seen[event_type] = topic.name
    assert set(seen) == {et for et, _ in registered_payloads()}


def test_consumers_ignore_unknown_fields() -> None:
    message = copy.deepcopy(example_messages()[("ContactUpserted", 1)])
    message["payload"]["favourite_colour"] = "blue"
    message["new_header_field"] = 1
    envelope = parse_envelope(message)
    assert isinstance(envelope.payload, ContactUpserted)


def test_producers_are_strict_about_unknown_fields() -> None:
    payload = ContactUpserted.model_validate({"contact_id": "c1", "favourite_colour": "blue"})
    # model_validate (consumer side) drops it; a producer constructing from data with extras is refused:
    with pytest.raises(ValidationError, match="unknown field"):
        ContactUpserted.model_validate(
            {"contact_id": "c1", "favourite_colour": "blue"}, context={"strict_producer": True}
        )
    assert make_envelope(payload, account_id="a", producer="t").payload == payload


def test_consumers_reject_wrong_types_and_unknown_events() -> None:
    message = copy.deepcopy(example_messages()[("LetterCreated", 1)])
    message["payload"]["letter_date"] = "not a date"
    with pytest.raises(ValidationError):
        parse_envelope(message)
    message = copy.deepcopy(example_messages()[("LetterCreated", 1)])
    message["event_type"] = "LetterTeleported"
    with pytest.raises(ValueError, match="unknown event"):
        parse_envelope(message)
    with pytest.raises(ValueError):
        parse_envelope(b"{not json")
    with pytest.raises(ValueError):
        parse_envelope(b"[1, 2]")


def test_breaking_change_detector_catches_removed_and_retyped_fields() -> None:
    old = payload_schema("LetterCreated", 1)
    removed = copy.deepcopy(old)
    del removed["properties"]["title"]
    assert any("removed: title" in p for p in breaking_changes(old, removed))
    retyped = copy.deepcopy(old)
    retyped["properties"]["include_archived"] = {"type": "string"}
    assert any("retyped: include_archived" in p for p in breaking_changes(old, retyped))
    required = copy.deepcopy(old)
    required["properties"]["new_field"] = {"type": "string"}
    required["required"].append("new_field")
    assert any("new required field: new_field" in p for p in breaking_changes(old, required))
    nested = copy.deepcopy(old)
    nested["$defs"]["DocumentType"]["properties"]["path"] = {"type": "string"}
    assert any("document_type.path" in p for p in breaking_changes(old, nested))
    assert breaking_changes(old, old) == []


def test_cross_property_letter_envelope_carries_tenant_and_tracing_fields() -> None:
    golden = example_messages()[("LetterCreated", 1)]
    envelope = parse_envelope(golden)
    assert isinstance(envelope.payload, LetterCreated)
    assert envelope.account_id == "acc-1"
    assert envelope.correlation_id == uuid.UUID(int=1000)
    assert envelope.producer == "examples"
