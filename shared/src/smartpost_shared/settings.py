"""Typed settings shared by all services. Each service subclasses :class:`ServiceSettings` with its own prefix.

Settings are read once, at start-up, by the service's wiring module (``get_settings()`` is cached) and passed
down explicitly; nothing deeper in the code reads the environment.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    handler_attempts: int = Field(default=3, ge=1)
    # Consumer groups are "<group_prefix>-<service>"; tests and parallel local systems on one broker use their own.
    group_prefix: str = "smartpost"
    # Start-up waits this long for broker/storage/database before serving; after that the service serves /healthz,
    # reports not-ready on /readyz and keeps connecting in the background (a dependency being down is not fatal).
    startup_grace_seconds: float = Field(default=10.0, ge=0)


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_S3_", extra="ignore")

    endpoint: str = "127.0.0.1:8333"
    access_key: str = "devaccesskey"
    secret_key: SecretStr = SecretStr("devsecretkey123")
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = "smartpost"


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

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir}/{self.service_name}.sqlite3"
