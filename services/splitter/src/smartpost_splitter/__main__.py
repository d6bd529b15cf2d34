"""``python -m smartpost_splitter``: run the splitter (Kafka consumer + health endpoints)."""

from __future__ import annotations

import uvicorn

from smartpost_splitter.app import create_app
from smartpost_splitter.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
