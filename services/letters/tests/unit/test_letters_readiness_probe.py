"""/readyz answers quickly while the event store hangs (its PostgreSQL driver retries a connection for ~50 s)."""

from __future__ import annotations

import asyncio
import threading
import time

from smartpost_letters.app import BoundedProbe


async def test_a_hanging_check_answers_within_its_bound_and_is_not_started_twice() -> None:
    release = threading.Event()
    calls = 0

    def hanging() -> int:
        nonlocal calls
        calls += 1
        release.wait(10)
        return 1

    probe = BoundedProbe(hanging, seconds=0.2)
    started = time.monotonic()
    assert await probe.check() == "error: no answer within 0.2 s"
    assert await probe.check() == "error: no answer within 0.2 s"
    assert time.monotonic() - started < 2
    assert calls == 1  # the second probe waited for the running check instead of occupying another thread
    release.set()
    for _ in range(50):
        if await probe.check() == "ok":
            break
        await asyncio.sleep(0.05)
    assert await probe.check() == "ok"
    assert calls == 2  # a finished check is run again for the next probe


async def test_a_failing_check_reports_its_error() -> None:
    def failing() -> int:
        raise ConnectionError("database unreachable")

    probe = BoundedProbe(failing, seconds=1.0)
    assert await probe.check() == "error: database unreachable"
