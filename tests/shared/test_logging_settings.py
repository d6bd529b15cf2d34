"""Structured logs carry correlation and account ids; settings are typed and read from the environment."""

from __future__ import annotations

import json

import pytest
import structlog

from smartpost_shared.logging import configure_logging, get_logger, message_context
from smartpost_shared.settings import KafkaSettings, ServiceSettings, StorageSettings


@pytest.fixture
def restore_structlog():
    # configure_logging binds the current sys.stderr; under capsys that stream is closed after the test, and later
    # tests' log calls would fail on it.
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_json_log_lines_carry_correlation_and_account(capsys: pytest.CaptureFixture[str], restore_structlog) -> None:
    configure_logging("test-service", level="INFO", json=True)
    log = get_logger("x")
    with message_context(correlation_id="corr-1", account_id="acc-1"):
        log.info("letter.split", parts=12)
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    inside, outside = lines[-2], lines[-1]
    assert inside["event"] == "letter.split"
    assert inside["parts"] == 12
    assert inside["correlation_id"] == "corr-1"
    assert inside["account_id"] == "acc-1"
    assert inside["service"] == "test-service"
    assert "timestamp" in inside
    assert "correlation_id" not in outside


def test_settings_are_typed_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTPOST_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("SMARTPOST_S3_SECURE", "true")
    monkeypatch.setenv("SMARTPOST_DATABASE_URL", "postgresql://u:p@db/x")
    settings = ServiceSettings()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.storage.secure is True
    assert settings.resolved_database_url() == "postgresql://u:p@db/x"
    monkeypatch.setenv("SMARTPOST_KAFKA_SESSION_TIMEOUT_MS", "soon")
    with pytest.raises(ValueError, match="session_timeout_ms"):
        KafkaSettings()
    assert "devsecretkey123" not in repr(StorageSettings())
