"""Process-wide runtime settings a service applies once at start (before its web server runs)."""

from __future__ import annotations

import gc

# CPython runs a young-generation collection every 700 allocations by default, and with it, every 100 young ones, a
# full collection over the whole heap once enough objects have survived. A service holding a 4,000-part letter in
# memory (letters: ~250 MB) then paused 76-150 ms for a full collection several times in a few seconds, with nothing
# to collect (measured with a gc callback during `benchmarks/system_bench.py`): the release answer took 0.13-0.34 s
# depending on whether such a pause fell into it. The letters service's objects are mostly acyclic (freed by reference
# counting), so collecting cycles 70x less often costs it nothing measurable (peak 272 MB as before). Only the
# letters service uses it: tried in every service, print-dispatch (PDF objects in cycles) peaked 60 MB higher and the
# notifier's young collections took 26-45 ms each.
GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc() -> None:
    """Collect reference cycles less often (see :data:`GC_THRESHOLDS`); the startup objects are never rescanned."""
    gc.collect()
    gc.freeze()  # objects alive after imports and settings stay: full collections skip them
    gc.set_threshold(*GC_THRESHOLDS)
