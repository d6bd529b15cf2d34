"""Typed settings shared by all services. Each service subclasses :class:`ServiceSettings` with its own prefix.

Settings are read once, at start-up, by the service's wiring module (``get_settings()`` is cached) and passed
down explicitly; nothing deeper in the code reads the environment.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    handler_attempts: int = Field(default=3, ge=1)
    # Consumer groups are "<group_prefix>-<service>"; tests and parallel local systems on one broker use their own.
    group_prefix: str = "smartpost"


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_S3_", extra="ignore")

    endpoint: str = "127.0.0.1:8333"
    access_key: str = "devaccesskey"
    secret_key: SecretStr = SecretStr("devsecretkey123")
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = "smartpost"


class LeaseSettings(BaseSettings):
    """Leases for single-owner work (``smartpost_shared.lease``): how often the holder proves it is alive."""

    model_config = SettingsConfigDict(env_prefix="SMARTPOST_LEASE_", extra="ignore", populate_by_name=True)

    # Who holds a lease: one id per replica. Default: the host name (in Kubernetes the pod name), so a restarted
    # container takes its own lease back at once. Set it when several replicas share one host.
    replica_id: str | None = Field(
        default=None, validation_alias=AliasChoices("SMARTPOST_REPLICA_ID", "SMARTPOST_LEASE_REPLICA_ID")
    )
    # Lease row expiry (SQLite); PostgreSQL advisory locks end with the holder's session instead.
    ttl_seconds: float = Field(default=15.0, gt=0)
    renew_seconds: float = Field(default=5.0, gt=0)
    retry_seconds: float = Field(default=2.0, gt=0)
    # A new holder whose predecessor did not release waits this long before working (the predecessor, if alive,
    # notices the loss at its next renewal and stops).
    takeover_seconds: float = Field(default=10.0, ge=0)


class TracingSettings(BaseSettings):
    """OpenTelemetry export (``smartpost_shared.tracing``): off unless an OTLP/HTTP endpoint is set."""

    model_config = SettingsConfigDict(env_prefix="SMARTPOST_TRACING_", extra="ignore")

    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318/v1/traces
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    export_timeout_seconds: float = Field(default=10.0, gt=0)


class ServiceSettings(BaseSettings):
    """Common settings; a service adds its own fields and an ``env_prefix`` such as ``SMARTPOST_LETTERS_``."""

    model_config = SettingsConfigDict(env_prefix="SMARTPOST_", extra="ignore")

    service_name: str = "smartpost"
    log_level: str = "INFO"
    log_json: bool = True
    data_dir: str = "var/data"
    # SQLAlchemy URL of the service's own database (read models, idempotency, outbox).
    database_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 0
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir}/{self.service_name}.sqlite3"
