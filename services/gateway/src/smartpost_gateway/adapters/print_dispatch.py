"""Typed client of the print-dispatch service: cost estimates and the mailpieces of a letter."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]


class PrintClient(ServiceClient):
    service = "print-dispatch"

    async def estimate(self, caller: Caller, payload: Json) -> Json:
        result: Json = await self.json("POST", "/v1/estimates", caller, json=payload)
        return result

    async def mailpieces(self, caller: Caller, letter_id: str) -> list[Json]:
        body = await self.json("GET", f"/v1/letters/{letter_id}/mailpieces", caller)
        if isinstance(body, dict):
            return list(body.get("mailpieces", []))
        return list(body or [])
