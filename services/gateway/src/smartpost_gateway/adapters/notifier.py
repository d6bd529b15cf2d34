"""Typed client of the notifier: e-mails held back by the replay guard (list, send now)."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]


class NotifierClient(ServiceClient):
    service = "notifier"

    async def stale_mails(self, caller: Caller) -> list[Json]:
        """The account's mails in status ``stale`` (publication event older than the maximum age)."""
        body = await self.json("GET", "/internal/mails/stale", caller)
        return list((body or {}).get("mails", []))

    async def release_stale(self, caller: Caller, mail_id: str) -> Json:
        """Send a held-back mail now (409 when it is no longer held)."""
        result: Json = await self.json("POST", f"/internal/mails/{mail_id}/release", caller)
        return result
