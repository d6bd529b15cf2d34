"""Attack: a valid user of the account without the needed role goes past the gateway to assignment, print-dispatch,
notifier or portal-publisher and changes state there.

Before: these services checked the caller's account and actor from the signed claims but trusted the gateway for
the role, so a token of a "prepare" user (or of an ERP connector that may grant no role) could cancel a mailpiece,
import master data, send the digest mails now, or (with no role at all) re-match a letter and invite contacts.
Now every state-changing staff route checks the role in the verified claims (``smartpost_shared.roles``): 403 with
a German detail without it, the route works with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from smartpost_shared.testing.identity import caller_headers

if TYPE_CHECKING:
    from pathlib import Path

ACCOUNT = "acc-roles"
NO_ROLE: tuple[str, ...] = ()


def _refused(answer: Any) -> None:
    assert answer.status_code == 403, answer.text
    assert "Dafür fehlt Ihnen die Berechtigung" in answer.json()["detail"]


# --------------------------------------------------------------------------------------------------- assignment


def _assignment(tmp_path: Path) -> TestClient:
    from smartpost_assignment.adapters.db import create_tables
    from smartpost_assignment.app import create_app
    from smartpost_assignment.settings import Settings
    from smartpost_shared.db import create_platform_tables
    from smartpost_shared.masterdata import create_masterdata_tables
    from smartpost_shared.privacy import create_privacy_tables

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3", log_json=False))
    for create in (create_platform_tables, create_masterdata_tables, create_tables, create_privacy_tables):
        create(app.state.engine)
    return TestClient(app)  # no lifespan: nothing is published


CSV = (
    "account_id,record_type,property_id,reference,name,street,postal_code,city,unit_id,number,contact_id,"
    f"first_name,last_name,role,start\n{ACCOUNT},property,P1,1020,WEG Parkallee 7,Parkallee 7,10115,Berlin,,,,,,,\n"
).encode()


@pytest.mark.parametrize("roles", [NO_ROLE, ("prepare",), ("prepare", "release")])
def test_a_master_data_import_needs_the_import_or_admin_role(tmp_path: Path, roles: tuple[str, ...]) -> None:
    client = _assignment(tmp_path)
    headers = caller_headers(ACCOUNT, "eve", audience="assignment", roles=roles) | {"Content-Type": "text/csv"}
    _refused(client.post("/imports", content=CSV, headers=headers))
    for allowed in ("import", "admin"):
        headers = caller_headers(ACCOUNT, "erp", audience="assignment", roles=[allowed]) | {"Content-Type": "text/csv"}
        answer = client.post("/imports", content=CSV, headers=headers)
        assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("roles", [NO_ROLE, ("release",), ("import",)])
def test_re_matching_a_letter_needs_the_prepare_role(tmp_path: Path, roles: tuple[str, ...]) -> None:
    client = _assignment(tmp_path)
    _refused(client.post("/letters/L1/rematch", headers=caller_headers(ACCOUNT, audience="assignment", roles=roles)))
    # With the role the route runs (the letter is unknown to this fresh service: 404, not 403).
    answer = client.post(
        "/letters/L1/rematch", headers=caller_headers(ACCOUNT, audience="assignment", roles=["prepare"])
    )
    assert answer.status_code == 404, answer.text


# ------------------------------------------------------------------------------------------------ print-dispatch


@dataclass
class FakeDispatch:
    cancelled: list[tuple[str, str]] = field(default_factory=list)

    async def cancel(self, account: str, mailpiece_id: str) -> str:
        self.cancelled.append((account, mailpiece_id))
        return "cancelled"

    def estimate(self, account: str, items: Any, options: Any) -> dict[str, Any]:
        return {"account": account, "mailpieces": []}


def _print_dispatch(tmp_path: Path) -> tuple[TestClient, FakeDispatch]:
    from smartpost_print_dispatch.app import create_app
    from smartpost_print_dispatch.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/pd.sqlite3"))
    fake = FakeDispatch()
    app.state.dispatch = fake
    return TestClient(app), fake


@pytest.mark.parametrize("roles", [NO_ROLE, ("prepare",), ("import",)])
def test_cancelling_a_mailpiece_needs_the_release_role(tmp_path: Path, roles: tuple[str, ...]) -> None:
    client, fake = _print_dispatch(tmp_path)
    headers = caller_headers(ACCOUNT, "eve", audience="print-dispatch", roles=roles)
    _refused(client.post("/mailpieces/M1/cancel", headers=headers))
    assert fake.cancelled == []
    release = caller_headers(ACCOUNT, "rita", audience="print-dispatch", roles=["release"])
    answer = client.post("/mailpieces/M1/cancel", headers=release)
    assert answer.status_code == 200, answer.text
    assert fake.cancelled == [(ACCOUNT, "M1")]


def test_a_print_estimate_needs_a_staff_role(tmp_path: Path) -> None:
    client, _ = _print_dispatch(tmp_path)
    item = {
        "contact_id": "c1",
        "part_id": "p1",
        "storage_key": f"accounts/{ACCOUNT}/letters/L/parts/D/00000.pdf",
        "page_count": 1,
    }
    body = {"items": [item]}
    for roles in (NO_ROLE, ("import",)):
        _refused(
            client.post(
                "/estimates", json=body, headers=caller_headers(ACCOUNT, audience="print-dispatch", roles=roles)
            )
        )
    answer = client.post(
        "/estimates", json=body, headers=caller_headers(ACCOUNT, audience="print-dispatch", roles=["prepare"])
    )
    assert answer.status_code != 403, answer.text


# ------------------------------------------------------------------------------------------------------ notifier


@dataclass
class FakeNotifier:
    digests: list[tuple[str, dt.date]] = field(default_factory=list)

    def run_digest(self, account_id: str, day: dt.date) -> int:
        self.digests.append((account_id, day))
        return 3

    def mail_counts(self, account_id: str) -> dict[str, Any]:
        return {}


def _notifier(tmp_path: Path) -> tuple[TestClient, FakeNotifier]:
    from smartpost_notifier.app import create_app
    from smartpost_notifier.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/n.sqlite3"))
    fake = FakeNotifier()
    app.state.notifier = fake  # no lifespan: nothing is sent, the fake records what would be
    return TestClient(app), fake


@pytest.mark.parametrize("roles", [NO_ROLE, ("prepare", "release"), ("import",)])
def test_running_the_digest_now_needs_the_admin_role(tmp_path: Path, roles: tuple[str, ...]) -> None:
    client, fake = _notifier(tmp_path)
    url = "/internal/digests/run?day=2026-11-30"
    _refused(client.post(url, headers=caller_headers(ACCOUNT, "eve", audience="notifier", roles=roles)))
    assert fake.digests == []
    answer = client.post(url, headers=caller_headers(ACCOUNT, "chef", audience="notifier", roles=["admin"]))
    assert answer.status_code == 200, answer.text
    assert fake.digests == [(ACCOUNT, dt.date(2026, 11, 30))]


def test_mail_stats_need_a_staff_role(tmp_path: Path) -> None:
    client, _ = _notifier(tmp_path)
    _refused(
        client.get("/internal/mails/stats", headers=caller_headers(ACCOUNT, audience="notifier", roles=["import"]))
    )
    answer = client.get(
        "/internal/mails/stats", headers=caller_headers(ACCOUNT, audience="notifier", roles=["release"])
    )
    assert answer.status_code == 200, answer.text


# ---------------------------------------------------------------------------------------------- portal-publisher


@pytest.mark.parametrize("path", ["/internal/invitations", "/internal/invitations/email"])
@pytest.mark.parametrize("roles", [NO_ROLE, ("admin",), ("import",)])
def test_inviting_a_contact_needs_the_prepare_or_release_role(
    tmp_path: Path, path: str, roles: tuple[str, ...]
) -> None:
    from pydantic import SecretStr

    from smartpost_portal_publisher.app import create_app
    from smartpost_portal_publisher.settings import Settings
    from smartpost_shared.storage import MemoryStore

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/p.sqlite3", download_link_secret=SecretStr("x" * 32), log_json=False
    )
    app = create_app(settings, store=MemoryStore())
    app.state.create_tables()
    client = TestClient(app)  # no lifespan: nothing is published or mailed
    headers = caller_headers(ACCOUNT, "eve", audience="portal-publisher", roles=roles)
    _refused(client.post(path, json={"contact_id": "c-unknown"}, headers=headers))
    for allowed in ("prepare", "release"):
        headers = caller_headers(ACCOUNT, "anna", audience="portal-publisher", roles=[allowed])
        # The route runs: the contact is unknown to this portal (404), not refused for the role.
        answer = client.post(path, json={"contact_id": "c-unknown"}, headers=headers)
        assert answer.status_code == 404, answer.text
