"""``python -m smartpost_letters``: run the letters service (HTTP API, consumers and outbox relay)."""

from __future__ import annotations

import uvicorn

from smartpost_letters.app import create_app
from smartpost_letters.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
