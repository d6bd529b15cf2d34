"""Settings of the splitter (env prefix ``SMARTPOST_SPLITTER_``), read once in :mod:`.app`."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from smartpost_shared.settings import ServiceSettings
from smartpost_splitter.domain import DEFAULT_IDENTIFIER_PATTERNS
from smartpost_splitter.limits import MB, Budgets


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPOST_SPLITTER_", extra="ignore", env_nested_delimiter="__")

    service_name: str = "splitter"
    http_port: int = 8102
    # Consumer group on letters.events: all splitter instances share one group, so they share the work.
    consumer_group: str | None = None
    # Sandbox worker processes: every read of an uploaded document (checks, page text, thumbnails, cutting) runs
    # in one of them, never in the service process.
    text_processes: int = Field(default=2, ge=1, le=64)
    # Documents split at the same time (one slow document does not stall the others).
    concurrent_documents: int = Field(default=2, ge=1, le=64)
    # Pages per work unit sent to a worker (page text ranges and batches of parts to cut).
    chunk_pages: int = Field(default=250, ge=1, le=10_000)
    upload_threads: int = Field(default=8, ge=1, le=64)
    thumbnail_width: int = Field(default=200, ge=50, le=1200)
    # Temporary files (source and attachments of the document being split); default: the system temp dir.
    work_dir: str | None = None
    # Largest DocumentSplit event (uncompressed JSON) the producer accepts; it is sent gzip-compressed.
    max_event_bytes: int = Field(default=16 * 1024 * 1024, ge=1_048_576)
    # Evidence: regexes whose group ``value`` (or group 1) is reported as an identifier on every part.
    identifier_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS
    # A job started this often without finishing (the service died each time) is given up with a reason.
    job_max_attempts: int = Field(default=3, ge=1, le=100)

    # Budgets per document (see README "Splitter hardening"); exceeding one fails the document with a reason.
    # An account of 5,000 owners sends ~12,500 pages in one annual statement; 25,000 leaves room for twice that.
    max_pages: int = Field(default=25_000, ge=1)
    max_stream_mb: int = Field(default=512, ge=1)
    max_page_side_pt: float = Field(default=14_400.0, gt=0)
    document_seconds: float = Field(default=600.0, gt=0)
    page_seconds: float = Field(default=2.0, gt=0)
    task_overhead_seconds: float = Field(default=10.0, ge=0)
    max_stored_ratio: float = Field(default=25.0, gt=0)
    stored_floor_mb: int = Field(default=64, ge=0)
    worker_memory_mb: int = Field(default=1024, ge=128)
    worker_cpu_seconds: int = Field(default=300, ge=1)

    def budgets(self) -> Budgets:
        return Budgets(
            max_pages=self.max_pages,
            max_stream_bytes=self.max_stream_mb * MB,
            max_page_side_pt=self.max_page_side_pt,
            document_seconds=self.document_seconds,
            page_seconds=self.page_seconds,
            task_overhead_seconds=self.task_overhead_seconds,
            max_stored_ratio=self.max_stored_ratio,
            stored_floor_bytes=self.stored_floor_mb * MB,
            memory_bytes=self.worker_memory_mb * MB,
            cpu_seconds=self.worker_cpu_seconds,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
