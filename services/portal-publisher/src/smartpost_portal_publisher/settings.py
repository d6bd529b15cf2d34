"""Settings of the portal publisher (env prefix ``SMARTPOST_PORTAL_PUBLISHER_``), read once in :mod:`.app`."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from smartpost_shared.retention import check_years
from smartpost_shared.settings import InsecureSettingsError, ServiceSettings


class AccountBranding(BaseModel):
    """How the recipients' web portal presents one management company (account)."""

    name: str
    logo_url: str | None = None
    # Where a recipient reaches the management company (shown on every page, e.g. "Tel. 030 123456").
    contact_line: str | None = None


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMARTPOST_PORTAL_PUBLISHER_", extra="ignore", env_nested_delimiter="__", populate_by_name=True
    )

    service_name: str = "portal-publisher"
    required_secrets: ClassVar[tuple[str, ...]] = ("storage.secret_key", "download_link_secret")
    http_port: int = 8104
    # Consumer group on letters.events / masterdata.events; tests give every app its own group.
    consumer_group: str | None = None
    relay_poll_seconds: float = Field(default=0.2, gt=0)
    # Retention (smartpost_shared.retention): periods per document type id or name overriding the German defaults
    # (JSON, e.g. {"Jahresabrechnung": 10}); the job runs in one replica every retention_interval_seconds.
    retention_enabled: bool = True
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_years: dict[str, int] = Field(
        default_factory=dict,
        # One value for every service (letters and portal publisher must agree); the prefixed name still works.
        validation_alias=AliasChoices(
            "SMARTPOST_PORTAL_PUBLISHER_RETENTION_YEARS", "SMARTPOST_RETENTION_YEARS", "retention_years"
        ),
    )

    @field_validator("retention_years")
    @classmethod
    def _bounded_retention(cls, value: dict[str, int]) -> dict[str, int]:
        return {name: check_years(years) for name, years in value.items()}

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

    # Recipients' web portal (``/kundenportal/<account>/...``): the management company's name and logo per account
    # (JSON: ``{"hv-muster": {"name": "Hausverwaltung Muster GmbH", "logo_url": "https://.../logo.png"}}``).
    accounts: dict[str, AccountBranding] = Field(default_factory=dict)
    default_account_name: str = "Ihre Hausverwaltung"
    # Cookies of the web portal only over HTTPS; unset means: secure unless in local development.
    cookie_secure: bool | None = None
    password_reset_ttl_minutes: int = Field(default=60, ge=5, le=24 * 60)
    # Password-reset mails (the notifier sends the document mails); host/port fall back to the stack-wide values.
    smtp_host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("SMARTPOST_PORTAL_PUBLISHER_SMTP_HOST", "SMARTPOST_SMTP_HOST"),
    )
    smtp_port: int = Field(
        default=8025,
        validation_alias=AliasChoices("SMARTPOST_PORTAL_PUBLISHER_SMTP_PORT", "SMARTPOST_SMTP_PORT"),
    )
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_sender_address: str = "noreply@smartpost.example"

    @model_validator(mode="after")
    def _links_have_a_known_base(self) -> Settings:
        # Without it, password-reset and invitation mails link to whatever Host header the request named: a reset
        # requested with "Host: evil.example" would mail the victim a valid reset token for the attacker's site.
        if not self.local_development and not self.public_base_url:
            msg = "refusing to start: public_base_url is not set (mailed links would follow the request's Host)"
            raise InsecureSettingsError(msg)
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else not self.local_development


@lru_cache
def get_settings() -> Settings:
    return Settings()
