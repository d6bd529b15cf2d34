"""Settings of the staff gateway (env prefix ``SMARTPOST_GATEWAY_``), read once in :mod:`smartpost_gateway.app`.

Staff users come from configuration (``SMARTPOST_GATEWAY_STAFF_USERS`` as JSON), e.g.::

    {"anna@hv-muster.de": {"password_hash": "scrypt$...", "account_id": "demo", "roles": ["prepare", "release"],
                           "name": "Anna Muster"}}

Password hashes are made with ``python -m smartpost_gateway hash-password``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import ClassVar

from pydantic import BaseModel, Field
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
    # No object storage; sessions live in its database; it signs caller claims for the staff user.
    required_secrets: ClassVar[tuple[str, ...]] = ("identity.private_key",)
    http_port: int = 8100

    letters_url: str = "http://127.0.0.1:8101"
    assignment_url: str = "http://127.0.0.1:8103"
    portal_url: str = "http://127.0.0.1:8104"
    print_url: str = "http://127.0.0.1:8105"
    splitter_url: str = "http://127.0.0.1:8102"  # the split-strategy proposal at upload
    notifier_url: str = "http://127.0.0.1:8106"
    service_timeout_seconds: float = Field(default=30.0, gt=0)

    # Sessions are server-side (the gateway's own database, ``database_url``; share it between replicas).
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    # Secure cookies (HTTPS only); unset means: secure unless in local development.
    cookie_secure: bool | None = None
    # Login throttling: failed attempts per login and per source address within the window.
    login_max_failures_per_login: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_throttle_seconds: int = Field(default=15 * 60, ge=1)

    staff_users: dict[str, StaffUserConfig] = Field(default_factory=dict)
    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    # Largest PDF accepted in one upload (the letters service has its own limit too).
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else not self.local_development

    def account(self, account_id: str) -> AccountConfig:
        return self.accounts.get(account_id, AccountConfig())


@cache
def get_settings() -> Settings:
    return Settings()
