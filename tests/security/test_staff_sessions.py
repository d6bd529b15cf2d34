"""Attacks on staff sessions and the staff login (issue #13, items 3-4), against real databases.

Each test is one attack; it fails if the attack succeeds.
"""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from smartpost_gateway.adapters.sessions import SessionStore, ThrottleLimits
from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import Settings
from smartpost_shared.db import make_engine

PASSWORD = "Richtiges-Passwort-1"
HASH = hash_password(PASSWORD)


def gateway(database_url: str, **extra: object) -> TestClient:
    settings = Settings(
        staff_users={"anna@hv.de": {"password_hash": HASH, "account_id": "acc-1", "roles": ["prepare"]}},
        database_url=database_url,
        log_json=False,
        **extra,  # type: ignore[arg-type]
    )
    # The services behind the gateway are not needed for these attacks: every call answers 503.
    transport = httpx.MockTransport(lambda _request: httpx.Response(503))
    return TestClient(create_app(settings, transport=transport), base_url="https://gateway.test")


def sqlite_url() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='gw-sessions-')}/gateway.sqlite3"


def test_a_cookie_copied_before_logout_is_worthless_after_it() -> None:
    with gateway(sqlite_url()) as client:
        page = client.post("/login", data={"login": "anna@hv.de", "password": PASSWORD})
        assert page.status_code == 200
        stolen = client.cookies.get("smartpost_session")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert stolen
        assert csrf
        assert client.post("/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False).status_code == 303
        client.cookies.set("smartpost_session", stolen)
        replay = client.get("/serienbriefe", follow_redirects=False)
        assert replay.status_code == 303
        assert replay.headers["location"] == "/login"


def test_a_forged_cookie_is_no_session() -> None:
    with gateway(sqlite_url()) as client:
        client.cookies.set("smartpost_session", "eyJsIjoiYW5uYUBodi5kZSIsImEiOiJhY2MtMiJ9.AAAA")
        assert client.get("/serienbriefe", follow_redirects=False).headers["location"] == "/login"


def test_session_cookie_is_secure_httponly_and_samesite_outside_local_development() -> None:
    with gateway(sqlite_url(), local_development=False) as client:
        response = client.post("/login", data={"login": "anna@hv.de", "password": PASSWORD}, follow_redirects=False)
        cookie = response.headers["set-cookie"].lower()
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "samesite=lax" in cookie


def test_guessing_a_password_is_throttled_with_a_german_message() -> None:
    with gateway(sqlite_url(), login_max_failures_per_login=3) as client:
        codes = [
            client.post("/login", data={"login": "anna@hv.de", "password": f"falsch-{i}"}).status_code for i in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
        refused = client.post("/login", data={"login": "anna@hv.de", "password": PASSWORD})
        assert refused.status_code == 429, "the right password does not get through a running lockout"
        assert "Zu viele fehlgeschlagene Anmeldeversuche" in refused.text


def test_one_address_cannot_spray_passwords_over_many_logins() -> None:
    with gateway(sqlite_url(), login_max_failures_per_address=4) as client:
        codes = [client.post("/login", data={"login": f"user{i}@hv.de", "password": "x"}).status_code for i in range(6)]
        assert codes.count(429) == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_forty_parallel_guesses_get_no_more_tries_than_the_limit(backend: str, request: pytest.FixtureRequest) -> None:
    url = sqlite_url() if backend == "sqlite" else request.getfixturevalue("postgres_url")
    # Two stores on one database stand for two gateway replicas.
    stores = [SessionStore(make_engine(url)), SessionStore(make_engine(url))]
    limits = ThrottleLimits(per_login=10, per_address=1000, window=timedelta(minutes=15))

    def guess(i: int) -> bool:
        store = stores[i % 2]
        attempt = store.reserve_attempt("anna@hv.de", f"10.0.0.{i}", limits)
        if attempt is None:
            return False
        store.settle(attempt, succeeded=False, login="anna@hv.de")
        return True

    with ThreadPoolExecutor(16) as pool:
        checked = sum(pool.map(guess, range(40)))
    assert checked == 10
