"""Attack: a captured provider webhook (print status callback into print-dispatch) is sent again, later or at once.

Before: the provider's signature covered the body only, so a webhook captured once (a proxy log, a mirrored request)
could be replayed for ever. Now the signature covers ``<timestamp>.<body>``; print-dispatch refuses a webhook whose
signed timestamp is more than 5 minutes old (or ahead), one without a timestamp, and one whose signature it has seen
before (409, no effect).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from smartpost_print_dispatch.adapters.providers.http import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_MAX_AGE_SECONDS,
    WebhookRefusedError,
    check_webhook,
    sign,
    signed_headers,
)

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "provider-webhook-secret-for-tests"
BODY = json.dumps({"event": "letter.status_changed", "letter": {"id": "pl-1", "status": "sent"}}).encode()


@dataclass
class FakeDispatch:
    applied: list[Any] = field(default_factory=list)

    def apply_update(self, provider: str, update: Any) -> bool:
        self.applied.append((provider, update))
        return True


@pytest.fixture
def service(tmp_path: Path) -> tuple[TestClient, FakeDispatch]:
    from smartpost_print_dispatch.app import create_app
    from smartpost_print_dispatch.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/pd.sqlite3"))
    fake = FakeDispatch()
    app.state.dispatch = fake  # no lifespan: the fake records what would be applied
    app.state.webhook_secrets = {"hybridpost": SECRET}
    return TestClient(app), fake


def _post(client: TestClient, headers: dict[str, str], body: bytes = BODY) -> Any:
    return client.post("/webhooks/hybridpost", content=body, headers={"Content-Type": "application/json", **headers})


def test_a_replayed_webhook_is_refused_and_has_no_effect(service: tuple[TestClient, FakeDispatch]) -> None:
    client, fake = service
    headers = signed_headers(SECRET, BODY)
    first = _post(client, headers)
    assert first.status_code == 200, first.text
    again = _post(client, headers)
    assert again.status_code == 409
    assert again.json()["detail"] == "Webhook bereits erhalten"
    assert len(fake.applied) == 1


@pytest.mark.parametrize("age", [WEBHOOK_MAX_AGE_SECONDS + 5, 3600, 30 * 24 * 3600])
def test_an_old_webhook_is_refused_even_when_its_signature_holds(
    service: tuple[TestClient, FakeDispatch], age: int
) -> None:
    client, fake = service
    answer = _post(client, signed_headers(SECRET, BODY, int(time.time()) - age))
    assert answer.status_code == 401
    assert fake.applied == []


def test_a_webhook_dated_into_the_future_is_refused(service: tuple[TestClient, FakeDispatch]) -> None:
    # Otherwise a webhook signed for next week would stay fresh (and replayable in a new process) until then.
    client, fake = service
    answer = _post(client, signed_headers(SECRET, BODY, int(time.time()) + WEBHOOK_MAX_AGE_SECONDS + 60))
    assert answer.status_code == 401
    assert fake.applied == []


def test_a_body_only_signature_or_a_moved_timestamp_is_refused(service: tuple[TestClient, FakeDispatch]) -> None:
    client, fake = service
    now = int(time.time())
    body_only = "sha256=" + __import__("hmac").new(SECRET.encode(), BODY, "sha256").hexdigest()
    assert _post(client, {SIGNATURE_HEADER: body_only}).status_code == 401, "the old format without a timestamp"
    assert _post(client, {SIGNATURE_HEADER: body_only, TIMESTAMP_HEADER: str(now)}).status_code == 401
    # A captured old webhook with its timestamp header freshened: the signature covers the timestamp.
    old = signed_headers(SECRET, BODY, now - 3600)
    assert _post(client, {**old, TIMESTAMP_HEADER: str(now)}).status_code == 401
    assert (
        _post(client, {TIMESTAMP_HEADER: f"{now}.5", SIGNATURE_HEADER: sign(SECRET, BODY, f"{now}.5")}).status_code
        == 401
    )
    assert fake.applied == []


def test_the_freshness_window_is_five_minutes() -> None:
    now = 1_800_000_000
    assert check_webhook(SECRET, BODY, sign(SECRET, BODY, now - 300), str(now - 300), now=now) == now - 300
    with pytest.raises(WebhookRefusedError):
        check_webhook(SECRET, BODY, sign(SECRET, BODY, now - 301), str(now - 301), now=now)


def test_a_webhook_that_failed_to_apply_is_accepted_when_the_provider_retries(tmp_path: Path) -> None:
    # Found by a review: the signature was recorded before the update was applied, so after a 500 the provider's
    # retry of the same webhook was refused as a replay, on every replica (the database remembers it).
    from smartpost_print_dispatch.app import create_app
    from smartpost_print_dispatch.settings import Settings
    from smartpost_shared.db import make_engine
    from smartpost_shared.seen_once import SharedReplayCache

    class FailingOnce(FakeDispatch):
        failed = False

        def apply_update(self, provider: str, update: Any) -> bool:
            if not self.failed:
                self.failed = True
                raise RuntimeError("database deadlock")
            return super().apply_update(provider, update)

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/pd.sqlite3"))
    fake = FailingOnce()
    app.state.dispatch = fake
    app.state.webhook_secrets = {"hybridpost": SECRET}
    app.state.webhook_replays = SharedReplayCache(make_engine(f"sqlite:///{tmp_path}/pd.sqlite3"))
    client = TestClient(app, raise_server_exceptions=False)
    headers = signed_headers(SECRET, BODY)
    assert _post(client, headers).status_code == 500
    assert _post(client, headers).status_code == 200, "the retry of a webhook that changed nothing"
    assert _post(client, headers).status_code == 409
    assert len(fake.applied) == 1
