"""Seen-once memory for proofs that must not be used twice (signed webhooks, caller token ids).

:class:`ReplayCache` is per process and in memory: a proof is remembered until it would be refused as too old
anyway, so the memory stays bounded by the rate of genuine proofs times their validity. When full (``max_entries``
unexpired proofs), new proofs are refused (fail closed) rather than forgetting ones that are still valid.

:class:`SharedReplayCache` adds the service's database (table ``seen_proofs``): every replica of a service shares
it, so a proof captured on its way to one replica and replayed to another is refused as well. If the database
cannot be asked, the proof is refused (:class:`ReplayStoreUnavailableError`, fail closed).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

DEFAULT_MAX_ENTRIES = 100_000


class ReplayCache:
    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time ``key`` is presented before ``expires_at`` (epoch seconds); False on a replay."""
        with self._lock:
            now = self._clock()
            while self._expiry and self._expiry[0][0] < now:
                _, old = heapq.heappop(self._expiry)
                if self._seen.get(old, now) < now:
                    del self._seen[old]
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                return False
            self._seen[key] = expires_at
            heapq.heappush(self._expiry, (expires_at, key))
            return True

    def seen(self, key: str) -> bool:
        """Whether ``key`` was accepted and has not expired yet (records nothing)."""
        with self._lock:
            expires = self._seen.get(key)
            return expires is not None and expires >= self._clock()

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)  # its heap entry is dropped when it comes up

    def __len__(self) -> int:
        return len(self._seen)


class ReplayGuard(Protocol):
    def first_use(self, key: str, expires_at: float) -> bool: ...

    def forget(self, key: str) -> None: ...


class ReplayStoreUnavailableError(RuntimeError):
    """The shared seen-once store could not be asked: the proof is not accepted (the caller may retry)."""


# Expired rows are deleted at most this often per process (a range delete on an indexed column), and only when they
# expired this long ago (clock differences between replicas).
PURGE_EVERY_SECONDS = 60.0
PURGE_MARGIN_SECONDS = 600.0


class SharedReplayCache:
    """Seen-once across replicas: one insert into ``seen_proofs``, then the process's own :class:`ReplayCache`.

    The insert is the decision: its primary key refuses a proof another replica (or this one, after a restart)
    recorded before. The database is asked first, so a proof refused with 503 (store unavailable) can be sent again
    once it is back. Costs one small transaction per state-changing request.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        memory: ReplayCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.memory = memory if memory is not None else ReplayCache(clock=clock)
        self._clock = clock
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        self._table_ready = False

    def first_use(self, key: str, expires_at: float) -> bool:
        if self.memory.seen(key):
            return False  # this process accepted it already: no need to ask the database
        from sqlalchemy import insert  # noqa: PLC0415 - the in-memory cache needs no database driver
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError  # noqa: PLC0415

        from smartpost_shared.db import seen_proofs  # noqa: PLC0415

        self._ensure_table()
        now = self._clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(seen_proofs).values(proof=_proof(key), expires_at=int(expires_at) + 1))
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise ReplayStoreUnavailableError(str(exc)) from exc
        self.memory.first_use(key, expires_at)
        if self._purge_due(now):
            self._purge(now)
        return True

    def forget(self, key: str) -> None:
        """Accept ``key`` again (the request it proved failed before it changed anything)."""
        from sqlalchemy import delete  # noqa: PLC0415
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        from smartpost_shared.db import seen_proofs  # noqa: PLC0415

        self.memory.forget(key)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(seen_proofs).where(seen_proofs.c.proof == _proof(key)))
        except SQLAlchemyError as exc:
            raise ReplayStoreUnavailableError(str(exc)) from exc

    def _ensure_table(self) -> None:
        """Create ``seen_proofs`` if it is missing, once per process.

        Here too, not only with the service's tables: a replica may take requests before its start-up step has run
        (and tests drive apps without it). Two replicas creating it at once: one gets an error from the catalog,
        then finds the table there.
        """
        if self._table_ready:
            return
        from sqlalchemy import inspect  # noqa: PLC0415
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        from smartpost_shared.db import seen_proofs  # noqa: PLC0415

        try:
            seen_proofs.create(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            try:
                exists = inspect(self.engine).has_table(seen_proofs.name)
            except SQLAlchemyError:
                exists = False
            if not exists:
                raise ReplayStoreUnavailableError(str(exc)) from exc
        self._table_ready = True

    def _purge(self, now: float) -> None:
        """Delete expired proofs, in a transaction of their own; a failure only delays it to the next round."""
        from sqlalchemy import delete  # noqa: PLC0415
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        from smartpost_shared.db import seen_proofs  # noqa: PLC0415

        # A margin for replicas whose clocks run ahead: they must not delete what a slower one still honours.
        cutoff = int(now - PURGE_MARGIN_SECONDS)
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(delete(seen_proofs).where(seen_proofs.c.expires_at < cutoff))

    def _purge_due(self, now: float) -> bool:
        with self._purge_lock:
            if now < self._next_purge:
                return False
            self._next_purge = now + PURGE_EVERY_SECONDS
            return True


def _proof(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
