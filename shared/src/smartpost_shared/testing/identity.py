"""Caller identity and event-signing keys for tests that run services in-process (one key pair per test process).

The root conftest calls :func:`install`; a service built in a test then trusts the issuer ``test-suite`` and a
gateway built in a test signs with it. Services started as processes on a local stack trust that stack's own
issuers instead (:meth:`smartpost_shared.devstack.Stack.caller_headers`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import httpx

from smartpost_shared.identity import CALLER_HEADER, CallerTokenIssuer, generate_keypair
from smartpost_shared.topics import ALL_TOPICS

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping

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


class FreshCallerHeaders(dict[str, str]):
    """``{X-SmartPost-Caller: <token>, ...}`` that holds a new token (new ``jti``) each time it is read.

    Services accept a token for one state-changing request only (a replay within its lifetime is refused), as the
    gateway mints one per call. Tests keep a headers dict and send it many times: reading it (``client.post(...,
    headers=h)``, ``h[CALLER_HEADER]``) mints afresh, so each request proves itself once. Add headers with
    ``h | {"Content-Type": ...}`` (stays fresh); a plain dict built from it (``{**h}``) or an
    ``httpx.Client(headers=h)`` keeps the one token read then (use :class:`CallerAuth` for a client).
    """

    def __init__(self, mint: Callable[[], str], extra: Mapping[str, str] | None = None) -> None:
        self._mint = mint
        self._extra = {k: v for k, v in (extra or {}).items() if k.lower() != CALLER_HEADER.lower()}
        super().__init__({CALLER_HEADER: mint(), **self._extra})

    def __getitem__(self, key: str) -> str:
        return self._mint() if key == CALLER_HEADER else self._extra[key]

    def __setitem__(self, key: str, value: str) -> None:
        if key.lower() == CALLER_HEADER.lower():
            # A test that sets the token itself (a tampered or foreign one) sends exactly that one.
            self._mint = lambda: value
        else:
            self._extra[key] = value
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        del self._extra[key]
        super().__delitem__(key)

    def __iter__(self) -> Iterator[str]:
        return iter([CALLER_HEADER, *self._extra])

    def __or__(self, other: Mapping[str, str]) -> FreshCallerHeaders:  # type: ignore[override]
        return FreshCallerHeaders(self._mint, {**self._extra, **other})

    def keys(self) -> list[str]:  # type: ignore[override]
        return [CALLER_HEADER, *self._extra]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(CALLER_HEADER, self._mint()), *self._extra.items()]

    def values(self) -> list[str]:  # type: ignore[override]
        return [self._mint(), *self._extra.values()]

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._mint() if key == CALLER_HEADER else self._extra.get(key, default)

    def update(self, *args: Any, **kwargs: str) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def copy(self) -> dict[str, str]:
        return dict(self.items())


def caller_headers(
    account_id: str, actor: str = "test@smartpost.example", *, audience: str, roles: Iterable[str] = ()
) -> dict[str, str]:
    """Headers proving a staff caller of ``account_id`` towards the service ``audience`` (a new token per read)."""
    frozen = tuple(roles)
    return FreshCallerHeaders(lambda: _ISSUER.mint(audience, account_id, actor, frozen))


class CallerAuth(httpx.Auth):
    """httpx authentication: every request of a client carries its own freshly signed caller token."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self._mint = mint

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[CALLER_HEADER] = self._mint()
        yield request


def caller_auth(
    account_id: str, actor: str = "test@smartpost.example", *, audience: str, roles: Iterable[str] = ()
) -> CallerAuth:
    """For ``httpx.Client(auth=...)``: a staff caller of ``account_id`` towards ``audience``, one token per request."""
    frozen = tuple(roles)
    return CallerAuth(lambda: _ISSUER.mint(audience, account_id, actor, frozen))
