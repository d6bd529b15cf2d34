"""Settings of the splitter (env prefix ``SMARTPOST_SPLITTER_``), read once in :mod:`.app`."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings
from smartpost_splitter.domain import DEFAULT_IDENTIFIER_PATTERNS


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_SPLITTER_", extra="ignore", env_nested_delimiter="__")

    service_name: str = "splitter"
    http_port: int = 8102
    # Consumer group on letters.events: all splitter instances share one group, so they share the work.
    consumer_group: str | None = None
    # Worker processes that read page text (the expensive part); 0 = read in the service process.
    text_processes: int = Field(default=2, ge=0, le=64)
    # Pages per work unit sent to a worker; documents shorter than ``inline_below_pages`` are read in-process.
    chunk_pages: int = Field(default=250, ge=10, le=10_000)
    inline_below_pages: int = Field(default=300, ge=0)
    upload_threads: int = Field(default=8, ge=1, le=64)
    thumbnail_width: int = Field(default=200, ge=50, le=1200)
    # Temporary files (source and attachments of the document being split); default: the system temp dir.
    work_dir: str | None = None
    # Largest DocumentSplit event (uncompressed JSON) the producer accepts; it is sent gzip-compressed.
    max_event_bytes: int = Field(default=16 * 1024 * 1024, ge=1_048_576)
    # Evidence: regexes whose group ``value`` (or group 1) is reported as an identifier on every part.
    identifier_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS


@lru_cache
def get_settings() -> Settings:
    return Settings()
