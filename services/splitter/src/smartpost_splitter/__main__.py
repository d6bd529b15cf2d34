"""``python -m smartpost_splitter``: run the splitter (Kafka consumer + health endpoints)."""

from __future__ import annotations


def main() -> None:
    # Imports live here, not at module level: the text-extraction workers are spawned processes that re-import
    # this module as ``__mp_main__``; keeping it empty saves each worker the web stack (~60 MB).
    import uvicorn  # noqa: PLC0415

    from smartpost_splitter.app import create_app  # noqa: PLC0415
    from smartpost_splitter.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
