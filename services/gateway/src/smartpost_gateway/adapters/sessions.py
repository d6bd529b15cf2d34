"""Server-side staff sessions and login throttling in the gateway's own database (SQLite default, PostgreSQL by URL).

The cookie holds only a random token; the database holds its SHA-256, so logout (or an operator deleting rows)
ends a session at once on every replica that shares the database. Login attempts are counted per login and per
source address; reserving an attempt and counting the open ones happen in one serialised transaction (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock per key), so parallel guesses cannot slip past
the limit.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("login", String(320), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("attempt_id", String(36), primary_key=True),
    Column("key", String(400), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    # pending (being checked) or failed; successful attempts are deleted
    Column("outcome", String(16), nullable=False),
    Index("ix_login_attempts_key_at", "key", "at"),
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredSession:
    login: str
    csrf_token: str
    issued_at: datetime


@dataclass(frozen=True)
class ThrottleLimits:
    per_login: int
    per_address: int
    window: timedelta


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    # sessions ----------------------------------------------------------------------------------------------
    def open(self, login: str, csrf_token: str, ttl: timedelta) -> str:
        """A new session; returns the cookie token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(staff_sessions).values(
                    token_hash=_hash(token),
                    login=login,
                    csrf_token=csrf_token,
                    issued_at=now,
                    expires_at=now + ttl,
                    ended_at=None,
                )
            )
        return token

    def find(self, token: str | None) -> StoredSession | None:
        if not token or len(token) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(staff_sessions.c.login, staff_sessions.c.csrf_token, staff_sessions.c.issued_at).where(
                    staff_sessions.c.token_hash == _hash(token),
                    staff_sessions.c.ended_at.is_(None),
                    staff_sessions.c.expires_at > _now(),
                )
            ).first()
        if row is None:
            return None
        return StoredSession(login=row.login, csrf_token=row.csrf_token, issued_at=row.issued_at)

    def end(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(staff_sessions)
                .where(staff_sessions.c.token_hash == _hash(token), staff_sessions.c.ended_at.is_(None))
                .values(ended_at=_now())
            )

    def end_all(self, login: str) -> int:
        """End every open session of a login (an admin's "sign out everywhere", a removed user)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(staff_sessions)
                .where(staff_sessions.c.login == login, staff_sessions.c.ended_at.is_(None))
                .values(ended_at=_now())
            )
        return int(result.rowcount or 0)

    # throttling --------------------------------------------------------------------------------------------
    def reserve_attempt(self, login: str, address: str, limits: ThrottleLimits) -> list[str] | None:
        """Reserve one login attempt; None when the login or the address has used up its failures.

        Pending attempts count like failures until they are settled, so N parallel guesses reserve N slots.
        """
        now = _now()
        since = now - limits.window
        keys = {f"login:{login}": limits.per_login, f"addr:{address}": limits.per_address}
        with self.engine.begin() as conn:
            self._lock(conn, sorted(keys))
            conn.execute(delete(login_attempts).where(login_attempts.c.at < since))
            for key, limit in keys.items():
                used = conn.execute(
                    select(func.count()).where(and_(login_attempts.c.key == key, login_attempts.c.at >= since))
                ).scalar_one()
                if used >= limit:
                    return None
            ids = [str(uuid.uuid4()) for _ in keys]
            conn.execute(
                insert(login_attempts),
                [
                    {"attempt_id": attempt_id, "key": key, "at": now, "outcome": "pending"}
                    for attempt_id, key in zip(ids, keys, strict=True)
                ],
            )
        return ids

    def settle(self, attempt_ids: list[str], *, succeeded: bool, login: str) -> None:
        with self.engine.begin() as conn:
            if succeeded:
                # A successful login forgives that login's failures (not those of the source address).
                conn.execute(delete(login_attempts).where(login_attempts.c.key == f"login:{login}"))
                conn.execute(delete(login_attempts).where(login_attempts.c.attempt_id.in_(attempt_ids)))
            else:
                conn.execute(
                    update(login_attempts).where(login_attempts.c.attempt_id.in_(attempt_ids)).values(outcome="failed")
                )

    def _lock(self, conn: Connection, keys: list[str]) -> None:
        # SQLite transactions already hold the write lock from BEGIN IMMEDIATE (shared.db.make_engine).
        if conn.dialect.name == "postgresql":
            for key in keys:
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
