"""``python -m smartpost_portal_publisher``: serve the portal API and run the consumers."""

from __future__ import annotations

import uvicorn

from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
