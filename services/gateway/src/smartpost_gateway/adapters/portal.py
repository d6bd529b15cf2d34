"""Typed client of the portal publisher's internal staff API: delivery proof per individual letter."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]


class PortalClient(ServiceClient):
    service = "portal-publisher"

    async def deliveries(self, caller: Caller, letter_id: str) -> list[Json]:
        body = await self.json("GET", f"/internal/letters/{letter_id}/deliveries", caller)
        return list(body or [])

    async def issue_invitation(self, caller: Caller, contact_id: str) -> Json:
        result: Json = await self.json(
            "POST", "/internal/invitations", caller, json={"contact_id": contact_id, "issued_by": caller.actor}
        )
        return result

    async def email_invitation(self, caller: Caller, contact_id: str) -> Json:
        """Send the contact an invitation e-mail: ``status`` is sent / already_registered / no_email."""
        result: Json = await self.json("POST", "/internal/invitations/email", caller, json={"contact_id": contact_id})
        return result
