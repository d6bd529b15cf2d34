"""Typed settings shared by all services. Each service subclasses :class:`ServiceSettings` with its own prefix.

Settings are read once, at start-up, by the service's wiring module (``get_settings()`` is cached) and passed
down explicitly; nothing deeper in the code reads the environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from collections.abc import Iterable

# Secrets that ever stood in code, examples or docs: accepted nowhere, not even in local development.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "devsecretkey123",
        "dev-only-session-secret-change-me",
        "dev-api-key",
        "dev-webhook-secret",
        "local-demo-secret-not-for-production",
        "changeme",
        "change-me",
        "secret",
        "password",
        "minioadmin",
    }
)
MIN_SECRET_LENGTH = 16
# Example files (.env.example, secrets.example.yaml) mark their values so; a copied example never runs for real.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me", "example-secret")


class InsecureSettingsError(RuntimeError):
    """A service must not start: a secret is missing, short or a known default (outside local development).

    Not a ValueError on purpose: pydantic would fold it into a ValidationError that echoes the input values.
    """


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    handler_attempts: int = Field(default=3, ge=1)
    # Consumer groups are "<group_prefix>-<service>"; tests and parallel local systems on one broker use their own.
    group_prefix: str = "smartpost"
    # Events prove their producer (smartpost_shared.event_signing): this service's Ed25519 signing key (base64),
    # and the public keys of every producer it accepts events from ({"letters": ["<base64>"], ...}).
    signing_key: SecretStr | None = None
    trusted_producers: dict[str, list[str]] = Field(default_factory=dict)
    # Start-up waits this long for broker/storage/database before serving; after that the service serves /healthz,
    # reports not-ready on /readyz and keeps connecting in the background (a dependency being down is not fatal).
    startup_grace_seconds: float = Field(default=10.0, ge=0)
    # Broker authentication (production: SASL_SSL or SASL_PLAINTEXT with SCRAM-SHA-512, one user per service whose
    # ACLs allow only the topics the registry names for it, see smartpost_shared.kafka_acls). PLAINTEXT = none
    # (tansu in the local stack and the tests). With SASL on, user and password are required secrets.
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # CA bundle for SASL_SSL (PEM file); unset = the system's trusted CAs.
    ssl_cafile: str | None = None

    @property
    def sasl_enabled(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def client_kwargs(self) -> dict[str, Any]:
        """Connection security for a raw aiokafka client (metrics, re-drive tool).

        The services' broker gets the same through :func:`smartpost_shared.messaging.make_broker`.
        """
        if not self.sasl_enabled:
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password.get_secret_value() if self.sasl_password else None,
        }
        if self.security_protocol == "SASL_SSL":
            import ssl  # noqa: PLC0415 - only with TLS

            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        return kwargs


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_S3_", extra="ignore")

    endpoint: str = "127.0.0.1:8333"
    access_key: str = "smartpost"
    # No default: the local stack generates one per stack (devstack), production sets it.
    secret_key: SecretStr | None = None
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = "smartpost"


class TrustedIssuer(BaseModel):
    """A caller whose signature a service accepts, and for what."""

    # A misspelt restriction ("role", "account") must not be ignored silently: unknown keys refuse to start.
    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(min_length=40)  # base64 of the raw 32-byte Ed25519 public key
    accounts: list[str] = Field(default_factory=lambda: ["*"])
    audiences: list[str] = Field(default_factory=lambda: ["*"])
    # Roles this issuer may grant (e.g. [] for an ERP connector: it may not claim "admin").
    roles: list[str] = Field(default_factory=lambda: ["*"])

    def allows(self, account_id: str, audience: str) -> bool:
        return ("*" in self.accounts or account_id in self.accounts) and (
            "*" in self.audiences or audience in self.audiences
        )

    def grants(self, roles: Iterable[str]) -> bool:
        return "*" in self.roles or set(roles) <= set(self.roles)


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_IDENTITY_", extra="ignore")

    # Public keys of the callers this service accepts (JSON: {"gateway": {"public_key": "..."}, ...}).
    trusted_issuers: dict[str, TrustedIssuer] = Field(default_factory=dict)
    # This process's own signing identity, only for callers (gateway, tools): issuer name and private key.
    issuer: str | None = None
    private_key: SecretStr | None = None
    token_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    leeway_seconds: int = Field(default=10, ge=0, le=120)


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
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    # Explicit local-development mode (SMARTPOST_LOCAL_DEVELOPMENT=true, set by the local stack and the tests): a
    # missing secret is then allowed (the service generates one per process or does without) and cookies may go
    # over plain HTTP. Outside it a service refuses to start with a missing, short or known-default secret.
    local_development: bool = Field(
        default=False, validation_alias=AliasChoices("SMARTPOST_LOCAL_DEVELOPMENT", "local_development")
    )
    # Dotted paths of the secrets this service cannot work without (a service overrides it).
    required_secrets: ClassVar[tuple[str, ...]] = ("storage.secret_key", "kafka.signing_key")

    @model_validator(mode="after")
    def _secrets_are_safe(self) -> ServiceSettings:
        required = self.required_secrets
        if self.kafka.sasl_enabled:
            # Broker authentication switched on: the service's SASL user and password are required secrets too.
            required = (*required, "kafka.sasl_username", "kafka.sasl_password")
        problems = secret_problems(self, required)
        if self.local_development:
            # Only a known default is refused here too: it would be public knowledge in any environment.
            problems = [p for p in problems if "known default" in p]
        if problems:
            msg = "refusing to start: " + "; ".join(problems)
            raise InsecureSettingsError(msg)
        return self

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir}/{self.service_name}.sqlite3"


def secret_problems(settings: BaseModel, required: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with the secrets of ``settings``: required ones missing, any one short or a known default.

    Names only, never values: the result goes to the log.
    """
    problems: list[str] = []
    for path in required:
        value: Any = settings
        for part in path.split("."):
            value = getattr(value, part, None)
        if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
            problems.append(f"{path} is not set")
    for path, secret in _secrets_in(settings, ""):
        text = secret.get_secret_value()
        if not text:
            continue
        if text.strip().lower() in KNOWN_DEFAULT_SECRETS:
            problems.append(f"{path} is a known default")
        elif any(marker in text.lower() for marker in PLACEHOLDER_MARKERS):
            problems.append(f"{path} is a placeholder from an example file")
        elif len(text) < MIN_SECRET_LENGTH:
            problems.append(f"{path} is shorter than {MIN_SECRET_LENGTH} characters")
    return problems


def _secrets_in(value: Any, path: str) -> list[tuple[str, SecretStr]]:
    if isinstance(value, SecretStr):
        return [(path, value)]
    if isinstance(value, BaseModel):
        return [
            found
            for name in type(value).model_fields
            for found in _secrets_in(getattr(value, name), f"{path}.{name}" if path else name)
        ]
    if isinstance(value, list | tuple):
        return [found for i, item in enumerate(value) for found in _secrets_in(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _secrets_in(item, f"{path}[{key}]")]
    return []
