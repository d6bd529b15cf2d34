"""A local hybrid-mail provider that behaves like the real APIs (Pingen / LetterXpress style) for tests and demos.

    python -m smartpost_print_dispatch.fake_provider --port 8107 [--webhook-url URL] [--auto-advance-seconds 5]

- ``POST /v1/letters`` (Bearer key, ``Idempotency-Key`` header, base64 PDF + MD5): checks the PDF (A4 portrait,
  page limit), keeps ONE letter per idempotency key (a repeated key returns the stored letter, even while the
  first request is still being answered), answers 201 / 200.
- ``GET /v1/letters/{id}``, ``POST /v1/letters/{id}/cancel``; status changes are pushed to the webhook URL,
  signed ``X-Webhook-Signature: sha256=<hmac>``.
- Failure injection for tests: ``POST /_control`` with ``fail_submits`` (next n submits answer 500),
  ``submit_delay_seconds`` (slow answer AFTER the letter is stored), ``get_delay_seconds``, ``reject_next``,
  ``honour_idempotency`` (false: every request is a new letter, like a provider without idempotency keys);
  ``POST /_control/letters/{id}/status`` moves a letter; ``GET /_control/letters`` lists letters with the number
  of submit requests each got.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import pikepdf
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import Response

from smartpost_print_dispatch.adapters.providers.http import signed_headers
from smartpost_print_dispatch.domain.geometry import MM_PER_POINT, is_a4

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROGRESSION = ["submitted", "printing", "sent", "delivered"]


@dataclass
class FakeConfig:
    # Random unless given: whoever starts the fake hands the same values to print-dispatch.
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_url: str | None = None
    max_pages: int = 200
    auto_advance_seconds: float = 0.0
    fail_submits: int = 0
    submit_delay_seconds: float = 0.0
    get_delay_seconds: float = 0.0
    reject_next: str | None = None
    # False: behaves like a provider without idempotency keys - every request is a new letter (prints again).
    honour_idempotency: bool = True


@dataclass
class FakeLetter:
    id: str
    reference: str
    idempotency_key: str
    status: str
    pages: int
    registered: str
    request: dict[str, Any]
    pdf: bytes
    created_at: str
    submit_requests: int = 1
    tracking_number: str | None = None
    reason: str | None = None
    history: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "status": self.status,
            "pages": self.pages,
            "registered": self.registered,
            "tracking_number": self.tracking_number,
            "reason": self.reason,
            "created_at": self.created_at,
        }


class FakeProvider:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.letters: dict[str, FakeLetter] = {}
        self.by_key: dict[str, str] = {}
        self.submit_requests = 0
        self.webhooks_sent: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()

    def check_pdf(self, data: bytes) -> int:
        try:
            with pikepdf.open(io.BytesIO(data)) as pdf:
                pages = list(pdf.pages)
                for number, page in enumerate(pages, start=1):
                    box = page.mediabox
                    width = abs(float(box[2]) - float(box[0])) * MM_PER_POINT
                    height = abs(float(box[3]) - float(box[1])) * MM_PER_POINT
                    if int(page.obj.get("/Rotate", 0)) % 180 == 90:
                        width, height = height, width
                    if not is_a4(width, height):
                        raise HTTPException(422, f"file_not_a4_portrait: page {number} is {width:.0f}x{height:.0f} mm")
        except pikepdf.PdfError as exc:
            raise HTTPException(422, f"file_invalid: {exc}") from exc
        if len(pages) > self.config.max_pages:
            raise HTTPException(422, f"file_too_many_pages: {len(pages)} > {self.config.max_pages}")
        return len(pages)

    async def set_status(
        self, letter: FakeLetter, status: str, tracking: str | None = None, reason: str | None = None
    ) -> None:
        letter.status = status
        letter.history.append(status)
        if tracking:
            letter.tracking_number = tracking
        elif status == "sent" and letter.registered != "none" and letter.tracking_number is None:
            letter.tracking_number = "RR" + "".join(secrets.choice("0123456789") for _ in range(9)) + "DE"
        if reason:
            letter.reason = reason
        await self.send_webhook(letter)

    async def send_webhook(self, letter: FakeLetter) -> None:
        if not self.config.webhook_url:
            return
        body = json.dumps({"event": "letter.status_changed", "letter": letter.public()}).encode()
        for attempt in range(3):
            # Signed with the time of each attempt (the receiver refuses old and replayed webhooks).
            headers = {"Content-Type": "application/json", **signed_headers(self.config.webhook_secret, body)}
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.post(self.config.webhook_url, content=body, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.2 * (attempt + 1))
            else:
                self.webhooks_sent.append({"letter": letter.id, "status": letter.status, "code": response.status_code})
                return
        self.webhooks_sent.append({"letter": letter.id, "status": letter.status, "code": None})

    async def advance_all(self) -> None:
        for letter in list(self.letters.values()):
            if letter.status in PROGRESSION[:-1]:
                await self.set_status(letter, PROGRESSION[PROGRESSION.index(letter.status) + 1])


def create_fake_app(config: FakeConfig | None = None) -> FastAPI:  # noqa: C901, PLR0915 - one small fake server
    fake = FakeProvider(config or FakeConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        if fake.config.auto_advance_seconds > 0:

            async def advance() -> None:
                while True:
                    await asyncio.sleep(fake.config.auto_advance_seconds)
                    await fake.advance_all()

            task = asyncio.create_task(advance())
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="Fake hybrid-mail provider", lifespan=lifespan)
    app.state.fake = fake

    def authorize(authorization: str | None) -> None:
        if authorization != f"Bearer {fake.config.api_key}":
            raise HTTPException(401, "invalid api key")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/letters", status_code=201)
    async def create_letter(
        request: Request,
        response: Response,
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> dict[str, Any]:
        authorize(authorization)
        if not idempotency_key and fake.config.honour_idempotency:
            raise HTTPException(400, "Idempotency-Key header required")
        idempotency_key = idempotency_key or ""
        async with fake.lock:
            fake.submit_requests += 1
            existing = fake.by_key.get(idempotency_key) if fake.config.honour_idempotency else None
            if existing is not None:
                letter = fake.letters[existing]
                letter.submit_requests += 1
                response.status_code = 200
            else:
                if fake.config.fail_submits > 0:
                    fake.config.fail_submits -= 1
                    raise HTTPException(500, "internal error (injected)")
                if fake.config.reject_next:
                    reason, fake.config.reject_next = fake.config.reject_next, None
                    raise HTTPException(422, reason)
                body = await request.json()
                try:
                    data = base64.b64decode(body["file_base64"], validate=True)
                except (KeyError, binascii.Error) as exc:
                    raise HTTPException(422, f"file_base64 missing or invalid: {exc}") from exc
                if hashlib.md5(data).hexdigest() != body.get("file_checksum_md5"):  # noqa: S324
                    raise HTTPException(422, "file_checksum_md5 does not match")
                pages = fake.check_pdf(data)
                letter = FakeLetter(
                    id="lt_" + secrets.token_hex(8),
                    reference=str(body.get("reference", "")),
                    idempotency_key=idempotency_key,
                    status="submitted",
                    pages=pages,
                    registered=str(body.get("registered", "none")),
                    request={k: v for k, v in body.items() if k != "file_base64"},
                    pdf=data,
                    created_at=datetime.now(UTC).isoformat(),
                    history=["submitted"],
                )
                fake.letters[letter.id] = letter
                fake.by_key[idempotency_key] = letter.id
        # Slow answer AFTER the letter exists: the client may give up or die, the letter is already accepted.
        # Lowering the delay through /_control also shortens answers already waiting.
        waited = 0.0
        while waited < fake.config.submit_delay_seconds:
            await asyncio.sleep(0.05)
            waited += 0.05
        return letter.public()

    def find(letter_id: str) -> FakeLetter:
        letter = fake.letters.get(letter_id)
        if letter is None:
            raise HTTPException(404, f"letter {letter_id} not found")
        return letter

    @app.get("/v1/letters/{letter_id}")
    async def get_letter(letter_id: str, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        authorize(authorization)
        if fake.config.get_delay_seconds > 0:
            await asyncio.sleep(fake.config.get_delay_seconds)
        return find(letter_id).public()

    @app.post("/v1/letters/{letter_id}/cancel")
    async def cancel_letter(letter_id: str, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        authorize(authorization)
        letter = find(letter_id)
        if letter.status not in ("submitted", "validating", "accepted"):
            raise HTTPException(409, f"letter is {letter.status}, too late to cancel")
        await fake.set_status(letter, "cancelled")
        return letter.public()

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        body = await request.json()
        for key, value in body.items():
            if not hasattr(fake.config, key):
                raise HTTPException(422, f"unknown setting {key}")
            setattr(fake.config, key, value)
        return fake.config.__dict__

    @app.get("/_control/letters")
    async def control_letters() -> dict[str, Any]:
        return {
            "submit_requests": fake.submit_requests,
            "letters": [
                {
                    **letter.public(),
                    "idempotency_key": letter.idempotency_key,
                    "submit_requests": letter.submit_requests,
                    "history": letter.history,
                    "request": letter.request,
                }
                for letter in fake.letters.values()
            ],
            "webhooks_sent": fake.webhooks_sent,
        }

    @app.get("/_control/letters/{letter_id}/file")
    async def control_file(letter_id: str) -> Response:
        return Response(find(letter_id).pdf, media_type="application/pdf")

    @app.post("/_control/letters/{letter_id}/status")
    async def control_status(letter_id: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        letter = find(letter_id)
        await fake.set_status(letter, str(body["status"]), body.get("tracking_number"), body.get("reason"))
        return letter.public()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8107)
    # Secrets come from the environment (not argv, which every local user can read in the process list).
    api_key = os.environ.get("SMARTPOST_FAKE_PROVIDER_API_KEY") or secrets.token_urlsafe(24)
    webhook_secret = os.environ.get("SMARTPOST_FAKE_PROVIDER_WEBHOOK_SECRET") or secrets.token_urlsafe(24)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--auto-advance-seconds", type=float, default=0.0)
    parser.add_argument("--submit-delay-seconds", type=float, default=0.0)
    parser.add_argument("--max-pages", type=int, default=200)
    args = parser.parse_args()
    config = FakeConfig(
        api_key=api_key,
        webhook_secret=webhook_secret,
        webhook_url=args.webhook_url,
        auto_advance_seconds=args.auto_advance_seconds,
        submit_delay_seconds=args.submit_delay_seconds,
        max_pages=args.max_pages,
    )
    uvicorn.run(create_fake_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
