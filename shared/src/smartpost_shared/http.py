"""HTTP helpers every service's wiring uses: bounded request bodies, proof before body, safe download names.

:class:`BodyLimitMiddleware` refuses a body larger than the service accepts while it streams in: a declared
``Content-Length`` above the limit is answered 413 before a byte is read, a chunked body is cut off as soon as it
passes the limit (nothing is buffered beyond it). With ``precheck`` the caller is checked from the headers first
(a session cookie, signed caller claims), so an unauthenticated client cannot make the service read its upload.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import HTTPException

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
    # Returns None to let the request through, or (status, German message) to refuse it before its body is read.
    Precheck = Callable[[Scope], Awaitable[tuple[int, str] | None]]

TOO_LARGE = "Die Anfrage ist zu groß."
# Services without uploads take JSON bodies only; uploads may exceed their file limit by the multipart framing.
JSON_BODY_LIMIT = 16 * 1024 * 1024
MULTIPART_OVERHEAD = 1024 * 1024
# Forms and JSON of a service whose uploads are large (gateway, letters): no staff form comes near this.
FORM_BODY_LIMIT = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimitMiddleware:
    """``max_bytes`` bounds every body; ``other_max_bytes`` (optional) the bodies that are not multipart uploads.

    A service whose upload limit is 200 MB need not parse 200 MB of JSON or form fields: those stay small.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        precheck: Precheck | None = None,
        other_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.precheck = precheck
        self.other_max_bytes = other_max_bytes

    def _limit(self, scope: Scope) -> int:
        if self.other_max_bytes is None or _content_type(scope).startswith("multipart/"):
            return self.max_bytes
        return min(self.max_bytes, self.other_max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if self.precheck is not None:
            refusal = await self.precheck(scope)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, TOO_LARGE)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read; FastAPI answers it as 413 (nothing more is read).
                    raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        await self.app(scope, limited, send)


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).decode("latin-1").strip().lower()
    return ""


# Pages of the staff gateway: only the gateway's own scripts and styles, no inline script or event handler, no
# plugins, no <base> rewriting, not framable, forms only to the gateway itself.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# The recipient portal: the same, but an account's logo may come from its own HTTPS address.
PORTAL_CSP = STRICT_CSP.replace("img-src 'self' data:", "img-src 'self' data: https:")


class SecurityHeadersMiddleware:
    """Adds ``Content-Security-Policy`` and the other security headers to every HTTP response.

    ``X-Content-Type-Options``, ``Referrer-Policy`` and ``X-Frame-Options`` too; pages, fragments, static files,
    errors and the body limit's refusals alike, unless a route set its own. PDFs get no policy: the browser's PDF
    viewer is a plugin that ``object-src 'none'`` would blank (``nosniff`` keeps a PDF from being read as HTML).
    """

    def __init__(self, app: ASGIApp, *, csp: str = STRICT_CSP) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
            # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the own login form's
            # POST, and the gateway's login-CSRF check needs the real origin; other sites still get no referrer.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                pdf = any(n.lower() == b"content-type" and v.startswith(b"application/pdf") for n, v in headers)
                if pdf:
                    present.add(b"content-security-policy")
                headers += [(name, value) for name, value in self.headers if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    # The client may still be sending; closing tells it to stop instead of waiting for it to finish.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def content_disposition(disposition: str, filename: str) -> str:
    """``Content-Disposition`` for any file name (RFC 6266 / RFC 5987): an ASCII fallback plus ``filename*``.

    Header values must be Latin-1; "Abrechnung €ş.pdf" made a 500 before. Quotes, backslashes and control
    characters never reach the fallback.
    """
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(c if c.isprintable() and c not in '"\\;' else "_" for c in ascii_name).strip() or "dokument"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
