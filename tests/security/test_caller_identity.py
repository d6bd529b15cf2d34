"""Attacks on the internal HTTP APIs (issue #13, item 1): every route needs signed caller claims for this service.

Before: any caller on the network set ``X-SmartPost-Account: <any account>`` and read or changed that account's
letters, contacts, mailpieces, deliveries and the access window, and named someone else as the releasing person.
"""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from smartpost_shared.identity import (
    CALLER_HEADER,
    CallerTokenIssuer,
    CallerVerifier,
    InvalidCallerError,
    generate_keypair,
)
from smartpost_shared.settings import TrustedIssuer
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import TEST_ISSUER, caller_headers

PLAIN = {"X-SmartPost-Account": "acc-victim", "X-SmartPost-Actor": "chef@hv.de"}


def _apps(tmp_path):  # one app per service, built as its wiring builds it (lifespans not started)
    from smartpost_assignment.app import create_app as assignment_app
    from smartpost_assignment.settings import Settings as AssignmentSettings
    from smartpost_letters.app import create_app as letters_app
    from smartpost_letters.settings import Settings as LettersSettings
    from smartpost_notifier.app import create_app as notifier_app
    from smartpost_notifier.settings import Settings as NotifierSettings
    from smartpost_portal_publisher.app import create_app as portal_app
    from smartpost_portal_publisher.settings import Settings as PortalSettings
    from smartpost_print_dispatch.app import create_app as print_app
    from smartpost_print_dispatch.settings import Settings as PrintSettings

    db = f"sqlite:///{tmp_path}/%s.sqlite3"
    return {
        "letters": (letters_app(LettersSettings(data_dir=str(tmp_path)), store=MemoryStore()), "/v1/letters"),
        "assignment": (assignment_app(AssignmentSettings(database_url=db % "a")), "/contacts"),
        "portal-publisher": (
            portal_app(PortalSettings(database_url=db % "p"), store=MemoryStore()),
            "/internal/access-window",
        ),
        "print-dispatch": (print_app(PrintSettings(database_url=db % "pd")), "/letters/l-1/mailpieces"),
        "notifier": (notifier_app(NotifierSettings(database_url=db % "n")), "/internal/mails/stats"),
    }


@pytest.mark.parametrize("service", ["letters", "assignment", "portal-publisher", "print-dispatch", "notifier"])
def test_no_internal_route_answers_without_proof_of_the_caller(tmp_path, service):
    app, path = _apps(tmp_path)[service]
    client = TestClient(app)
    assert client.get(path).status_code == 401
    assert client.get(path, headers=PLAIN).status_code == 401, "a plain account header is no proof"
    wrong_service = "letters" if service != "letters" else "assignment"
    token_for_other = caller_headers("acc-victim", audience=wrong_service)
    assert client.get(path, headers=token_for_other).status_code == 401, "a token for another service is refused"
    stranger = CallerTokenIssuer(TEST_ISSUER, generate_keypair()[0])  # right name, wrong key
    assert client.get(path, headers=stranger.headers(service, "acc-victim", "x")).status_code == 401


def test_the_audit_log_names_the_verified_actor_not_a_header(tmp_path):
    app, _ = _apps(tmp_path)["letters"]
    client = TestClient(app)
    headers = caller_headers("acc-1", "anna@hv.de", audience="letters", roles=["prepare"]) | {
        "X-SmartPost-Actor": "chef@hv.de"
    }
    doc_type = client.post("/v1/document-types", json={"name": "Briefe"}, headers=headers).json()["created_id"]
    body = {"title": "T", "document_type_id": doc_type, "recipient_groups": ["owners"], "property_id": "p-1"}
    letter = client.post("/v1/letters", json=body, headers=headers)
    assert letter.status_code == 201, letter.text
    audit = client.get(f"/v1/letters/{letter.json()['letter_id']}/audit", headers=headers)
    assert audit.status_code == 200
    assert "anna@hv.de" in audit.text
    assert "chef@hv.de" not in audit.text
    app.state.event_app.close()


def _verifier(**trusted: TrustedIssuer) -> CallerVerifier:
    return CallerVerifier("letters", trusted)


def test_tampered_expired_and_oversized_tokens_are_refused() -> None:
    private, public = generate_keypair()
    issuer = CallerTokenIssuer("gateway", private, ttl_seconds=5)
    verifier = _verifier(gateway=TrustedIssuer(public_key=public))
    token = issuer.mint("letters", "acc-1", "anna@hv.de", ["release"])
    claims = verifier.verify(token)
    assert (claims.account_id, claims.actor, claims.roles) == ("acc-1", "anna@hv.de", frozenset({"release"}))
    header, payload, signature = token.split(".")
    forged_claims = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"acc-1"', b'"acc-2"')
    ).decode()
    with pytest.raises(InvalidCallerError):
        verifier.verify(f"{header}.{forged_claims}.{signature}")
    old = jwt.encode(
        {"iss": "gateway", "aud": "letters", "sub": "a", "acc": "acc-1", "iat": 1, "exp": int(time.time()) - 60},
        issuer._key,
        algorithm="EdDSA",
    )
    with pytest.raises(InvalidCallerError, match="Expired"):
        verifier.verify(old)
    with pytest.raises(InvalidCallerError, match="too long"):
        verifier.verify("a" * 5000)
    none_alg = jwt.encode({"iss": "gateway", "aud": "letters", "sub": "a", "acc": "acc-1"}, None, algorithm="none")
    with pytest.raises(InvalidCallerError):
        verifier.verify(none_alg)


def test_an_issuer_limited_to_accounts_and_services_cannot_act_beyond_them() -> None:
    private, public = generate_keypair()
    erp = CallerTokenIssuer("erp-hv-muster", private)
    limited = TrustedIssuer(public_key=public, accounts=["hv-muster"], audiences=["assignment"])
    assignment = CallerVerifier("assignment", {"erp-hv-muster": limited})
    assert assignment.verify(erp.mint("assignment", "hv-muster", "erp")).account_id == "hv-muster"
    with pytest.raises(InvalidCallerError, match="may not act"):
        assignment.verify(erp.mint("assignment", "other-account", "erp"))
    letters = CallerVerifier("letters", {"erp-hv-muster": limited})
    with pytest.raises(InvalidCallerError, match="may not act"):
        letters.verify(erp.mint("letters", "hv-muster", "erp"))


def test_header_name_is_the_documented_one() -> None:
    assert CALLER_HEADER == "X-SmartPost-Caller"
