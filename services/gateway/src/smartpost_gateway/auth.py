"""Staff authentication: password hashes, the signed session cookie and CSRF tokens (no I/O).

The session is a small JSON payload signed with HMAC-SHA256 (``payload.signature``, both URL-safe base64); it holds
the login name, the account, the roles and a CSRF token. Nothing secret is in it, it only must not be forged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smartpost_gateway.settings import Role, StaffUserConfig

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    # A valid hash of a random password: a login with an unknown name costs as much as one with a wrong password.
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


@dataclass(frozen=True)
class StaffSession:
    login: str
    account_id: str
    roles: frozenset[Role]
    name: str
    csrf_token: str
    issued_at: int = field(default_factory=lambda: int(time.time()))

    def can(self, role: Role) -> bool:
        return role in self.roles

    @property
    def display_name(self) -> str:
        return self.name or self.login


def authenticate(users: dict[str, StaffUserConfig], login: str, password: str) -> StaffSession | None:
    key = login.strip().casefold()
    user = next((u for name, u in users.items() if name.casefold() == key), None)
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash):
        return None
    return StaffSession(
        login=key,
        account_id=user.account_id,
        roles=frozenset(user.roles),
        name=user.name,
        csrf_token=secrets.token_urlsafe(24),
    )


def sign_session(session: StaffSession, secret: str) -> str:
    payload = json.dumps(
        {
            "l": session.login,
            "a": session.account_id,
            "r": sorted(session.roles),
            "n": session.name,
            "c": session.csrf_token,
            "t": session.issued_at,
        },
        separators=(",", ":"),
    ).encode()
    body = _b64(payload)
    return f"{body}.{_b64(_mac(body, secret))}"


def read_session(
    cookie: str | None, secret: str, *, max_age_seconds: int, users: dict[str, StaffUserConfig]
) -> StaffSession | None:
    """The session in a cookie, or None when it is missing, forged, expired or its user no longer exists."""
    if not cookie or "." not in cookie:
        return None
    body, signature = cookie.rsplit(".", 1)
    try:
        if not hmac.compare_digest(_unb64(signature), _mac(body, secret)):
            return None
        data = json.loads(_unb64(body))
        issued_at = int(data["t"])
        login = str(data["l"])
    except (ValueError, KeyError, TypeError):
        return None
    if time.time() - issued_at > max_age_seconds:
        return None
    user = users.get(login) or next((u for name, u in users.items() if name.casefold() == login), None)
    if user is None:
        return None
    # Roles and account come from the current configuration, so a revoked role takes effect at once.
    return StaffSession(
        login=login,
        account_id=user.account_id,
        roles=frozenset(user.roles),
        name=user.name,
        csrf_token=str(data["c"]),
        issued_at=issued_at,
    )


def csrf_ok(session: StaffSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token, token or "")


def _mac(body: str, secret: str) -> bytes:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
