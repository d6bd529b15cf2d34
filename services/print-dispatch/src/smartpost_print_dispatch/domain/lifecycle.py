"""One mailpiece life cycle for every provider, and how each provider's statuses map onto it."""

from __future__ import annotations

from smartpost_shared.contracts.printing import MailpieceStatus as S

TERMINAL = frozenset({S.DELIVERED, S.UNDELIVERABLE, S.CANCELLED})

# Progress order: a late or duplicate webhook must never move a mailpiece backwards.
_RANK = {
    S.CREATED: 0,
    S.VALIDATING: 1,
    S.ACTION_REQUIRED: 2,
    S.SUBMITTED: 3,
    S.PRINTING: 4,
    S.SENT: 5,
    S.DELIVERED: 6,
    S.UNDELIVERABLE: 6,
    S.CANCELLED: 6,
}

# Pingen letter states (web UI list, domain notes 2.2) and E-POST / generic hybrid-mail states.
PROVIDER_STATUS_MAP: dict[str, S] = {
    "created": S.CREATED,
    "validating": S.VALIDATING,
    "valid": S.VALIDATING,
    "fixing": S.VALIDATING,
    "action_required": S.ACTION_REQUIRED,
    "invalid": S.ACTION_REQUIRED,
    "unprintable": S.ACTION_REQUIRED,
    "rejected": S.ACTION_REQUIRED,
    "failed": S.ACTION_REQUIRED,
    "awaiting_credits": S.ACTION_REQUIRED,
    "submitted": S.SUBMITTED,
    "accepted": S.SUBMITTED,
    "queued": S.SUBMITTED,
    "processing": S.PRINTING,
    "printing": S.PRINTING,
    "transferring": S.PRINTING,
    "inspection": S.PRINTING,
    "sending": S.PRINTING,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "undeliverable": S.UNDELIVERABLE,
    "undelivered": S.UNDELIVERABLE,
    "cancelled": S.CANCELLED,
    "canceled": S.CANCELLED,
    "expired": S.CANCELLED,
}
# States that say nothing new about the life cycle (the mailpiece stays where it is).
IGNORED_PROVIDER_STATUSES = frozenset({"cancelling"})


class UnknownProviderStatusError(ValueError):
    """A provider reported a status this service does not know how to map."""


def map_provider_status(status: str) -> S | None:
    key = status.strip().lower()
    if key in IGNORED_PROVIDER_STATUSES:
        return None
    try:
        return PROVIDER_STATUS_MAP[key]
    except KeyError:
        raise UnknownProviderStatusError(f"unknown provider status {status!r}") from None


def can_move(current: S, new: S) -> bool:
    """Forward moves only; terminal states are final. ``action_required`` may be left once fixed."""
    if current == new or current in TERMINAL:
        return False
    if new is S.CANCELLED:
        return True
    if current is S.ACTION_REQUIRED:
        return new is not S.CREATED
    return _RANK[new] > _RANK[current]
