"""Serialising the handlers of one letter across topics (LetterCreated vs. DocumentSplit race)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def lock_letter(conn: Connection, account_id: str, letter_id: str) -> None:
    """Hold a transaction-scoped lock on one letter.

    Without it, on PostgreSQL a DocumentSplit could be parked while a concurrent LetterCreated looks for parked
    splits, and both commit: the split would wait forever. SQLite needs nothing: every handler starts by writing
    its ledger row, which takes the database's single write lock, so the two transactions are already serial.
    """
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"{account_id}\0{letter_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
