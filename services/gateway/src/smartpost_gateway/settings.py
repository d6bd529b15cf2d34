"""Settings of the staff gateway (env prefix ``SMARTPOST_GATEWAY_``), read once in :mod:`smartpost_gateway.app`.

Staff users come from configuration (``SMARTPOST_GATEWAY_STAFF_USERS`` as JSON), e.g.::

    {"anna@hv-muster.de": {"password_hash": "scrypt$...", "account_id": "demo", "roles": ["prepare", "release"],
                           "name": "Anna Muster"}}

Password hashes are made with ``python -m smartpost_gateway hash-password``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings


class Role(StrEnum):
    PREPARE = "prepare"  # create serial letters, upload, split, review and correct assignments
    RELEASE = "release"  # release to the portal, order postal dispatch, revoke, delete
    ADMIN = "admin"  # operations: dead letters of the own account (list, show, re-drive)


class StaffUserConfig(BaseModel):
    password_hash: str = Field(min_length=1)
    account_id: str = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(default_factory=lambda: [Role.PREPARE])
    name: str = ""


class AccountConfig(BaseModel):
    name: str = ""
    # Four-eyes release: the person who releases must not be the one who confirmed the review.
    four_eyes_release: bool = False


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_GATEWAY_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "gateway"
    http_port: int = 8100

    letters_url: str = "http://127.0.0.1:8101"
    assignment_url: str = "http://127.0.0.1:8103"
    portal_url: str = "http://127.0.0.1:8104"
    print_url: str = "http://127.0.0.1:8105"
    notifier_url: str = "http://127.0.0.1:8106"
    # Bearer tokens of the services' APIs (when they require one).
    letters_api_token: SecretStr | None = None
    portal_internal_token: SecretStr | None = None
    service_timeout_seconds: float = Field(default=30.0, gt=0)

    # Signs the session cookie; MUST be set in production (the default only suits a developer machine).
    session_secret: SecretStr = SecretStr("dev-only-session-secret-change-me")
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    cookie_secure: bool = False

    staff_users: dict[str, StaffUserConfig] = Field(default_factory=dict)
    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    # Largest PDF accepted in one upload (the letters service has its own limit too).
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)

    def account(self, account_id: str) -> AccountConfig:
        return self.accounts.get(account_id, AccountConfig())


@cache
def get_settings() -> Settings:
    return Settings()
