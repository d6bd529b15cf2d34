"""The env-vs-Settings checker itself: it must catch what the deployment tests rely on it to catch."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartpost_shared.settings import ServiceSettings


class _Provider(BaseModel):
    base_url: str = "http://127.0.0.1:8107"
    api_key: SecretStr = SecretStr("dev-key")


class _Smtp(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_SMTP_", extra="ignore")

    host: str = "mail.example.org"
    port: int = 587


class _Demo(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_DEMO_", env_nested_delimiter="__", extra="ignore")

    http_port: int = 8199
    tenant: str  # required
    upstream_url: str = "http://localhost:9000"
    token: SecretStr | None = None
    greeting: str = Field(default="hi", validation_alias=AliasChoices("SMARTPOST_DEMO_HELLO", "SMARTPOST_HELLO"))
    providers: list[_Provider] = Field(default_factory=lambda: [_Provider()])
    smtp: _Smtp = Field(default_factory=_Smtp)


GOOD = {
    "SMARTPOST_DEMO_TENANT": "t",
    "SMARTPOST_DEMO_HTTP_HOST": "0.0.0.0",
    "SMARTPOST_DEMO_UPSTREAM_URL": "http://upstream:9000",
    "SMARTPOST_DEMO_PROVIDERS": '[{"base_url": "https://p.example", "api_key": "k"}]',
    "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "SMARTPOST_S3_ENDPOINT": "minio:9000",
    "SMARTPOST_S3_SECRET_KEY": "s3-secret-of-the-test-env",
    "SMARTPOST_KAFKA_SIGNING_KEY": "event-key-of-the-test-env",
}


def test_resolver_knows_prefixes_aliases_nested_settings_and_delimiters(kit):
    fields = kit.settings_env(_Demo).fields
    assert fields["SMARTPOST_DEMO_HTTP_PORT"].path == "http_port"
    assert fields["SMARTPOST_DEMO_TENANT"].required
    assert fields["SMARTPOST_HELLO"].path == "greeting"
    assert fields["SMARTPOST_DEMO_HELLO"].path == "greeting"
    assert "SMARTPOST_DEMO_GREETING" not in fields, "an aliased field is not read under its prefixed name"
    assert fields["SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"].path == "kafka.bootstrap_servers"
    assert fields["SMARTPOST_DEMO_KAFKA__BOOTSTRAP_SERVERS"].path == "kafka.bootstrap_servers"
    assert fields["SMARTPOST_SMTP_HOST"].path == "smtp.host"
    assert fields["SMARTPOST_DEMO_SMTP__PORT"].path == "smtp.port"


def test_a_complete_environment_has_no_problems(kit):
    assert kit.env_problems("demo", GOOD, "demo", _Demo) == []


def test_unknown_and_misspelt_variables_are_reported(kit):
    env = {**GOOD, "SMARTPOST_DEMO_HTTP_PROT": "1", "SMARTPOST_LETTERS_HTTP_PORT": "2", "PERSISTENCE_MODULE": "x"}
    problems = kit.env_problems("demo", env, "demo", _Demo)
    assert any("SMARTPOST_DEMO_HTTP_PROT matches no field" in p for p in problems)
    assert any("SMARTPOST_LETTERS_HTTP_PORT" in p and "prefix is SMARTPOST_DEMO_" in p for p in problems)
    assert any("PERSISTENCE_MODULE is not a SmartPost setting" in p for p in problems)


def test_missing_required_loopback_and_dev_secret_defaults_are_reported(kit):
    for name, expected in (
        ("SMARTPOST_DEMO_TENANT", "required setting tenant"),
        ("SMARTPOST_DEMO_HTTP_HOST", "http_host would default to loopback"),
        ("SMARTPOST_DEMO_UPSTREAM_URL", "upstream_url would default to loopback"),
        ("SMARTPOST_DEMO_PROVIDERS", "providers would default to loopback"),
        ("SMARTPOST_KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers would default to loopback"),
        ("SMARTPOST_S3_SECRET_KEY", "storage.secret_key is a required secret without default"),
    ):
        env = {k: v for k, v in GOOD.items() if k != name}
        problems = kit.env_problems("demo", env, "demo", _Demo)
        assert any(expected in p for p in problems), (name, problems)


def test_a_nested_field_set_through_the_delimiter_counts(kit):
    env = {k: v for k, v in GOOD.items() if k != "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"}
    env["SMARTPOST_DEMO_KAFKA__BOOTSTRAP_SERVERS"] = "kafka:9092"
    assert kit.env_problems("demo", env, "demo", _Demo) == []


def test_loopback_search_walks_models_lists_and_dicts(kit):
    assert kit.loopback_in({"a": [_Provider()]}) == "http://127.0.0.1:8107"
    assert kit.loopback_in(_Provider(base_url="https://p.example")) is None
    assert kit.unsafe_default(SecretStr("")) is None
    assert kit.unsafe_default([_Provider(base_url="https://p.example")]) == "a development secret"
