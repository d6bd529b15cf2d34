"""Base classes for wire contracts.

Consumers are tolerant (unknown fields are ignored so producers can add optional fields without breaking
anyone); producers are strict: :func:`smartpost_shared.contracts.envelope.make_envelope` validates with the
``strict_producer`` context, which rejects unknown fields and type coercion.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator


class Contract(BaseModel):
    """A part of a message on the wire. Immutable; unknown fields ignored unless validated strictly."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields_for_producers(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get("strict_producer"):
            known = {f.alias or name for name, f in cls.model_fields.items()} | set(cls.model_fields)
            unknown = sorted(set(data) - known)
            if unknown:
                msg = f"unknown field(s) for {cls.__name__}: {', '.join(unknown)}"
                raise ValueError(msg)
        return data


class EventPayload(Contract):
    """The body of one event type at one schema version."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
