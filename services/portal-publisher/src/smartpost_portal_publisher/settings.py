"""Settings of the portal publisher (env prefix ``SMARTPOST_PORTAL_PUBLISHER_``), read once in :mod:`.app`."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMARTPOST_PORTAL_PUBLISHER_", extra="ignore", env_nested_delimiter="__"
    )

    service_name: str = "portal-publisher"
    required_secrets: ClassVar[tuple[str, ...]] = ("storage.secret_key", "download_link_secret")
    http_port: int = 8104
    # Consumer group on letters.events / masterdata.events; tests give every app its own group.
    consumer_group: str | None = None
    relay_poll_seconds: float = Field(default=0.2, gt=0)

    # Contract window (casavi: Administration > Kundenportal > Rollen & Zugriffsrechte). An account can override
    # both values through ``PUT /internal/access-window``. Access after the end stops the day the window passes.
    days_before_start: int = Field(default=30, ge=0, le=3650)
    days_after_end: int = Field(default=180, ge=0, le=3650)
    # Calendar used to decide "today" for contract windows (contracts are dates in German local time).
    timezone: str = "Europe/Berlin"

    # Download links are signed by this service (HMAC-SHA256). Set the same secret on every replica. Required outside
    # local development; there, when unset, a random per-process secret is used (links die with the process).
    download_link_secret: SecretStr | None = None
    download_link_ttl_seconds: int = Field(default=120, ge=5, le=3600)
    # Base of the download links handed out (e.g. https://portal.example.de behind a proxy); request URL if unset.
    public_base_url: str | None = None

    session_ttl_hours: float = Field(default=12, gt=0, le=24 * 30)
    invitation_ttl_days: int = Field(default=30, ge=1, le=365)
    min_password_length: int = Field(default=10, ge=8, le=128)
    # Failed password logins per login before it is locked for ``login_lockout_minutes`` (answer 429).
    max_login_failures: int = Field(default=10, ge=1, le=1000)
    login_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)


@lru_cache
def get_settings() -> Settings:
    return Settings()
