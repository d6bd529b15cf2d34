"""Typed client of the letters service (``/v1``): serial letters, documents, review, release, print, revoke."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from smartpost_gateway.adapters.http import COMMAND_HEADER, Caller, ServiceClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

Json = dict[str, Any]


def _if_match(version: int | None) -> dict[str, str]:
    return {"If-Match": f'"{version}"'} if version is not None else {}


def _command(command_id: str | None) -> dict[str, str]:
    return {COMMAND_HEADER: command_id} if command_id else {}


class LettersClient(ServiceClient):
    service = "letters"

    async def list_letters(self, caller: Caller, *, status: str | None = None, limit: int = 200) -> list[Json]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        body = await self.json("GET", "/v1/letters", caller, params=params)
        return list(body["letters"])

    async def create_letter(self, caller: Caller, payload: Json, *, command_id: str | None = None) -> Json:
        result: Json = await self.json("POST", "/v1/letters", caller, json=payload, headers=_command(command_id))
        return result

    async def get_letter(self, caller: Caller, letter_id: str, *, with_parts: bool = True) -> Json:
        params = {} if with_parts else {"parts": "none"}
        result: Json = await self.json("GET", f"/v1/letters/{letter_id}", caller, params=params)
        return result

    async def parts_page(
        self,
        caller: Caller,
        letter_id: str,
        *,
        part_filter: str = "all",
        property_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Json:
        """One page of the review list (filters: review, unassigned, ...; by property)."""
        params: dict[str, Any] = {"filter": part_filter, "offset": offset, "limit": limit}
        if property_id:
            params["property_id"] = property_id
        result: Json = await self.json("GET", f"/v1/letters/{letter_id}/parts", caller, params=params)
        return result

    async def bulk_review(self, caller: Caller, letter_id: str, action: str, payload: Json | None = None) -> Json:
        """discard-unmatched, accept-safe or defer-property: one command for many parts."""
        return await self._post(caller, letter_id, f"review/{action}", payload)

    async def undo_bulk_review(self, caller: Caller, letter_id: str, bulk_id: str) -> Json:
        return await self._post(caller, letter_id, f"review/bulk/{bulk_id}/undo")

    async def audit(self, caller: Caller, letter_id: str) -> list[Json]:
        body = await self.json("GET", f"/v1/letters/{letter_id}/audit", caller)
        return list(body["entries"])

    async def upload_document(
        self,
        caller: Caller,
        letter_id: str,
        *,
        filename: str,
        content: bytes,
        role: str = "split",
        rule: Json | None = None,
        command_id: str | None = None,
    ) -> Json:
        data: dict[str, str] = {"role": role}
        if rule is not None:
            data["rule"] = json.dumps(rule)
        result: Json = await self.json(
            "POST",
            f"/v1/letters/{letter_id}/documents",
            caller,
            files={"file": (filename, content, "application/pdf")},
            data=data,
            headers=_command(command_id),
        )
        return result

    async def change_document(
        self, caller: Caller, letter_id: str, document_id: str, *, role: str, rule: Json | None
    ) -> Json:
        result: Json = await self.json(
            "PATCH", f"/v1/letters/{letter_id}/documents/{document_id}", caller, json={"role": role, "rule": rule}
        )
        return result

    async def remove_document(self, caller: Caller, letter_id: str, document_id: str) -> Json:
        result: Json = await self.json("DELETE", f"/v1/letters/{letter_id}/documents/{document_id}", caller)
        return result

    async def reorder_documents(self, caller: Caller, letter_id: str, order: list[str]) -> Json:
        result: Json = await self.json("PUT", f"/v1/letters/{letter_id}/documents/order", caller, json={"order": order})
        return result

    async def start_split(self, caller: Caller, letter_id: str, *, version: int | None = None) -> Json:
        return await self._post(caller, letter_id, "split", version=version)

    async def reopen(self, caller: Caller, letter_id: str, *, version: int | None = None) -> Json:
        return await self._post(caller, letter_id, "reopen", version=version)

    async def reassign(
        self,
        caller: Caller,
        letter_id: str,
        part_id: str,
        *,
        contact_id: str,
        property_id: str | None,
        unit_id: str | None,
    ) -> Json:
        payload = {"contact_id": contact_id, "property_id": property_id, "unit_id": unit_id}
        return await self._post(caller, letter_id, f"parts/{part_id}/reassign", payload)

    async def unassign(self, caller: Caller, letter_id: str, part_id: str) -> Json:
        return await self._post(caller, letter_id, f"parts/{part_id}/unassign")

    async def discard(self, caller: Caller, letter_id: str, part_id: str) -> Json:
        return await self._post(caller, letter_id, f"parts/{part_id}/discard")

    async def confirm_review(self, caller: Caller, letter_id: str, *, version: int | None = None) -> Json:
        return await self._post(caller, letter_id, "review/confirm", version=version)

    async def release(
        self, caller: Caller, letter_id: str, *, notify_by_email: bool, version: int | None = None
    ) -> Json:
        return await self._post(caller, letter_id, "release", {"notify_by_email": notify_by_email}, version=version)

    async def order_print(self, caller: Caller, letter_id: str, options: Json, *, version: int | None = None) -> Json:
        return await self._post(caller, letter_id, "print-order", options, version=version)

    async def revoke(
        self, caller: Caller, letter_id: str, *, unit_id: str | None, item_ids: list[str] | None, reason: str
    ) -> Json:
        payload = {"unit_id": unit_id, "item_ids": item_ids, "reason": reason}
        return await self._post(caller, letter_id, "revocations", payload)

    async def stuck_letters(self, caller: Caller) -> list[Json]:
        body = await self.json("GET", "/v1/stuck-letters", caller)
        return list(body["letters"])

    async def resend(self, caller: Caller, letter_id: str) -> Json:
        return await self._post(caller, letter_id, "resend")

    async def delete_letter(self, caller: Caller, letter_id: str, *, reason: str) -> Json:
        result: Json = await self.json("DELETE", f"/v1/letters/{letter_id}", caller, params={"reason": reason})
        return result

    async def document_types(self, caller: Caller) -> list[Json]:
        body = await self.json("GET", "/v1/document-types", caller)
        return list(body["nodes"])

    async def add_document_type(self, caller: Caller, name: str, parent_id: str | None = None) -> Json:
        result: Json = await self.json(
            "POST", "/v1/document-types", caller, json={"name": name, "parent_id": parent_id}
        )
        return result

    async def part_pdf(
        self, caller: Caller, letter_id: str, part_id: str
    ) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        return await self.stream(f"/v1/letters/{letter_id}/parts/{part_id}/pdf", caller)

    async def part_thumbnail(
        self, caller: Caller, letter_id: str, part_id: str
    ) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        return await self.stream(f"/v1/letters/{letter_id}/parts/{part_id}/thumbnail", caller)

    async def document_pdf(
        self, caller: Caller, letter_id: str, document_id: str
    ) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        return await self.stream(f"/v1/letters/{letter_id}/documents/{document_id}/pdf", caller)

    async def _post(
        self, caller: Caller, letter_id: str, action: str, payload: Json | None = None, *, version: int | None = None
    ) -> Json:
        # Commands answer without the parts and the released items (a 4,000-part letter is megabytes of each; no
        # command's caller reads them): pages come from /parts, items from GET /letters/{id}.
        result: Json = await self.json(
            "POST",
            f"/v1/letters/{letter_id}/{action}",
            caller,
            json=payload,
            headers=_if_match(version),
            params={"parts": "none", "items": "none"},
        )
        return result
