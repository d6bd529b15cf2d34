"""Issue #15: the dispatch loops must not touch the database on the event loop.

A blocking database call on the loop stalls the whole service (HTTP, /readyz, Kafka heartbeats). With PostgreSQL
coming up late it hung print-dispatch for good when the pool had to open a connection from the loop thread.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from smartpost_print_dispatch.adapters.db import metadata
from smartpost_print_dispatch.adapters.providers.filedrop import FileDropProvider, FolderStore
from smartpost_print_dispatch.application import PrintDispatch, UnknownMailpieceError
from smartpost_print_dispatch.settings import Settings
from smartpost_shared.db import create_platform_tables
from smartpost_shared.masterdata import create_masterdata_tables
from smartpost_shared.storage import MemoryStore


async def test_submission_tracking_and_cancel_query_the_database_off_the_event_loop(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'pd.sqlite3'}"
    engine = create_engine(url, connect_args={"check_same_thread": False})
    create_platform_tables(engine)
    create_masterdata_tables(engine)
    metadata.create_all(engine)
    settings = Settings(database_url=url)
    provider = FileDropProvider(FolderStore(tmp_path / "drop"), settings.profile(settings.filedrop.profile))
    dispatch = PrintDispatch(engine, MemoryStore(), {"filedrop": provider}, settings)
    loop_thread = threading.get_ident()
    on_loop: list[str] = []
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)
        if threading.get_ident() == loop_thread:
            on_loop.append(statement.split("\n", 1)[0])

    await dispatch.submit_ready()
    await dispatch.poll_statuses()
    with pytest.raises(UnknownMailpieceError):
        await dispatch.cancel("acc-loop", "mp-unknown")
    assert statements, "the steps queried nothing: the test would prove nothing"
    assert on_loop == []
