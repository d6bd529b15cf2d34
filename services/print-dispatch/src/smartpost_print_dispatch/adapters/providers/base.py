"""The provider interface: submit mailpieces (idempotently, keyed by mailpiece id), read statuses, cancel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smartpost_print_dispatch.domain.geometry import AddressProfile
    from smartpost_shared.contracts.letters import PrintOptions


class ProviderUnavailableError(ConnectionError):
    """The provider did not answer usefully (timeout, 5xx, connection refused): retry with the same key."""


class ProviderOutcomeUnknownError(ProviderUnavailableError):
    """The request may have reached the provider (timeout or broken connection after sending, 5xx).

    The letter may or may not exist there: only a provider that honours idempotency keys may get it again.
    """


class ProviderRejectedError(ValueError):
    """The provider refused a request for good (4xx); the message says why."""


@dataclass(frozen=True)
class Submission:
    mailpiece_id: str
    account_id: str
    print_order_id: str
    contact_id: str
    pdf: bytes
    address_lines: list[str]
    options: PrintOptions
    pages: int
    sheets: int
    letter_class: str
    envelope: str


@dataclass(frozen=True)
class SubmitResult:
    mailpiece_id: str
    provider_ref: str | None
    status: str
    tracking_number: str | None = None
    error: str | None = None  # set when the provider rejected this mailpiece


@dataclass(frozen=True)
class ProviderUpdate:
    provider_ref: str
    status: str
    mailpiece_id: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackedPiece:
    account_id: str
    print_order_id: str
    mailpiece_id: str
    provider_ref: str


class PrintProvider(Protocol):
    """A print service. ``submit`` must be idempotent per mailpiece id: the same id never prints twice."""

    name: str
    profile: AddressProfile
    # Batch providers (file drop) want every mailpiece of an order at once; API providers take them one by one.
    batches_orders: bool
    # True: a repeated submission with the same key never prints twice, so an unknown outcome is resent.
    honours_idempotency: bool

    async def submit(self, batch_id: str, submissions: list[Submission]) -> list[SubmitResult]: ...

    async def fetch_status(self, pieces: list[TrackedPiece]) -> list[ProviderUpdate]: ...

    async def cancel(self, piece: TrackedPiece) -> ProviderUpdate: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...
