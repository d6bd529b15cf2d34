"""Settings of print dispatch (env prefix ``SMARTPOST_PRINT_DISPATCH_``; nested values as JSON or ``__``)."""

from __future__ import annotations

from datetime import date  # noqa: TC003 - pydantic needs it at runtime
from functools import lru_cache

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from smartpost_print_dispatch.adapters.pdf import LandscapePolicy, MismatchPolicy
from smartpost_print_dispatch.domain.geometry import BUILTIN_PROFILES, AddressProfile
from smartpost_print_dispatch.domain.postage import PostageConfig
from smartpost_shared.settings import InsecureSettingsError, ServiceSettings


class FileDropSettings(BaseModel):
    """Batch PDF + CSV manifest for a print shop: into an S3 bucket (``bucket``) or a local folder (``folder``)."""

    enabled: bool = True
    bucket: str | None = None
    folder: str | None = None
    prefix: str = "print-shop"
    profile: str = "din5008_b"


class HttpProviderSettings(BaseModel):
    """A hybrid-mail HTTP API (the fake provider, or a real one with the same shape)."""

    name: str = "hybridpost"
    base_url: str = "http://127.0.0.1:8107"
    # No defaults: the provider issues both (the local stack generates them for its fake provider).
    api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    profile: str = "pingen"
    timeout_seconds: float = 10.0
    # Does the provider keep one letter per Idempotency-Key? Only then is a submission whose outcome is unknown
    # (timeout after sending, crash while waiting) sent again; otherwise staff see "Status unklar" and decide.
    honours_idempotency: bool = True


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_PRINT_DISPATCH_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "print-dispatch"
    http_port: int = 8105

    filedrop: FileDropSettings = Field(default_factory=FileDropSettings)
    http_providers: list[HttpProviderSettings] = Field(default_factory=list)
    # Extra or overriding address profiles; the built-in ones are din5008_a, din5008_b, epost, pingen.
    profiles: dict[str, AddressProfile] = Field(default_factory=dict)
    postage: PostageConfig = Field(default_factory=PostageConfig)

    # Kafka consumer group (default ``smartpost-print-dispatch``); tests sharing one broker use unique groups.
    consumer_group: str | None = None
    sender_line: str = ""
    landscape_pages: LandscapePolicy = LandscapePolicy.ROTATE
    on_address_mismatch: MismatchPolicy = MismatchPolicy.COVER_PAGE
    split_oversize: bool = True

    # Digital-first fallback: German weekdays; nationwide holidays on by default, regional ones listed here.
    nationwide_holidays: bool = True
    extra_holidays: list[date] = Field(default_factory=list)
    timezone: str = "Europe/Berlin"

    dispatch_poll_seconds: float = 0.5
    fallback_poll_seconds: float = 60.0
    status_poll_seconds: float = 30.0
    submit_retry_seconds: float = 2.0
    # Master data and print orders come on different topics: an order whose contacts are not known yet waits
    # (retried, not committed) up to this long after it was placed before a missing contact counts as missing.
    masterdata_wait_seconds: float = Field(default=120.0, ge=0)
    # Replay guard: a PrintOrdered whose envelope ``occurred_at`` is older than this (a re-read after an offset
    # reset, a new consumer group, a restored database) is planned but never submitted automatically: its
    # mailpieces go to ``action_required`` with "Veraltet – bitte prüfen". Orders are consumed within seconds; the
    # not-viewed waiting time runs in the database, not on the broker, so 72 h only catches replays and outages
    # longer than a weekend. 0 switches the guard off.
    print_order_max_age_hours: float = Field(default=72.0, ge=0)
    prepare_batch_size: int = Field(default=50, ge=1)
    # Submissions in flight at once to a provider that honours idempotency keys (the HTTP API takes one letter per
    # request; one at a time, each mailpiece waited for its round trip). Providers without keys: one at a time.
    submit_concurrency: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _providers_have_credentials(self) -> Settings:
        # A provider without its API key cannot submit, one without the webhook secret would accept forged
        # status updates: neither may start, also not in local development.
        missing = [
            f"http_providers[{p.name}].{field}"
            for p in self.http_providers
            for field in ("api_key", "webhook_secret")
            if getattr(p, field) is None
        ]
        if missing:
            msg = "refusing to start: " + ", ".join(missing) + " not set"
            raise InsecureSettingsError(msg)
        return self

    def profile(self, name: str) -> AddressProfile:
        merged = {**BUILTIN_PROFILES, **self.profiles}
        try:
            return merged[name]
        except KeyError:
            raise KeyError(f"unknown address profile {name!r}; known: {', '.join(sorted(merged))}") from None


@lru_cache
def get_settings() -> Settings:
    return Settings()
