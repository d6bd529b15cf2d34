"""Settings of the letters service (env prefix ``SMARTPOST_LETTERS_``), read once in :mod:`smartpost_letters.app`."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from smartpost_shared.retention import check_years
from smartpost_shared.settings import ServiceSettings


class FaultInjection(StrEnum):
    """Crash points for the kill -9 test; never set in production."""

    NONE = ""
    BEFORE_PUBLISH = "before_publish"  # SIGKILL after the store commit, before the first Kafka publish
    AFTER_PUBLISH = "after_publish"  # SIGKILL after publishing, before the relay records its position


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_LETTERS_", extra="ignore", env_nested_delimiter="__")

    service_name: str = "letters"
    http_port: int = 8101
    # Event store: None = SQLite file ``<data_dir>/letters-events.sqlite3``; a postgresql:// URL puts the event
    # store in that database. The read model (letter list) follows ``database_url`` (SQLite by default); when
    # ``database_url`` is PostgreSQL and ``event_store_url`` is unset, the event store uses the same database.
    event_store_url: str | None = None
    # With the in-memory letters a snapshot only serves a cold start, and saves little there: the few large events
    # (split result, assignments) cost as much to decode as the snapshot itself, the many small ones (print status,
    # portal views) little. Each snapshot is the whole letter: at 4,000 parts 15 MB to store, ~1.5 s of CPU and
    # ~95 MB of transient memory to encode. Measured 10k run, every 500 events: letters peak 460 MB, event store
    # 62 MB; without: 312 MB, 21 MB, cold rebuild of the 4,000-part letter 2.1 s. So only very long histories.
    snapshot_interval: int = Field(default=10_000, ge=2)
    # Letters kept in memory and fast-forwarded from the event store (commands cost O(1) in the letter's size).
    cached_letters: int = Field(default=2, ge=0)
    relay_poll_seconds: float = Field(default=0.2, gt=0)
    relay_batch_size: int = Field(default=200, ge=1, le=5000)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    # Kafka consumer group of the inbound subscriptions (one group per deployment of this service).
    consumer_group: str = "smartpost-letters"
    fault_injection: FaultInjection = FaultInjection.NONE
    # Accounts with four-eyes release: the person who confirmed the review may not release (JSON list).
    four_eyes_accounts: list[str] = Field(default_factory=list)
    # A letter waiting this long for another service (splitter, assignment, print dispatch) counts as stuck and
    # is shown to staff with "erneut anstoßen".
    stuck_after_seconds: float = Field(default=300.0, ge=0)
    # Retention (smartpost_shared.retention): periods per document type id or name overriding the German defaults
    # (JSON, e.g. {"Jahresabrechnung": 10}); the job runs in one replica every retention_interval_seconds.
    retention_enabled: bool = True
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_years: dict[str, int] = Field(
        default_factory=dict,
        # One value for every service (letters and portal publisher must agree); the prefixed name still works.
        validation_alias=AliasChoices(
            "SMARTPOST_LETTERS_RETENTION_YEARS", "SMARTPOST_RETENTION_YEARS", "retention_years"
        ),
    )

    @field_validator("retention_years")
    @classmethod
    def _bounded_retention(cls, value: dict[str, int]) -> dict[str, int]:
        return {name: check_years(years) for name, years in value.items()}

    def resolved_event_store_url(self) -> str:
        if self.event_store_url:
            return self.event_store_url
        if self.database_url and self.database_url.startswith(("postgresql://", "postgresql+psycopg://")):
            return self.database_url
        return f"sqlite:///{self.data_dir}/letters-events.sqlite3"


@lru_cache
def get_settings() -> Settings:
    return Settings()
