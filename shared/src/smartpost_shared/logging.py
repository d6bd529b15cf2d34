"""structlog configuration: JSON lines carrying ``correlation_id`` and ``account_id`` from context variables."""

from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from collections.abc import Iterator


def configure_logging(service: str, *, level: str = "INFO", json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Looked up per logger, not bound once: whoever replaces sys.stderr later (test capture) is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuerySecrets) for f in access.filters):
        access.addFilter(RedactQuerySecrets())


# Query parameters that carry secrets: password-reset tokens, link signatures, invitation codes, bearer tokens.
_SECRET_QUERY = re.compile(r"([?&](?:t|s|code|token|signature|password)=)[^&\s\"]*", re.IGNORECASE)


def redact_query_secrets(text: str) -> str:
    """``/x?t=abc&e=1`` -> ``/x?t=***&e=1``."""
    return _SECRET_QUERY.sub(r"\1***", text)


class RedactQuerySecrets(logging.Filter):
    """Keeps secrets in URLs (reset tokens, signed-link signatures, invitation codes) out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query_secrets(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query_secrets(record.msg)
        return True


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def message_context(**values: object) -> Iterator[None]:
    """Bind correlation_id / account_id (and more) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**{k: str(v) for k, v in values.items() if v is not None}):
        yield
