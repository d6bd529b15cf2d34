"""Common plumbing of the typed service clients: signed caller claims, error translation, streaming."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from smartpost_shared.logging import get_logger
from smartpost_shared.tracing import httpx_event_hooks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from smartpost_shared.identity import CallerTokenIssuer

log = get_logger(__name__)

COMMAND_HEADER = "X-SmartPost-Command-Id"


@dataclass(frozen=True)
class Caller:
    """Who is calling a service: the logged-in staff user's account, login and roles.

    The gateway signs these as short-lived claims for the one service it calls (``smartpost_shared.identity``);
    the service believes nothing else about the caller.
    """

    account_id: str
    actor: str
    roles: frozenset[str] = frozenset()


class ServiceError(Exception):
    """A service answered with an error (or did not answer); ``status`` is 503 when it was unreachable."""

    def __init__(self, service: str, status: int, detail: str, code: str = "", body: Any = None) -> None:
        super().__init__(f"{service}: HTTP {status}: {detail}")
        self.service = service
        self.status = status
        self.detail = detail
        self.code = code
        self.body = body

    @property
    def unavailable(self) -> bool:
        return self.status in {502, 503, 504}


def _detail_of(response: httpx.Response) -> tuple[str, str, Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, "", None
    if isinstance(body, dict):
        detail = body.get("detail", body)
        code = str(body.get("code", ""))
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg', '')}"
                if isinstance(d, dict)
                else str(d)
                for d in detail
            )
            code = code or "validation_error"
        return str(detail), code, body
    return str(body), "", body


class ServiceClient:
    """One service's base URL and an httpx client; subclasses add typed methods per endpoint."""

    service = "service"

    def __init__(
        self,
        base_url: str,
        *,
        issuer: CallerTokenIssuer,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.issuer = issuer
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            event_hooks=httpx_event_hooks(),  # pass the trace context on (smartpost_shared.tracing)
        )

    def caller_headers(self, caller: Caller | None) -> dict[str, str]:
        if caller is None:
            return {}
        return self.issuer.headers(self.service, caller.account_id, caller.actor, caller.roles)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _checked(self, path: str) -> str:
        """``path`` as built from the gateway's route (ids from the browser's address), if it names one route.

        An id holding "?", "#", "%", a backslash or a dot segment would cut, end or re-route the service path (a
        "prepare" user reaching a "release" route of the same letter): such an id names nothing, answered 404.
        """
        # Query parameters travel as ``params=`` (encoded by httpx), never inside ``path``.
        if any(c in path for c in "?#%\\") or any(seg in {".", ".."} for seg in path.split("/")):
            log.warning("service.path_refused", service=self.service, path=path[:200])
            raise ServiceError(self.service, 404, "not found")
        return path

    async def request(
        self, method: str, path: str, caller: Caller | None, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        path = self._checked(path)
        all_headers = {**self.caller_headers(caller), **(headers or {})}
        try:
            response = await self.http.request(method, path, headers=all_headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(self.service, 503, f"nicht erreichbar ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            detail, code, body = _detail_of(response)
            raise ServiceError(self.service, response.status_code, detail, code, body)
        return response

    async def json(self, method: str, path: str, caller: Caller | None, **kwargs: Any) -> Any:
        response = await self.request(method, path, caller, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def stream(self, path: str, caller: Caller) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        """Open a streamed GET; the caller iterates the body and the response closes when it is exhausted."""
        request = self.http.build_request("GET", self._checked(path), headers=self.caller_headers(caller))
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ServiceError(self.service, 503, f"nicht erreichbar ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            detail, code, error_body = _detail_of(response)
            raise ServiceError(self.service, response.status_code, detail, code, error_body)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return response, body()

    async def alive(self) -> bool:
        try:
            response = await self.http.get("/healthz", timeout=3)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
