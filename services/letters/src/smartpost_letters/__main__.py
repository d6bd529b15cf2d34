"""``python -m smartpost_letters``: run the letters service (HTTP API, consumers and outbox relay)."""

from __future__ import annotations


def main() -> None:
    # Imports live here, not at module level: the upload check runs in a spawned child process, which re-imports
    # this module as ``__mp_main__``; keeping it empty saves every upload the web stack and the letters app in
    # the child (about 100 MB and a second of CPU each time, counted in the service's peak memory).
    import uvicorn  # noqa: PLC0415

    from smartpost_letters.app import create_app  # noqa: PLC0415
    from smartpost_letters.settings import get_settings  # noqa: PLC0415
    from smartpost_shared.runtime import tune_gc  # noqa: PLC0415

    settings = get_settings()
    tune_gc()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
