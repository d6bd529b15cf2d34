"""HTTP hybrid-mail provider, modelled on the Pingen / LetterXpress / onlinebrief24 APIs in the domain notes.

``POST /v1/letters`` with header ``Idempotency-Key: <mailpiece id>``: the provider keeps one letter per key, so a
retry after a timeout or a crash returns the letter it already has instead of printing a second one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import httpx

from smartpost_print_dispatch.adapters.providers.base import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderUnavailableError,
    ProviderUpdate,
    Submission,
    SubmitResult,
    TrackedPiece,
)

if TYPE_CHECKING:
    from smartpost_print_dispatch.domain.geometry import AddressProfile

SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
# A webhook older (or further in the future) than this is refused; a signature seen before within it is a replay.
WEBHOOK_MAX_AGE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | str) -> str:
    """``sha256=`` HMAC over ``<timestamp>.<body>``: the time of sending is signed with the body."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers a provider sends with a webhook (the fake provider and tests use them)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, body, ts)}


class WebhookRefusedError(Exception):
    """A webhook that proves nothing: unsigned, forged, too old, from the future, or replayed (reason for the log)."""


def check_webhook(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    max_age: int = WEBHOOK_MAX_AGE_SECONDS,
) -> int:
    """The webhook's signed timestamp if the signature holds and the time is within ``max_age`` of ``now``."""
    if not signature or not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRefusedError("signature or timestamp missing")
    if not hmac.compare_digest(sign(secret, body, timestamp), signature):
        raise WebhookRefusedError("bad signature")
    sent = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent) > max_age:
        raise WebhookRefusedError(f"timestamp {sent} outside {max_age} s of now")
    return sent


def letter_request(submission: Submission) -> dict[str, Any]:
    options = submission.options
    return {
        "reference": submission.mailpiece_id,
        "file_original_name": f"{submission.mailpiece_id}.pdf",
        "file_base64": base64.b64encode(submission.pdf).decode(),
        "file_checksum_md5": hashlib.md5(submission.pdf).hexdigest(),  # noqa: S324 - checksum the APIs ask for
        "address_position": "left",
        "print_mode": "duplex" if options.duplex else "simplex",
        "print_spectrum": "color" if options.color else "grayscale",
        "delivery_product": "registered" if options.registered.value != "none" else "cheap",
        "registered": options.registered.value,
        "envelope": submission.envelope,
        "dispatch_date": options.dispatch_date.isoformat() if options.dispatch_date else None,
        "meta_data": {"recipient": {"lines": submission.address_lines}, "account_id": submission.account_id},
    }


class HttpPrintProvider:
    batches_orders = False

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        webhook_secret: str,
        profile: AddressProfile,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        honours_idempotency: bool = True,
    ) -> None:
        self.name = name
        self.honours_idempotency = honours_idempotency
        self.profile = profile
        self.webhook_secret = webhook_secret
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing was sent: safe to send again to any provider.
            raise ProviderUnavailableError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            # Sent (maybe completely), no answer: the provider may have the letter.
            raise ProviderOutcomeUnknownError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429:
            raise ProviderUnavailableError(f"{self.name}: HTTP 429: {response.text[:200]}")
        if response.status_code >= 500:
            raise ProviderOutcomeUnknownError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ProviderRejectedError(f"{self.name}: HTTP {response.status_code}: {str(detail)[:500]}")
        data: dict[str, Any] = response.json()
        return data

    async def submit(self, batch_id: str, submissions: list[Submission]) -> list[SubmitResult]:
        del batch_id
        results: list[SubmitResult] = []
        for submission in submissions:
            try:
                data = await self._request(
                    "POST",
                    "/v1/letters",
                    json=letter_request(submission),
                    headers={"Idempotency-Key": submission.mailpiece_id},
                )
            except ProviderRejectedError as exc:
                results.append(SubmitResult(submission.mailpiece_id, None, "rejected", error=str(exc)))
                continue
            results.append(
                SubmitResult(
                    submission.mailpiece_id,
                    str(data["id"]),
                    str(data.get("status", "submitted")),
                    data.get("tracking_number"),
                )
            )
        return results

    async def fetch_status(self, pieces: list[TrackedPiece]) -> list[ProviderUpdate]:
        updates: list[ProviderUpdate] = []
        for piece in pieces:
            data = await self._request("GET", f"/v1/letters/{piece.provider_ref}")
            updates.append(_update(data, piece.mailpiece_id))
        return updates

    async def cancel(self, piece: TrackedPiece) -> ProviderUpdate:
        data = await self._request("POST", f"/v1/letters/{piece.provider_ref}/cancel")
        return _update(data, piece.mailpiece_id)

    async def ready(self) -> bool:
        try:
            response = await self.client.get("/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        await self.client.aclose()


def _update(data: dict[str, Any], mailpiece_id: str | None) -> ProviderUpdate:
    return ProviderUpdate(
        provider_ref=str(data["id"]),
        mailpiece_id=mailpiece_id or data.get("reference"),
        status=str(data["status"]),
        tracking_number=data.get("tracking_number"),
        reason=data.get("reason"),
    )


def parse_webhook(payload: dict[str, Any]) -> ProviderUpdate:
    """Webhook body: ``{"event": "letter.status_changed", "letter": {id, reference, status, tracking_number}}``."""
    letter = payload.get("letter")
    if not isinstance(letter, dict) or "id" not in letter or "status" not in letter:
        raise ValueError("webhook body needs letter.id and letter.status")
    return _update(letter, letter.get("reference"))
