"""HTTP face for the staff gateway (account from the verified caller claims) and for signed provider webhooks."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from smartpost_print_dispatch.adapters.providers.http import SIGNATURE_HEADER, parse_webhook, verify_signature
from smartpost_print_dispatch.application import CancelNotPossibleError, UnknownMailpieceError, UnknownOrderError
from smartpost_shared.contracts.letters import PrintOptions, ReleasedItem
from smartpost_shared.identity import verified_account
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


router = APIRouter()


@router.post("/estimates")
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


@router.post("/mailpieces/{mailpiece_id}/cancel")
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
    if not verify_signature(secrets[provider], body, request.headers.get(SIGNATURE_HEADER)):
        raise HTTPException(401, "bad webhook signature")
    try:
        update = parse_webhook(json.loads(body))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    applied = await asyncio.to_thread(_dispatch(request).apply_update, provider, update)
    return {"applied": applied}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
