"""The one envelope every SmartPost message travels in, and the event registry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import UUID4, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from smartpost_shared.contracts.base import EventPayload

_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}


def register(cls: type[EventPayload]) -> type[EventPayload]:
    """Class decorator: make a payload class known under (event_type, schema_version)."""
    key = (cls.event_type, cls.schema_version)
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        msg = f"duplicate contract {key}"
        raise ValueError(msg)
    _REGISTRY[key] = cls
    return cls


def registered_payloads() -> dict[tuple[str, int], type[EventPayload]]:
    return dict(_REGISTRY)


def payload_class(event_type: str, schema_version: int) -> type[EventPayload]:
    try:
        return _REGISTRY[(event_type, schema_version)]
    except KeyError:
        msg = f"unknown event {event_type} v{schema_version}"
        raise UnknownEventError(msg) from None


class UnknownEventError(ValueError):
    """The message names an event type or version that no contract describes."""


class EnvelopeHeader(BaseModel):
    """Metadata of a message, common to all events (payload kept raw until its type is known)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    event_type: str = Field(min_length=1)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    account_id: str = Field(min_length=1, max_length=64)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    producer: str = Field(min_length=1)


class PayloadRef(BaseModel):
    """Claim check: the whole envelope is in object storage under ``key`` (above 512 KiB on the wire).

    A message carrying ``payload_ref`` instead of ``payload`` has the same header; consumers fetch the object,
    check ``sha256`` and process the stored envelope (``smartpost_shared.messaging`` does it for every service).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str = Field(min_length=1)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class Envelope(EnvelopeHeader):
    """An event on the wire: header plus a typed payload."""

    payload: EventPayload

    def to_bytes(self) -> bytes:
        return self.model_dump_json(serialize_as_any=True).encode()

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.to_bytes())
        return data


def make_envelope(
    payload: EventPayload,
    *,
    account_id: str,
    producer: str,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """Build an envelope as a producer: the payload is re-validated strictly (no unknown fields)."""
    cls = type(payload)
    cls.model_validate(payload.model_dump(mode="json"), context={"strict_producer": True})
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        event_type=cls.event_type,
        schema_version=cls.schema_version,
        occurred_at=occurred_at or datetime.now(UTC),
        account_id=account_id,
        correlation_id=correlation_id or uuid.uuid4(),
        causation_id=causation_id,
        producer=producer,
        payload=payload,
    )


def caused_by(
    parent: EnvelopeHeader, payload: EventPayload, *, producer: str, event_id: uuid.UUID | None = None
) -> Envelope:
    """An event emitted in reaction to ``parent``: same account and correlation, causation = parent."""
    return make_envelope(
        payload,
        account_id=parent.account_id,
        producer=producer,
        correlation_id=parent.correlation_id,
        causation_id=parent.event_id,
        event_id=event_id,
    )


def parse_envelope(raw: bytes | str | dict[str, Any]) -> Envelope:
    """Parse a message as a consumer: tolerant of unknown fields, strict about types and known events.

    Raises ``ValueError`` (``ValidationError``, ``UnknownEventError`` or JSON errors) with a readable reason.
    """
    data: Any = raw if isinstance(raw, dict) else json.loads(raw)
    if not isinstance(data, dict):
        msg = "message is not a JSON object"
        raise ValueError(msg)  # noqa: TRY004 - callers handle ValueError uniformly
    header = EnvelopeHeader.model_validate(data)
    cls = payload_class(header.event_type, header.schema_version)
    payload = cls.model_validate(data.get("payload"))
    return Envelope(**header.model_dump(), payload=payload)


def deterministic_event_id(*parts: object) -> uuid.UUID:
    """An event id derived from its cause, so a re-run emits the same id and consumers dedupe it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "smartpost:" + "/".join(str(p) for p in parts))


__all__ = [
    "UUID4",
    "Envelope",
    "EnvelopeHeader",
    "PayloadRef",
    "UnknownEventError",
    "ValidationError",
    "caused_by",
    "deterministic_event_id",
    "make_envelope",
    "parse_envelope",
    "payload_class",
    "register",
    "registered_payloads",
]
