"""``python -m smartpost_print_dispatch``: serve the API and run the consumers and loops."""

from __future__ import annotations

import uvicorn

from smartpost_print_dispatch.app import create_app
from smartpost_print_dispatch.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
