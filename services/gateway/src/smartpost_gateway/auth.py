"""Staff authentication: password hashes, the staff session and CSRF tokens (no I/O).

Sessions live server-side (:mod:`smartpost_gateway.adapters.sessions`); the cookie holds only a random token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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


def session_for(login: str, csrf_token: str, issued_at: int, users: dict[str, StaffUserConfig]) -> StaffSession | None:
    """The session of a stored login, or None when the user no longer exists.

    Roles and account come from the current configuration, so a revoked role takes effect at once.
    """
    user = users.get(login) or next((u for name, u in users.items() if name.casefold() == login), None)
    if user is None:
        return None
    return StaffSession(
        login=login,
        account_id=user.account_id,
        roles=frozenset(user.roles),
        name=user.name,
        csrf_token=csrf_token,
        issued_at=issued_at,
    )


def csrf_ok(session: StaffSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token, token or "")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
