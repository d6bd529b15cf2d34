"""Typed client of the splitter's HTTP API: the split-strategy proposal for an uploaded PDF."""

from __future__ import annotations

from typing import Any

from smartpost_gateway.adapters.http import Caller, ServiceClient

Json = dict[str, Any]
PROPOSAL_TIMEOUT_SECONDS = 90.0  # the splitter reads up to 300 pages in its sandbox (at most 60 s)


class SplitterClient(ServiceClient):
    service = "splitter"

    async def propose_split(self, caller: Caller, content: bytes) -> Json:
        """The candidate split rules for this PDF, best first, with German reasons (nothing is stored)."""
        result: Json = await self.json(
            "POST",
            "/split-proposals",
            caller,
            content=content,
            headers={"Content-Type": "application/pdf"},
            timeout=PROPOSAL_TIMEOUT_SECONDS,
        )
        return result
