"""``python -m smartpost_gateway`` runs the gateway; ``python -m smartpost_gateway hash-password`` makes a hash."""

from __future__ import annotations

import getpass
import sys

import uvicorn

from smartpost_gateway.app import create_app
from smartpost_gateway.auth import hash_password
from smartpost_gateway.settings import get_settings


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "hash-password":
        password = sys.argv[2] if len(sys.argv) > 2 else getpass.getpass("Passwort: ")
        sys.stdout.write(hash_password(password) + "\n")
        return
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning")


if __name__ == "__main__":
    main()
