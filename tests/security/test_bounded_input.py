"""Bounded input (issue #13, item 7): bodies are limited while they stream, after the caller is proven.

Before: a 500 MB upload to the assignment importer grew the process by ~1 GB and the gateway read 500 MB before it
checked the login; "Abrechnung €ş.pdf" answered 500 on download.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from smartpost_shared.devstack import free_port
from smartpost_shared.http import BodyLimitMiddleware, content_disposition
from smartpost_shared.identity import caller_precheck

if TYPE_CHECKING:
    from collections.abc import Iterator

LIMIT = 8 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)


def rss_mb() -> float:
    with open("/proc/self/status") as status:  # noqa: PTH123
        line = next(ln for ln in status if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    seen = {"bytes": 0}
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT, precheck=caller_precheck("/open"))

    @app.post("/open/upload")
    async def upload(request: Request) -> dict[str, int]:
        async for chunk in request.stream():
            seen["bytes"] += len(chunk)
        return seen

    @app.post("/internal/import")
    async def internal(request: Request) -> dict[str, int]:
        body = await request.body()
        seen["bytes"] += len(body)
        return seen

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        srv.should_exit = True
        thread.join(10)


def gigabyte() -> Iterator[bytes]:
    for _ in range(1024):
        yield CHUNK


def post_stream(url: str, **headers: str) -> int | None:
    try:
        return httpx.post(url, content=gigabyte(), headers=headers, timeout=60).status_code
    except httpx.HTTPError:
        return None  # the server hung up on the rest of the gigabyte: also a refusal


def test_a_gigabyte_upload_is_cut_at_the_limit_and_memory_stays_flat(server: tuple[str, dict[str, int]]) -> None:
    url, seen = server
    before = rss_mb()
    status = post_stream(f"{url}/open/upload")
    grown = rss_mb() - before
    assert status in {413, None}
    assert seen["bytes"] <= LIMIT + len(CHUNK), "nothing beyond the limit reached the application"
    assert grown < 64, f"process grew by {grown:.0f} MB for a 1 GB upload"
    print(f"\n1 GB chunked upload: cut after {seen['bytes'] / 2**20:.0f} MB, RSS +{grown:.1f} MB")


def test_a_declared_oversize_body_is_refused_before_reading(server: tuple[str, dict[str, int]]) -> None:
    url, seen = server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        # Announces a body over the limit and sends only its first bytes: the answer comes without waiting.
        conn.sendall(
            f"POST /open/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode() + b"x" * 10
        )
        # Headers and body may arrive in separate segments: read until the server closes ("connection: close").
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
        answer = received.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "Die Anfrage ist zu gro" in answer
    assert seen["bytes"] == 0


def test_no_proof_no_body_read(server: tuple[str, dict[str, int]]) -> None:
    url, seen = server
    started = time.monotonic()
    status = post_stream(f"{url}/internal/import")
    assert status in {401, None}
    assert seen["bytes"] == 0, "an unproven caller made the service read its upload"
    assert time.monotonic() - started < 30
    print(f"\nunproven 1 GB upload refused after {time.monotonic() - started:.2f} s")


def test_every_service_bounds_its_bodies() -> None:
    from smartpost_assignment.app import create_app as assignment_app
    from smartpost_gateway.app import create_app as gateway_app
    from smartpost_portal_publisher.app import create_app as portal_app
    from smartpost_shared.storage import MemoryStore

    for app in (assignment_app(), gateway_app(), portal_app(store=MemoryStore())):
        assert any(m.cls is BodyLimitMiddleware for m in app.user_middleware)


@pytest.mark.parametrize("name", ["Abrechnung €ş.pdf", 'böse"; filename=x.exe', "Zeile\r\nX-Evil: 1.pdf"])
def test_any_file_name_gives_a_latin1_header(name: str) -> None:
    header = content_disposition("attachment", name)
    header.encode("latin-1")
    assert "\r" not in header
    assert "\n" not in header
    assert header.count('"') == 2
    assert "filename*=UTF-8''" in header


def test_max_rss_is_reported() -> None:
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
