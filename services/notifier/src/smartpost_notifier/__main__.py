"""``python -m smartpost_notifier``: serve the notifier (probes, internal API) and run its consumers and loops."""

from __future__ import annotations

import uvicorn

from smartpost_notifier.app import create_app
from smartpost_notifier.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
