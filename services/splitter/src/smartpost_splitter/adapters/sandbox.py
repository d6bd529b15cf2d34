"""The sandbox: every read of an uploaded document (pdfium, pikepdf) runs in a limited worker process.

Each worker is a spawned process with ``resource.setrlimit`` limits on its address space (``RLIMIT_AS``) and, per
task, on its CPU time (``RLIMIT_CPU``: the soft limit is moved to "CPU used so far + budget" before each task, so a
reused worker gets the full budget every time). The parent gives every task a wall-clock budget; a task that runs
past it is killed with its worker. A worker that dies (pdfium abort, SIGXCPU, SIGKILL, out of memory) is replaced
by a new one before the next task: the pool never stays broken and the service process never runs document code.

One task per worker at a time, over a pipe; the parent knows which process runs which task, so killing one slow
task never takes down the tasks of other documents running in the other workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = get_logger(__name__)
T = TypeVar("T")


class SandboxFault(StrEnum):
    TIMEOUT = "timeout"  # wall-clock budget of the task exceeded; the worker was killed
    CPU = "cpu"  # CPU budget exceeded (SIGXCPU)
    MEMORY = "memory"  # address-space limit hit (MemoryError in the worker or killed while allocating)
    CRASHED = "crashed"  # the worker died otherwise (pdfium abort, segfault, killed from outside)


class SandboxError(Exception):
    """A task did not finish in its worker; ``fault`` says how. The worker has been replaced."""

    def __init__(self, fault: SandboxFault, detail: str) -> None:
        super().__init__(f"{fault.value}: {detail}")
        self.fault = fault
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (SandboxError, (self.fault, self.detail))


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 1024 * 1024 * 1024  # address space per worker
    cpu_seconds: int = 120  # CPU time per task


def _apply_memory_limit(memory_bytes: int) -> None:
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _apply_cpu_budget(cpu_seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used) + max(1, cpu_seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _heap_trimmer() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None where there is none (musl)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def _return_free_memory(trim: Callable[[int], int] | None) -> None:
    """Hand the heap a finished task freed back to the system.

    glibc keeps freed heap memory for reuse: a closed 10,000-page document (qpdf's and pdfium's parsed objects) stayed
    ~40 MB of the worker's resident memory until the worker ended. Trimming after a task costs about a millisecond.
    """
    if trim is not None:
        trim(0)


def _serve(conn: Connection, limits: Limits) -> None:
    """Worker main loop: receive ``(fn, args, cpu_seconds)``, answer ``(ok, value)``; one task at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the service, which shuts the workers down
    _apply_memory_limit(limits.memory_bytes)
    trim = _heap_trimmer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a task whose module cannot be imported here
            conn.send((False, RuntimeError(f"task not loadable in the sandbox: {type(exc).__name__}: {exc}")))
            continue
        if message is None:
            return
        fn, args, cpu_seconds = message
        _apply_cpu_budget(cpu_seconds)
        try:
            answer: tuple[bool, Any] = (True, fn(*args))
        except MemoryError:
            answer = (False, SandboxError(SandboxFault.MEMORY, "MemoryError in worker"))
        except BaseException as exc:  # noqa: BLE001 - every failure travels back to the parent
            exc.add_note(f"in sandbox worker {os.getpid()}:\n{traceback.format_exc()}")  # for the parent's log
            answer = (False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception that cannot be pickled
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
        del answer, message, fn, args
        _return_free_memory(trim)


class _Worker:
    def __init__(self, ctx: Any, limits: Limits) -> None:
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=_serve, args=(child, limits), daemon=True, name="split-sandbox")
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float, cpu_seconds: int) -> Any:
        try:
            self.conn.send((fn, args, cpu_seconds))
        except (OSError, EOFError) as exc:
            raise self._died() from exc
        if not self.conn.poll(max(timeout, 0.0)):
            self.kill()
            raise SandboxError(SandboxFault.TIMEOUT, f"no result within {timeout:.1f}s")
        try:
            ok, value = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        if ok:
            return value
        raise value

    def _died(self) -> SandboxError:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code == -signal.SIGXCPU:
            return SandboxError(SandboxFault.CPU, "CPU time limit exceeded")
        if code == -signal.SIGKILL:
            # The kernel's OOM killer and an outside kill look the same; both mean "document too heavy".
            return SandboxError(SandboxFault.CRASHED, "worker killed (SIGKILL)")
        return SandboxError(SandboxFault.CRASHED, f"worker exited with code {code}")

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        with contextlib.suppress(Exception):
            self.conn.close()


class Sandbox:
    """A pool of limited worker processes; :meth:`submit` runs ``fn(*args)`` in one of them.

    ``fn`` must be a module-level function (it is pickled by reference; workers are spawned, not forked: the
    service process runs an event loop and threads). Results and exceptions are pickled back.
    """

    def __init__(self, processes: int, limits: Limits | None = None) -> None:
        self.processes = processes
        self.limits = limits or Limits()
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._slots = threading.Semaphore(processes)
        self._threads = ThreadPoolExecutor(max_workers=processes, thread_name_prefix="split-sandbox")
        self._closed = False
        self.replaced = 0  # workers replaced after a crash or a kill (exposed for tests and logs)

    def submit(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> Future[T]:
        if self._closed:
            raise RuntimeError("sandbox closed")
        return self._threads.submit(self._run, fn, args, timeout, cpu_seconds)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> T:
        return self.submit(fn, *args, timeout=timeout, cpu_seconds=cpu_seconds).result()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], timeout: float, cpu_seconds: int | None) -> T:
        cpu = min(cpu_seconds or self.limits.cpu_seconds, self.limits.cpu_seconds)
        with self._slots:
            worker = self._checkout()
            healthy = False
            try:
                result: T = worker.call(fn, args, timeout, max(1, cpu))
            except SandboxError as exc:
                log.warning("sandbox.worker_lost", pid=worker.pid, fault=exc.fault.value, detail=exc.detail)
                raise
            except Exception:
                healthy = worker.alive()
                raise
            else:
                healthy = True
                return result
            finally:
                self._checkin(worker, healthy=healthy)

    def _checkout(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self._all.discard(worker)
                self.replaced += 1
        worker = _Worker(self._ctx, self.limits)
        with self._lock:
            self._all.add(worker)
        return worker

    def _checkin(self, worker: _Worker, *, healthy: bool) -> None:
        if healthy and not self._closed:
            with self._lock:
                self._idle.append(worker)
            return
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            if not healthy:
                self.replaced += 1

    def warm_up(self) -> None:
        """Start the workers now (spawning one costs ~0.5 s of imports), not on the first document."""
        with self._lock:
            missing = self.processes - len(self._all)
        for _ in range(max(0, missing)):
            worker = _Worker(self._ctx, self.limits)
            with self._lock:
                self._all.add(worker)
                self._idle.append(worker)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all if w.process.pid is not None]

    def close(self) -> None:
        self._closed = True
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            workers, self._all, self._idle = list(self._all), set(), []
        for worker in workers:
            worker.stop()


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds


def remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def current_pid() -> int:
    """The worker's process id (tests use it to kill a worker mid-split)."""
    return os.getpid()


class InlineRunner:
    """Runs tasks in the calling process, without limits: only for unit tests of the use case (no sandbox there)."""

    processes = 1

    def submit(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> Future[T]:
        del timeout, cpu_seconds
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, as the sandbox does
            future.set_exception(exc)
        return future

    def call(self, fn: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int | None = None) -> T:
        return self.submit(fn, *args, timeout=timeout, cpu_seconds=cpu_seconds).result()

    def close(self) -> None:
        return None
