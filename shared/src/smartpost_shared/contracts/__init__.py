"""Versioned wire contracts of SmartPost. Importing this package registers every event payload."""

from smartpost_shared.contracts import documents, letters, masterdata, portal, printing
from smartpost_shared.contracts.envelope import (
    Envelope,
    EnvelopeHeader,
    UnknownEventError,
    caused_by,
    deterministic_event_id,
    make_envelope,
    parse_envelope,
    payload_class,
    registered_payloads,
)

__all__ = [
    "Envelope",
    "EnvelopeHeader",
    "UnknownEventError",
    "caused_by",
    "deterministic_event_id",
    "documents",
    "letters",
    "make_envelope",
    "masterdata",
    "parse_envelope",
    "payload_class",
    "portal",
    "printing",
    "registered_payloads",
]
