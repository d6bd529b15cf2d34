"""Seen-once memory for proofs that must not be used twice (signed webhooks, caller token ids).

:class:`ReplayCache` is per process and in memory: a proof is remembered until it would be refused as too old
anyway, so the memory stays bounded by the rate of genuine proofs times their validity. When full (``max_entries``
unexpired proofs), new proofs are refused (fail closed) rather than forgetting ones that are still valid.

:class:`SharedReplayCache` adds the service's database (table ``seen_proofs``): every replica of a service shares
it, so a proof captured on its way to one replica and replayed to another is refused as well. If the database
cannot be asked, the proof is refused (:class:`ReplayStoreUnavailableError`, fail closed).
"""

from __future__ import annotations

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

    def __len__(self) -> int:
        return len(self._seen)


class ReplayGuard(Protocol):
    def first_use(self, key: str, expires_at: float) -> bool: ...


class ReplayStoreUnavailableError(RuntimeError):
    """The shared seen-once store could not be asked: the proof is not accepted (the caller may retry)."""


# Expired rows are deleted at most this often per process (a range delete on an indexed column).
PURGE_EVERY_SECONDS = 60.0


class SharedReplayCache:
    """Seen-once across replicas: the process's own :class:`ReplayCache` first, then one insert into ``seen_proofs``.

    The insert is the decision: its primary key refuses a proof another replica (or this one, after a restart)
    recorded before. Costs one small transaction per state-changing request.
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
        if not self.memory.first_use(key, expires_at):
            return False
        from sqlalchemy import delete, insert  # noqa: PLC0415 - the in-memory cache above needs no database driver
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError  # noqa: PLC0415

        from smartpost_shared.db import seen_proofs  # noqa: PLC0415

        proof = hashlib.sha256(key.encode()).hexdigest()
        now = self._clock()
        try:
            if not self._table_ready:
                # Created here too, not only with the service's tables: a replica may take requests before its
                # start-up step has run (and tests drive apps without it). checkfirst makes it idempotent.
                seen_proofs.create(self.engine, checkfirst=True)
                self._table_ready = True
            with self.engine.begin() as conn:
                if self._purge_due(now):
                    conn.execute(delete(seen_proofs).where(seen_proofs.c.expires_at < int(now)))
                conn.execute(insert(seen_proofs).values(proof=proof, expires_at=int(expires_at) + 1))
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise ReplayStoreUnavailableError(str(exc)) from exc
        return True

    def _purge_due(self, now: float) -> bool:
        with self._purge_lock:
            if now < self._next_purge:
                return False
            self._next_purge = now + PURGE_EVERY_SECONDS
            return True
