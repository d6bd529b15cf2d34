"""``python -m smartpost_assignment``: run the service (consumers, outbox relay, HTTP API)."""

from __future__ import annotations

import uvicorn

from smartpost_assignment.app import create_app
from smartpost_assignment.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
