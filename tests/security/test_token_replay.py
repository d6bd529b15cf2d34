"""Attack: a captured caller token (``X-SmartPost-Caller``) is sent again within its lifetime to change state twice.

Before: a token was proof for as long as it lived (60 s from the gateway, up to 1 h allowed), so whoever saw one
request's headers (a proxy log, a mirrored request) could repeat that request, or send another state-changing
request with the same claims, until it expired. Now each service process remembers the token ids (``jti``) of the
state-changing requests (POST/PUT/PATCH/DELETE) it accepted until the token expires and refuses a second use (401);
reads may reuse a token. A token without ``jti`` proves no state-changing request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from fastapi.testclient import TestClient

from smartpost_shared.identity import ALGORITHM, CALLER_HEADER
from smartpost_shared.testing import identity as test_identity
from smartpost_shared.testing.identity import caller_headers

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

ACCOUNT = "acc-replay"


@dataclass
class FakeNotifier:
    digests: list[tuple[str, dt.date]] = field(default_factory=list)

    def run_digest(self, account_id: str, day: dt.date) -> int:
        self.digests.append((account_id, day))
        return 1

    def mail_counts(self, account_id: str) -> dict[str, Any]:
        return {}


def _notifier(tmp_path: Path) -> tuple[TestClient, FakeNotifier]:
    from smartpost_notifier.app import create_app
    from smartpost_notifier.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/n.sqlite3"))
    fake = FakeNotifier()
    app.state.notifier = fake
    return TestClient(app), fake


def _captured(audience: str, roles: list[str]) -> dict[str, str]:
    """One token, as an eavesdropper copied it from one request."""
    return {CALLER_HEADER: caller_headers(ACCOUNT, "chef", audience=audience, roles=roles)[CALLER_HEADER]}


def test_a_captured_token_changes_state_only_once(tmp_path: Path) -> None:
    client, fake = _notifier(tmp_path)
    captured = _captured("notifier", ["admin"])
    url = "/internal/digests/run?day=2026-11-30"
    assert client.post(url, headers=captured).status_code == 200
    again = client.post(url, headers=captured)
    assert again.status_code == 401
    assert again.json()["detail"] == "Aufrufer nicht nachgewiesen"
    other_day = client.post("/internal/digests/run?day=2026-11-29", headers=captured)
    assert other_day.status_code == 401, "another state-changing request with the same token"
    assert len(fake.digests) == 1


def test_a_token_used_for_reads_still_proves_one_state_change_and_reads_stay_possible(tmp_path: Path) -> None:
    client, fake = _notifier(tmp_path)
    captured = _captured("notifier", ["admin"])
    for _ in range(3):
        assert client.get("/internal/mails/stats", headers=captured).status_code == 200
    assert client.post("/internal/digests/run?day=2026-11-30", headers=captured).status_code == 200
    assert client.post("/internal/digests/run?day=2026-11-30", headers=captured).status_code == 401
    assert client.get("/internal/mails/stats", headers=captured).status_code == 200
    assert len(fake.digests) == 1


def test_a_refused_state_change_spends_the_token_too(tmp_path: Path) -> None:
    # A 403 (role missing) or a failing command does not hand the token back for another try.
    client, fake = _notifier(tmp_path)
    captured = _captured("notifier", ["prepare"])
    assert client.post("/internal/digests/run?day=2026-11-30", headers=captured).status_code == 403
    assert client.post("/internal/digests/run?day=2026-11-30", headers=captured).status_code == 401
    assert fake.digests == []


def test_a_token_without_jti_proves_no_state_change(tmp_path: Path) -> None:
    client, fake = _notifier(tmp_path)
    now = int(time.time())
    claims = {
        "iss": test_identity.TEST_ISSUER,
        "aud": "notifier",
        "sub": "chef",
        "acc": ACCOUNT,
        "roles": ["admin"],
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, test_identity._ISSUER._key, algorithm=ALGORITHM)
    headers = {CALLER_HEADER: token}
    assert client.get("/internal/mails/stats", headers=headers).status_code == 200, "reads need no jti"
    assert client.post("/internal/digests/run?day=2026-11-30", headers=headers).status_code == 401
    assert fake.digests == []


def test_replays_on_the_letters_service_are_refused_before_the_command_runs(tmp_path: Path) -> None:
    from smartpost_letters.app import create_app
    from smartpost_letters.settings import Settings
    from smartpost_shared.storage import MemoryStore

    app = create_app(Settings(data_dir=str(tmp_path / "letters"), log_json=False), store=MemoryStore())
    client = TestClient(app)
    captured = _captured("letters", ["prepare"])
    first = client.post("/v1/document-types", json={"name": "Briefe"}, headers=captured)
    assert first.status_code == 201, first.text
    assert client.post("/v1/document-types", json={"name": "Briefe 2"}, headers=captured).status_code == 401
    tree = client.get("/v1/document-types", headers=captured).json()
    assert "Briefe 2" not in str(tree)


def test_a_token_replayed_to_another_replica_is_refused(tmp_path: Path) -> None:
    """Two replicas of one service share its database: a token spent on one is refused by the other (and after a
    restart), not only by the process that saw it first."""
    from smartpost_notifier.app import create_app
    from smartpost_notifier.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/shared.sqlite3")
    replicas = [create_app(settings), create_app(settings)]
    fakes = [FakeNotifier(), FakeNotifier()]
    for app, fake in zip(replicas, fakes, strict=True):
        app.state.notifier = fake
    first, second = (TestClient(app) for app in replicas)
    captured = _captured("notifier", ["admin"])
    url = "/internal/digests/run?day=2026-11-30"
    assert first.post(url, headers=captured).status_code == 200
    replayed = second.post(url, headers=captured)
    assert replayed.status_code == 401
    assert replayed.json()["detail"] == "Aufrufer nicht nachgewiesen"
    restarted = TestClient(create_app(settings))
    restarted.app.state.notifier = FakeNotifier()  # type: ignore[attr-defined]
    assert restarted.post(url, headers=captured).status_code == 401
    assert [len(f.digests) for f in fakes] == [1, 0]
    assert second.post(url, headers=_captured("notifier", ["admin"])).status_code == 200, "a fresh token works"
