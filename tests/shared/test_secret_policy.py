"""No default secrets: outside local development a service refuses to start with a missing, short, placeholder or
known-default secret; the local stack generates its secrets per stack."""

from __future__ import annotations

import json
import stat
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from smartpost_shared.devstack import Stack, redacted, stack_secrets
from smartpost_shared.settings import InsecureSettingsError, ServiceSettings, StorageSettings

if TYPE_CHECKING:
    from pathlib import Path

GOOD = SecretStr("k8Jq2-vN0pX4-wT7zR1y-aB3c")


def production(**values: object) -> ServiceSettings:
    return ServiceSettings(local_development=False, **values)  # type: ignore[arg-type]


def test_missing_storage_secret_is_refused_outside_local_development() -> None:
    with pytest.raises(InsecureSettingsError, match=r"storage\.secret_key is not set"):
        production()
    assert production(storage=StorageSettings(secret_key=GOOD)).storage.secret_key == GOOD


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("devsecretkey123", "known default"),
        ("dev-only-session-secret-change-me", "known default"),
        ("change-me-s3-secret", "placeholder"),
        ("x7Qw9", "shorter than 16"),
    ],
)
def test_weak_secrets_are_refused_and_named_without_their_value(secret: str, reason: str) -> None:
    with pytest.raises(InsecureSettingsError) as caught:
        production(storage=StorageSettings(secret_key=SecretStr(secret)))
    assert reason in str(caught.value)
    assert secret not in str(caught.value)


def test_local_development_allows_missing_secrets_but_never_a_known_default() -> None:
    assert ServiceSettings(local_development=True).storage.secret_key is None
    with pytest.raises(InsecureSettingsError, match="known default"):
        ServiceSettings(local_development=True, storage=StorageSettings(secret_key=SecretStr("devsecretkey123")))


def test_local_development_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTPOST_LOCAL_DEVELOPMENT", "false")
    monkeypatch.delenv("SMARTPOST_S3_SECRET_KEY", raising=False)
    with pytest.raises(InsecureSettingsError):
        ServiceSettings()


def test_services_name_their_required_secrets() -> None:
    from smartpost_portal_publisher.settings import Settings as PortalSettings
    from smartpost_print_dispatch.settings import HttpProviderSettings
    from smartpost_print_dispatch.settings import Settings as PrintSettings

    storage = StorageSettings(secret_key=GOOD)
    with pytest.raises(InsecureSettingsError, match="download_link_secret is not set"):
        PortalSettings(local_development=False, storage=storage)  # type: ignore[call-arg]
    # A provider without credentials is refused even locally (it could not submit / would accept forged webhooks).
    with pytest.raises(InsecureSettingsError, match=r"hybridpost\]\.webhook_secret"):
        PrintSettings(http_providers=[HttpProviderSettings(api_key=GOOD)])  # type: ignore[call-arg]


def test_the_local_stack_generates_its_secrets_once_per_stack(tmp_path: Path) -> None:
    first = stack_secrets(tmp_path / "a")
    assert stack_secrets(tmp_path / "a") == first, "every process of one stack reads the same secrets"
    assert stack_secrets(tmp_path / "b") != first, "another stack gets other secrets"
    assert all(len(v) >= 32 for v in first.values())
    mode = stat.S_IMODE((tmp_path / "a" / "secrets.json").stat().st_mode)
    assert mode == 0o600
    env = Stack(tmp_path / "a").env()
    assert env["SMARTPOST_S3_SECRET_KEY"] == first["s3_secret_key"]
    printed = json.dumps(redacted(env))
    assert first["s3_secret_key"] not in printed
