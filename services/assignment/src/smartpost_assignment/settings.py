from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the assignment service (env prefix ``SMARTPOST_ASSIGNMENT_``)."""

    model_config = SettingsConfigDict(env_prefix="SMARTPOST_ASSIGNMENT_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "assignment"
    required_secrets: ClassVar[tuple[str, ...]] = ()  # no object storage
    http_port: int = 8103
    # Matching thresholds (see README "Matching rules"): a part is assigned automatically only when the best
    # candidate reaches ``auto_threshold`` points AND leads the runner-up by ``auto_margin`` points.
    auto_threshold: float = 7.0
    auto_margin: float = 3.0
    outbox_poll_seconds: float = 0.2
    # Maximum upload size of POST /imports.
    max_import_bytes: int = 50 * 1024 * 1024
