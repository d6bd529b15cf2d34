"""Caller identity and event-signing keys for tests that run services in-process (one key pair per test process).

The root conftest calls :func:`install`; a service built in a test then trusts the issuer ``test-suite`` and a
gateway built in a test signs with it. Services started as processes on a local stack trust that stack's own
issuers instead (:meth:`smartpost_shared.devstack.Stack.caller_headers`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from smartpost_shared.identity import CallerTokenIssuer, generate_keypair
from smartpost_shared.topics import ALL_TOPICS

if TYPE_CHECKING:
    from collections.abc import Iterable

TEST_ISSUER = "test-suite"
_PRIVATE, _PUBLIC = generate_keypair()
_ISSUER = CallerTokenIssuer(TEST_ISSUER, _PRIVATE, ttl_seconds=600)


_EVENT_PRIVATE, _EVENT_PUBLIC = generate_keypair()


def install() -> None:
    os.environ.setdefault("SMARTPOST_IDENTITY_TRUSTED_ISSUERS", json.dumps({TEST_ISSUER: {"public_key": _PUBLIC}}))
    os.environ.setdefault("SMARTPOST_IDENTITY_ISSUER", TEST_ISSUER)
    os.environ.setdefault("SMARTPOST_IDENTITY_PRIVATE_KEY", _PRIVATE)
    # Events: a test publishes as any producer (it stands in for the other services), so every producer name
    # trusts this process's event key, and brokers made here sign with it.
    producers = {topic.producer for topic in ALL_TOPICS}
    os.environ.setdefault("SMARTPOST_KAFKA_SIGNING_KEY", _EVENT_PRIVATE)
    os.environ.setdefault("SMARTPOST_KAFKA_TRUSTED_PRODUCERS", json.dumps({p: [_EVENT_PUBLIC] for p in producers}))


def caller_headers(
    account_id: str, actor: str = "test@smartpost.example", *, audience: str, roles: Iterable[str] = ()
) -> dict[str, str]:
    """Headers proving a staff caller of ``account_id`` towards the service ``audience``."""
    return _ISSUER.headers(audience, account_id, actor, roles)
