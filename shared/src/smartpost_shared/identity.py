"""Service identity: every internal HTTP call proves who sends it, for which account and on whose behalf.

A caller that authenticated someone (the gateway for staff, an ERP integration for itself, the demo tool) signs
short-lived claims with its own Ed25519 key (JWT, EdDSA): issuer, audience (the one service it calls), account,
actor, roles, expiry. Services hold only public keys (``SMARTPOST_IDENTITY_TRUSTED_ISSUERS``) and verify the claims
on every request; the account and the actor a route works with come from verified claims only, never from a header a
caller could set freely. A trusted issuer can be restricted to accounts and audiences (an ERP integration signs for
its own accounts only, and only towards the assignment importer).

Header: ``X-SmartPost-Caller: <jwt>`` (``Authorization`` stays free for the portal's recipient sessions).
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, HTTPException, Request

from smartpost_shared.seen_once import ReplayCache, ReplayGuard, ReplayStoreUnavailableError, SharedReplayCache

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping

    from sqlalchemy.engine import Engine

    from smartpost_shared.settings import IdentitySettings, TrustedIssuer

CALLER_HEADER = "X-SmartPost-Caller"
ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 4096
# Longest lifetime (exp - iat) a verifier accepts; issuers mint 60 s by default (IdentitySettings allows up to 1 h).
MAX_TOKEN_LIFETIME_SECONDS = 3600
# Requests that change nothing may reuse a token within its lifetime; every other method needs a token of its own.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InvalidCallerError(Exception):
    """The request carries no valid proof of its caller (the reason goes to the log, not to the caller)."""


@dataclass(frozen=True)
class CallerClaims:
    issuer: str
    account_id: str
    actor: str
    roles: frozenset[str]
    token_id: str
    expires_at: int = 0


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private, public), each base64 of the raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes_raw()
    raw_public = private.public_key().public_bytes_raw()
    return base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode()


def _private_key(encoded: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))


def _public_key(encoded: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))


class CallerTokenIssuer:
    """Signs caller claims with this process's private key (held only by callers: gateway, tools)."""

    def __init__(self, issuer: str, private_key: str, *, ttl_seconds: int = 60) -> None:
        self.issuer = issuer
        self._key = _private_key(private_key)
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> CallerTokenIssuer:
        if not settings.issuer or settings.private_key is None:
            msg = "this caller needs SMARTPOST_IDENTITY_ISSUER and SMARTPOST_IDENTITY_PRIVATE_KEY"
            raise ValueError(msg)
        return cls(settings.issuer, settings.private_key.get_secret_value(), ttl_seconds=settings.token_ttl_seconds)

    def mint(self, audience: str, account_id: str, actor: str, roles: Iterable[str] = ()) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": actor,
            "acc": account_id,
            "roles": sorted(roles),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def headers(self, audience: str, account_id: str, actor: str, roles: Iterable[str] = ()) -> dict[str, str]:
        return {CALLER_HEADER: self.mint(audience, account_id, actor, roles)}


class CallerVerifier:
    """Verifies caller claims for one service (the audience) against its trusted issuers' public keys."""

    def __init__(
        self,
        audience: str,
        trusted: dict[str, TrustedIssuer],
        *,
        leeway_seconds: int = 10,
        max_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self.audience = audience
        self.trusted = trusted
        self._keys = {name: _public_key(issuer.public_key) for name, issuer in trusted.items()}
        self.leeway_seconds = leeway_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        # Token ids of state-changing requests accepted, until their tokens expire: this process's memory, or with
        # :meth:`share_replays` the service's database (every replica refuses a token any of them accepted).
        self.used_tokens: ReplayGuard = ReplayCache()

    def share_replays(self, engine: Engine) -> CallerVerifier:
        """Remember used token ids in the service's database (table ``seen_proofs``), shared by its replicas."""
        self.used_tokens = SharedReplayCache(engine)
        return self

    def first_use(self, claims: CallerClaims) -> bool:
        """True once per token id and issuer while the token is valid: a state-changing request is not repeated."""
        if not claims.token_id or len(claims.token_id) > 128:
            return False
        return self.used_tokens.first_use(
            f"{claims.issuer}\0{claims.token_id}", claims.expires_at + self.leeway_seconds + 1
        )

    @classmethod
    def from_settings(cls, audience: str, settings: IdentitySettings) -> CallerVerifier:
        return cls(audience, settings.trusted_issuers, leeway_seconds=settings.leeway_seconds)

    def verify(self, token: str | None) -> CallerClaims:
        if not token:
            raise InvalidCallerError("no caller token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidCallerError("caller token too long")
        try:
            unverified: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
            issuer_name = str(unverified.get("iss", ""))
            key = self._keys.get(issuer_name)
            if key is None:
                raise InvalidCallerError(f"untrusted issuer {issuer_name[:60]!r}")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=issuer_name,
                leeway=self.leeway_seconds,
                options={"require": ["iss", "aud", "sub", "acc", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidCallerError(f"{type(exc).__name__}: {exc}") from exc
        return self._checked(issuer_name, claims)

    def _checked(self, issuer_name: str, claims: dict[str, Any]) -> CallerClaims:
        """What the signature alone does not settle: claim types, lifetime, and what this issuer may claim."""
        account_id, actor = claims.get("acc"), claims.get("sub")
        if not isinstance(account_id, str) or not account_id or len(account_id) > 64:
            raise InvalidCallerError("account claim missing or invalid")
        if not isinstance(actor, str) or not actor or len(actor) > 320:
            raise InvalidCallerError("actor claim missing or invalid")
        lifetime = claims["exp"] - claims["iat"]
        if not isinstance(lifetime, int) or lifetime > self.max_lifetime_seconds:
            # A leaked long-lived token would be a standing key: only short-lived claims are proof.
            raise InvalidCallerError(f"token lifetime {lifetime!r} s exceeds {self.max_lifetime_seconds} s")
        trusted = self.trusted[issuer_name]
        if not trusted.allows(account_id, self.audience):
            raise InvalidCallerError(f"issuer {issuer_name!r} may not act for this account or service")
        raw_roles = claims.get("roles") or []
        if not isinstance(raw_roles, list):
            raise InvalidCallerError("roles claim invalid")
        roles = frozenset(str(r) for r in raw_roles)
        if not trusted.grants(roles):
            raise InvalidCallerError(f"issuer {issuer_name!r} may not grant roles {sorted(roles)!r}")
        return CallerClaims(
            issuer=issuer_name,
            account_id=account_id,
            actor=actor,
            roles=roles,
            token_id=str(claims.get("jti", "")),
            expires_at=int(claims["exp"]),
        )


def verified_caller(request: Request) -> CallerClaims:
    """FastAPI dependency: the verified caller of this request (401 without valid proof).

    The service's wiring puts a :class:`CallerVerifier` at ``app.state.caller_verifier``.
    """
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, CallerClaims):
        return cached
    verifier: CallerVerifier | None = getattr(request.app.state, "caller_verifier", None)
    if verifier is None:
        raise HTTPException(401, "Aufrufer nicht nachgewiesen")
    try:
        claims = verifier.verify(request.headers.get(CALLER_HEADER))
    except InvalidCallerError as exc:
        # The reason goes to the log only; the caller learns nothing about which check failed.
        from smartpost_shared.logging import get_logger  # noqa: PLC0415 - keep import light for tools

        get_logger(__name__).warning("identity.refused", reason=str(exc), path=request.url.path)
        raise HTTPException(401, "Aufrufer nicht nachgewiesen") from exc
    if request.method not in SAFE_METHODS and not _first_use(verifier, claims, request):
        # A token proves one state-changing request: the same token again (a captured header replayed within
        # its lifetime) or one without a token id proves nothing.
        from smartpost_shared.logging import get_logger  # noqa: PLC0415

        get_logger(__name__).warning(
            "identity.refused", reason="token replayed or without jti", path=request.url.path, issuer=claims.issuer
        )
        raise HTTPException(401, "Aufrufer nicht nachgewiesen")
    request.state.caller = claims
    return claims


def _first_use(verifier: CallerVerifier, claims: CallerClaims, request: Request) -> bool:
    try:
        return verifier.first_use(claims)
    except ReplayStoreUnavailableError as exc:
        # Fail closed: without the shared memory of used tokens a replay could not be told from a first use.
        from smartpost_shared.logging import get_logger  # noqa: PLC0415

        get_logger(__name__).warning("identity.replay_store_unavailable", error=str(exc), path=request.url.path)
        raise HTTPException(503, "Dienst vorübergehend nicht verfügbar – bitte später erneut versuchen") from exc


VerifiedCaller = Annotated[CallerClaims, Depends(verified_caller)]


def verified_account(request: Request) -> str:
    return verified_caller(request).account_id


def verified_actor(request: Request) -> str:
    return verified_caller(request).actor


def main() -> None:
    """``python -m smartpost_shared.identity keygen <issuer>``: a new key pair as environment lines."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    if len(sys.argv) != 3 or sys.argv[1] != "keygen":
        sys.exit("usage: python -m smartpost_shared.identity keygen <issuer>")
    private, public = generate_keypair()
    print(f"SMARTPOST_IDENTITY_PRIVATE_KEY={private}")  # noqa: T201 - CLI output
    print(f"# trusted issuer entry: {json.dumps({sys.argv[2]: {'public_key': public}})}")  # noqa: T201


if __name__ == "__main__":
    main()


def caller_precheck(*exempt_prefixes: str) -> Callable[[MutableMapping[str, Any]], Awaitable[tuple[int, str] | None]]:
    """A body-limit precheck (:mod:`smartpost_shared.http`): no valid caller claims, no body read.

    Paths under ``exempt_prefixes`` prove their caller otherwise (recipient sessions, signed provider webhooks).
    """

    async def check(scope: MutableMapping[str, Any]) -> tuple[int, str] | None:
        path = str(scope.get("path", ""))
        if path.startswith(exempt_prefixes):
            return None
        verifier: CallerVerifier | None = getattr(scope["app"].state, "caller_verifier", None)
        token = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == CALLER_HEADER.lower().encode()), None
        )
        if verifier is None:
            return 401, "Aufrufer nicht nachgewiesen"
        try:
            verifier.verify(token)
        except InvalidCallerError:
            return 401, "Aufrufer nicht nachgewiesen"
        return None

    return check
