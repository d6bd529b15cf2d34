"""Typed client of the assignment service: master data for staff (properties, units, contact search and detail)."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]


class AssignmentClient(ServiceClient):
    service = "assignment"

    async def rematch(self, caller: Caller, letter_id: str) -> Json:
        """Re-run matching of a letter and send its assignments again (to a letter stuck waiting for them)."""
        result: Json = await self.json("POST", f"/letters/{letter_id}/rematch", caller)
        return result

    async def properties(self, caller: Caller) -> list[Json]:
        return _items(await self.json("GET", "/properties", caller), "properties")

    async def units(self, caller: Caller, property_id: str) -> list[Json]:
        return _items(await self.json("GET", f"/properties/{property_id}/units", caller), "units")

    async def search_contacts(
        self, caller: Caller, text: str, *, property_id: str | None = None, limit: int = 20
    ) -> list[Json]:
        params: dict[str, Any] = {"q": text, "limit": limit}
        if property_id:
            params["property_id"] = property_id
        return _items(await self.json("GET", "/contacts", caller, params=params), "contacts")

    async def contact(self, caller: Caller, contact_id: str) -> Json:
        result: Json = await self.json("GET", f"/contacts/{contact_id}", caller)
        return result

    async def outbox_status(self, caller: Caller) -> Json:
        """Whether the service cannot publish a result (and for which letter of the caller's account)."""
        result: Json = await self.json("GET", "/outbox/status", caller)
        return result


def _items(body: Any, key: str) -> list[Json]:
    if isinstance(body, dict):
        return list(body.get(key) or [])
    return list(body) if isinstance(body, list) else []
