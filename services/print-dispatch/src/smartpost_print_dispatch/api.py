"""HTTP face for the staff gateway (account from the verified caller claims) and for signed provider webhooks.

Roles come from the verified claims too (``smartpost_shared.roles``): an estimate needs a staff role, cancelling a
mailpiece ``release``. Webhooks prove themselves by a signed timestamp (:mod:`smartpost_shared.webhooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from smartpost_print_dispatch.adapters.providers.http import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_MAX_AGE_SECONDS,
    WebhookRefusedError,
    check_webhook,
    parse_webhook,
)
from smartpost_print_dispatch.application import CancelNotPossibleError, UnknownMailpieceError, UnknownOrderError
from smartpost_shared.contracts.letters import PrintOptions, ReleasedItem
from smartpost_shared.identity import verified_account
from smartpost_shared.logging import get_logger
from smartpost_shared.roles import RELEASE, STAFF, requires
from smartpost_shared.seen_once import ReplayGuard, ReplayStoreUnavailableError
from smartpost_shared.storage import account_key_problem

if TYPE_CHECKING:
    from smartpost_print_dispatch.application import PrintDispatch

# The account comes from the caller's signed claims (smartpost_shared.identity), never from a plain header.
AccountHeader = Annotated[str, Depends(verified_account)]


class EstimateRequest(BaseModel):
    items: list[ReleasedItem] = Field(min_length=1)
    options: PrintOptions = PrintOptions()


def _dispatch(request: Request) -> PrintDispatch:
    dispatch: PrintDispatch = request.app.state.dispatch
    return dispatch


log = get_logger(__name__)

router = APIRouter()


@router.post("/estimates", dependencies=[STAFF])
async def create_estimate(body: EstimateRequest, request: Request, account: AccountHeader) -> dict[str, Any]:
    # The estimate reads the parts: only the caller's own account's objects, whatever the body names.
    if any(account_key_problem(account, item.storage_key) for item in body.items):
        raise HTTPException(status_code=422, detail="Ein Einzelbrief gehört nicht zu diesem Konto.")
    return await asyncio.to_thread(_dispatch(request).estimate, account, body.items, body.options)


@router.get("/orders/{print_order_id}")
async def get_order(print_order_id: str, request: Request, account: AccountHeader) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(_dispatch(request).order_view, account, print_order_id)
    except UnknownOrderError:
        raise HTTPException(404, f"print order {print_order_id} not found") from None


@router.get("/letters/{letter_id}/mailpieces")
async def get_letter_mailpieces(letter_id: str, request: Request, account: AccountHeader) -> dict[str, Any]:
    pieces = await asyncio.to_thread(_dispatch(request).letter_mailpieces, account, letter_id)
    return {"letter_id": letter_id, "mailpieces": pieces}


# Cancelling a mailpiece undoes part of a print order: the role that orders print (``release``), as in letters.
@router.post("/mailpieces/{mailpiece_id}/cancel", dependencies=[requires(RELEASE)])
async def cancel_mailpiece(mailpiece_id: str, request: Request, account: AccountHeader) -> dict[str, Any]:
    try:
        status = await _dispatch(request).cancel(account, mailpiece_id)
    except UnknownMailpieceError:
        raise HTTPException(404, f"mailpiece {mailpiece_id} not found") from None
    except CancelNotPossibleError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"mailpiece_id": mailpiece_id, "status": status}


@router.post("/webhooks/{provider}")
async def provider_webhook(provider: str, request: Request) -> dict[str, Any]:
    secrets: dict[str, str] = request.app.state.webhook_secrets
    if provider not in secrets:
        raise HTTPException(404, f"unknown provider {provider}")
    body = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        sent = check_webhook(secrets[provider], body, signature, request.headers.get(TIMESTAMP_HEADER))
    except WebhookRefusedError as exc:
        log.warning("webhook.refused", provider=provider, reason=str(exc))
        raise HTTPException(401, "Webhook nicht nachgewiesen") from None
    # Signed and fresh, but a captured webhook could be sent again within its 5 minutes: each signature once.
    replays: ReplayGuard = request.app.state.webhook_replays
    proof = f"{provider}:{signature}"
    try:
        first = await asyncio.to_thread(replays.first_use, proof, sent + WEBHOOK_MAX_AGE_SECONDS + 1)
    except ReplayStoreUnavailableError as exc:
        log.warning("webhook.replay_store_unavailable", provider=provider, error=str(exc))
        raise HTTPException(503, "Dienst vorübergehend nicht verfügbar – bitte später erneut senden") from None
    if not first:
        log.warning("webhook.refused", provider=provider, reason="replayed (signature seen before)")
        raise HTTPException(409, "Webhook bereits erhalten")
    try:
        update = parse_webhook(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        applied = await asyncio.to_thread(_dispatch(request).apply_update, provider, update)
    except Exception:
        # Nothing was applied (one transaction): the provider's retry of this very webhook must be accepted.
        with contextlib.suppress(ReplayStoreUnavailableError):
            await asyncio.to_thread(replays.forget, proof)
        raise
    return {"applied": applied}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
