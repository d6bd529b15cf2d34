"""Settings of the notifier, read once by :func:`smartpost_notifier.app.create_app`'s caller.

Environment variables use the prefix ``SMARTPOST_NOTIFIER_`` (e.g. ``SMARTPOST_NOTIFIER_SMTP_HOST``). The SMTP
host and port also fall back to the stack-wide ``SMARTPOST_SMTP_HOST`` / ``SMARTPOST_SMTP_PORT`` that
``smartpost_shared.devstack`` exports. ``SMARTPOST_NOTIFIER_ACCOUNTS`` is JSON:
``{"acc-1": {"name": "Hausverwaltung Muster", "sender_address": "post@muster.de", "language": "en",
"digest_time": "06:30"}}``.
"""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings

Language = Literal["de", "en"]


class AccountOverride(BaseModel):
    """Per-account values that replace the defaults (account name, sender, language, digest time)."""

    name: str | None = None
    sender_address: str | None = None
    sender_name: str | None = None
    language: Language | None = None
    digest_time: time | None = None
    portal_base_url: str | None = None


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_NOTIFIER_", extra="ignore", populate_by_name=True)

    service_name: str = "notifier"
    required_secrets: ClassVar[tuple[str, ...]] = ()  # no object storage
    http_port: int = 8106

    # SMTP relay. STARTTLS upgrades a plain connection; implicit TLS (port 465) is smtp_ssl.
    smtp_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("SMARTPOST_NOTIFIER_SMTP_HOST", "SMARTPOST_SMTP_HOST")
    )
    smtp_port: int = Field(
        default=8025, validation_alias=AliasChoices("SMARTPOST_NOTIFIER_SMTP_PORT", "SMARTPOST_SMTP_PORT")
    )
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)

    # Who the mails come from and what they are signed with (overridable per account in ``accounts``).
    sender_address: str = "noreply@smartpost.example"
    sender_name: str = "SmartPost"
    account_name: str = "Ihre Hausverwaltung"
    message_id_domain: str = "smartpost.notifier"
    # The recipients' web portal (portal-publisher, ``/kundenportal/<account>/...``).
    portal_base_url: str = "http://127.0.0.1:8104/kundenportal"
    # Deep link to one document (the portal asks for the login first and then opens it) and the inbox link;
    # ``{base}`` is the portal base URL, ``{account_id}`` the account.
    portal_document_url: str = "{base}/{account_id}/dokumente/{document_id}"
    portal_home_url: str = "{base}/{account_id}/posteingang"
    default_language: Language = "de"
    accounts: dict[str, AccountOverride] = Field(default_factory=dict)

    # Digest: once per day at digest_time (local time of ``timezone``) for the previous day.
    timezone: str = "Europe/Berlin"
    digest_time: time = time(7, 0)
    digest_enabled: bool = True
    digest_catchup_days: int = Field(default=3, ge=1, le=31)
    digest_check_seconds: float = Field(default=30.0, gt=0)

    # Sender loop: how often to look for due mails, batch size, retry backoff, throttle.
    send_poll_seconds: float = Field(default=0.5, gt=0)
    send_batch_size: int = Field(default=100, ge=1)
    # SMTP connections used in parallel by the one sending replica: each mail is a chain of round trips to the
    # relay (MAIL, RCPT, DATA, body, final dot), so one connection mostly waits. Each mail is still claimed once
    # and handed over once (the hand-over journal is per mail). 1 = one mail at a time; a throttle forces 1.
    send_connections: int = Field(default=4, ge=1, le=32)
    # Documents of one release arrive as several events: wait a moment so they go out in one mail.
    immediate_delay_seconds: float = Field(default=5.0, ge=0)
    # Replay guard: a DocumentPublished whose envelope ``occurred_at`` is older than this is not mailed (neither
    # immediately nor in a digest) but recorded as status ``stale`` for staff. 0 switches the guard off.
    immediate_max_age_hours: float = Field(default=48.0, ge=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    # A mail for a contact the notifier has not (yet) seen in master data waits this long, then is skipped.
    unknown_contact_grace_seconds: float = Field(default=3600.0, ge=0)
    # Relays rate-limit; 0 means no throttle.
    max_mails_per_second: float = Field(default=0.0, ge=0)

    kafka_group_id: str = "smartpost-notifier"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for unknown zones: fail at start-up, not at 07:00
        return value

    def account(self, account_id: str) -> AccountOverride:
        return self.accounts.get(account_id, AccountOverride())


@lru_cache
def get_settings() -> Settings:
    return Settings()
