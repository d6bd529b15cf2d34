"""Secrets handling of the portal: signed download links, hashed tokens and codes, password hashes.

Pure functions over bytes (no I/O). Randomness is drawn by the application layer with :mod:`secrets`.

Download links are this service's own, not S3 presigned URLs: the link carries document, principal and expiry
signed with HMAC-SHA256, and the download endpoint re-checks access at download time. So a revocation or an ended
contract window takes effect at once even for links already handed out, and every download is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

LINK_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class DownloadGrant:
    """What a download link grants: one document, to one principal, of one account, until ``expires``."""

    account_id: str
    document_id: str
    principal_id: str
    expires: int  # unix seconds

    def message(self) -> bytes:
        return "|".join(
            (LINK_VERSION, self.account_id, self.document_id, self.principal_id, str(self.expires))
        ).encode()


class LinkProblem(StrEnum):
    TAMPERED = "tampered"
    EXPIRED = "expired"


def sign_grant(secret: bytes, grant: DownloadGrant) -> str:
    return _b64(hmac.new(secret, grant.message(), hashlib.sha256).digest())


def check_grant(secret: bytes, grant: DownloadGrant, signature: str, now: float) -> LinkProblem | None:
    """Signature first (constant time), then expiry: an altered expiry is tampering, not expiry."""
    if not hmac.compare_digest(sign_grant(secret, grant), signature):
        return LinkProblem.TAMPERED
    if now >= grant.expires:
        return LinkProblem.EXPIRED
    return None


def hash_secret_token(token: str) -> str:
    """Session tokens and invitation codes are stored only as SHA-256 (they are long random values)."""
    return hashlib.sha256(token.encode()).hexdigest()


# scrypt parameters: ~50 ms and 16 MiB per hash on this kind of machine; stored with the hash so they can change.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.urlsafe_b64decode(salt_b64 + "=" * (-len(salt_b64) % 4))
    digest = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(_b64(digest), digest_b64)
