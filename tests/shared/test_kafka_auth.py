"""Broker authentication settings: make_broker and the raw clients pass SASL/SCRAM through; with SASL on, the
login is a required secret (no default, no placeholder)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from smartpost_shared.messaging import make_broker
from smartpost_shared.settings import InsecureSettingsError, KafkaSettings, ServiceSettings

PASSWORD = "kafka-pw-0123456789abcdef"


def _connection(broker) -> dict:
    return dict(broker.config.broker_config.builder.keywords)


def test_make_broker_passes_the_scram_login_to_the_kafka_client():
    kafka = KafkaSettings(
        bootstrap_servers="kafka:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_username="letters",
        sasl_password=SecretStr(PASSWORD),
    )
    kwargs = _connection(make_broker(kafka, service="letters"))
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "letters"
    assert kwargs["sasl_plain_password"] == PASSWORD
    assert kwargs["ssl_context"] is None


def test_sasl_ssl_uses_tls_and_the_raw_clients_get_the_same_login():
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="gateway",
        sasl_password=SecretStr(PASSWORD),
    )
    kwargs = _connection(make_broker(kafka, service="gateway"))
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kwargs["ssl_context"] is not None
    raw = kafka.client_kwargs()
    assert raw["security_protocol"] == "SASL_SSL"
    assert raw["sasl_plain_username"] == "gateway"
    assert raw["sasl_plain_password"] == PASSWORD
    assert raw["ssl_context"] is not None


def test_plaintext_stays_without_authentication():
    kwargs = _connection(make_broker(KafkaSettings(), service="letters"))
    assert kwargs.get("security_protocol", "PLAINTEXT") == "PLAINTEXT"
    assert kwargs.get("sasl_plain_password") is None
    assert KafkaSettings().client_kwargs() == {}


def test_settings_read_the_sasl_environment(monkeypatch):
    monkeypatch.setenv("SMARTPOST_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SMARTPOST_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SMARTPOST_KAFKA_SASL_USERNAME", "notifier")
    monkeypatch.setenv("SMARTPOST_KAFKA_SASL_PASSWORD", PASSWORD)
    kafka = KafkaSettings()
    assert kafka.sasl_enabled
    assert kafka.sasl_username == "notifier"
    assert PASSWORD not in repr(kafka), "the password must stay masked in settings dumps"


@pytest.mark.parametrize(
    ("username", "password", "problem"),
    [
        ("letters", None, "kafka.sasl_password is not set"),
        (None, PASSWORD, "kafka.sasl_username is not set"),
        ("letters", "change-me-kafka-password-letters", "kafka.sasl_password is a placeholder"),
        ("letters", "short", "kafka.sasl_password is shorter"),
    ],
)
def test_with_sasl_on_the_login_is_a_required_secret(username, password, problem):
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username=username,
        sasl_password=SecretStr(password) if password else None,
        signing_key=SecretStr("x" * 44),
    )
    with pytest.raises(InsecureSettingsError, match=problem):
        ServiceSettings(kafka=kafka, storage={"secret_key": "s3-secret-0123456789"}, local_development=False)


def test_without_sasl_no_broker_login_is_needed():
    settings = ServiceSettings(
        kafka=KafkaSettings(signing_key=SecretStr("x" * 44)),
        storage={"secret_key": "s3-secret-0123456789"},
        local_development=False,
    )
    assert not settings.kafka.sasl_enabled
