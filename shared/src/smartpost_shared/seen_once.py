"""Seen-once memory for proofs that must not be used twice (signed webhooks, caller token ids).

Per process and in memory: a proof is remembered until it would be refused as too old anyway, so the memory stays
bounded by the rate of genuine proofs times their validity. When full (``max_entries`` unexpired proofs), new proofs
are refused (fail closed) rather than forgetting ones that are still valid.
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

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
