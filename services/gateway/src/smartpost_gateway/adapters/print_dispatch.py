"""Typed client of the print-dispatch service: cost estimates and the mailpieces of a letter."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]
# The fields of the shared ``ReleasedItem`` contract (the letters service's item view carries more).
RELEASED_ITEM_FIELDS = (
    "item_id",
    "document_id",
    "part_id",
    "contact_id",
    "property_id",
    "unit_id",
    "storage_key",
    "page_count",
)


class PrintClient(ServiceClient):
    service = "print-dispatch"

    async def estimate(self, caller: Caller, items: list[Json], options: Json) -> Json:
        """Cost of printing these released items with these options (nothing is ordered)."""
        payload = {
            "items": [{k: item[k] for k in RELEASED_ITEM_FIELDS if k in item} for item in items],
            "options": options,
        }
        result: Json = await self.json("POST", "/estimates", caller, json=payload)
        return result

    async def mailpieces(self, caller: Caller, letter_id: str) -> list[Json]:
        body = await self.json("GET", f"/letters/{letter_id}/mailpieces", caller)
        if isinstance(body, dict):
            return list(body.get("mailpieces", []))
        return list(body or [])
