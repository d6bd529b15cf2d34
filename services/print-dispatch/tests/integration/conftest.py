"""Real servers for print-dispatch integration tests: the fake provider and the service on free ports."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from smartpost_print_dispatch.fake_provider import FakeConfig, create_fake_app
from smartpost_print_dispatch.testing import PROVIDER_API_KEY, PROVIDER_WEBHOOK_SECRET
from smartpost_shared.devstack import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI


class ServerThread:
    """A uvicorn server (with lifespan) in a background thread: a real HTTP server on 127.0.0.1."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 60) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(15)


class FakeHandle:
    def __init__(self, thread: ServerThread) -> None:
        self.thread = thread
        self.url = thread.url
        self.client = httpx.Client(base_url=thread.url, timeout=10)

    def control(self, **settings: Any) -> None:
        self.client.post("/_control", json=settings).raise_for_status()

    def letters(self) -> dict[str, Any]:
        response = self.client.get("/_control/letters")
        response.raise_for_status()
        return response.json()

    def set_status(self, letter_id: str, status: str, **extra: Any) -> None:
        self.client.post(f"/_control/letters/{letter_id}/status", json={"status": status, **extra}).raise_for_status()


@pytest.fixture
def fake_provider() -> Iterator[FakeHandle]:
    thread = ServerThread(
        create_fake_app(FakeConfig(api_key=PROVIDER_API_KEY, webhook_secret=PROVIDER_WEBHOOK_SECRET)), free_port()
    ).start()
    handle = FakeHandle(thread)
    try:
        yield handle
    finally:
        handle.client.close()
        thread.stop()


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@pytest.fixture
def wait() -> Any:
    return wait_for


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app, port)`` starts a real uvicorn server for ``app``; all are stopped after the test."""
    started: list[ServerThread] = []

    def start(app: FastAPI, port: int | None = None) -> ServerThread:
        thread = ServerThread(app, port or free_port()).start()
        started.append(thread)
        return thread

    yield start
    for thread in reversed(started):
        thread.stop()
