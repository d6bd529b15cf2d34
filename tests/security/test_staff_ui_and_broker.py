"""Attacks on the staff UI's script policy and on the broker's ACLs (issue #13, items 2 and 6).

Each test is one attack; it fails if the attack succeeds. The stored-XSS attack with hostile master data on every
staff page runs in chromium against the real services: ``services/gateway/tests/e2e/test_gateway_stored_xss.py``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from smartpost_gateway.app import create_app
from smartpost_gateway.settings import Settings
from smartpost_shared import kafka_acls
from smartpost_shared.topics import ALL_TOPICS

ACL_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "bootstrap-acls.sh"


def gateway() -> TestClient:
    settings = Settings(
        staff_users={},
        database_url=f"sqlite:///{tempfile.mkdtemp(prefix='gw-csp-')}/gateway.sqlite3",
        log_json=False,
    )
    transport = httpx.MockTransport(lambda _request: httpx.Response(503))
    return TestClient(create_app(settings, transport=transport), base_url="https://gateway.test")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/login"),  # a page
        ("GET", "/serienbriefe"),  # a redirect
        ("GET", "/static/app.js"),  # a static file
        ("GET", "/nirgendwo"),  # the German error page
        ("POST", "/serienbriefe/x/dokumente"),  # an upload refused before its body is read
    ],
)
def test_a_script_planted_in_a_gateway_response_would_not_run(method: str, path: str) -> None:
    """Whatever a payload manages to put into a response, inline script and handlers are refused by the browser."""
    with gateway() as client:
        response = client.request(
            method,
            path,
            headers={"accept": "text/html", "content-type": "multipart/form-data; boundary=x"},
            content=b"--x--" if method == "POST" else None,
            follow_redirects=False,
        )
    policy = response.headers.get("content-security-policy", "")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives.get("script-src") == "'self'", f"{path}: {policy!r}"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert directives.get("object-src") == "'none'"
    assert directives.get("base-uri") == "'none'"
    assert response.headers.get("x-content-type-options") == "nosniff"


def _granted() -> dict[str, dict[str, set[str]]]:
    with tempfile.TemporaryDirectory() as root:
        log = Path(root) / "calls.log"
        for tool in ("kafka-configs.sh", "kafka-acls.sh"):
            stub = Path(root) / tool
            stub.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
            stub.chmod(0o755)
        env = {"PATH": os.environ["PATH"], "KAFKA_BIN": root, "KAFKA_BOOTSTRAP": "kafka:9092"}
        env |= {kafka_acls.password_variable(u): "x" * 24 for u in kafka_acls.users()}
        subprocess.run(["sh", str(ACL_SCRIPT)], env=env, check=True, capture_output=True, timeout=30)
        lines = log.read_text().splitlines()
    granted: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for line in lines:
        args = line.split()
        if "--allow-principal" in args and "--topic" in args:
            user = args[args.index("--allow-principal") + 1].removeprefix("User:")
            granted[user][args[args.index("--operation") + 1]].add(args[args.index("--topic") + 1])
    return granted


GRANTED = _granted()


@pytest.mark.parametrize("user", kafka_acls.users())
def test_a_broker_user_cannot_read_or_write_topics_beyond_its_role(user: str) -> None:
    """A compromised service (or the ERP connector) tries every topic: read what it does not consume, write what it
    does not produce. The production ACLs must refuse all of it."""
    consumes = {t.name for t in ALL_TOPICS if user in t.consumers}
    produces = {t.name for t in ALL_TOPICS if t.producer == user}
    if user == "assignment":
        produces.add("masterdata.events")
    readable = {t for t in GRANTED[user]["Read"] if not t.endswith(".dlq")}
    writable = {t for t in GRANTED[user]["Write"] if not t.endswith(".dlq")}
    assert readable <= consumes, f"{user} may read {readable - consumes}"
    if user != "gateway":  # re-drive writes dead letters back to their own topic, for admin staff only
        assert writable <= produces, f"{user} may write {writable - produces}"
        dead_letters = {t for t in GRANTED[user]["Read"] if t.endswith(".dlq")}
        assert dead_letters == set(), f"{user} may read dead letters {dead_letters}"
