"""The sandbox: limits per worker process, wall-clock budgets, workers replaced after a crash or a kill."""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest
import splitter_sandbox_tasks as tasks  # importable by name in the spawned workers too (see tests/conftest.py)

from smartpost_splitter.adapters.sandbox import Limits, Sandbox, SandboxError, SandboxFault

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(2, Limits(memory_bytes=512 * 1024 * 1024, cpu_seconds=30))
    box.warm_up()
    yield box
    box.close()


def test_tasks_run_in_other_processes_and_errors_come_back(sandbox: Sandbox) -> None:
    assert sandbox.call(tasks.add, 2, 3, timeout=10) == 5
    assert sandbox.call(tasks.pid, timeout=10) != os.getpid()
    with pytest.raises(ValueError, match="kaputt") as info:
        sandbox.call(tasks.fail, timeout=10)
    assert "in sandbox worker" in "".join(getattr(info.value, "__notes__", []))  # the worker's traceback, for the log
    assert 'raise ValueError("kaputt")' in "".join(info.value.__notes__)
    assert sandbox.call(tasks.add, 1, 1, timeout=10) == 2  # an ordinary exception keeps the worker


def test_an_aborting_worker_is_replaced(sandbox: Sandbox) -> None:
    before = sandbox.replaced
    with pytest.raises(SandboxError) as info:
        sandbox.call(tasks.abort, timeout=10)
    assert info.value.fault is SandboxFault.CRASHED
    assert sandbox.replaced == before + 1
    for _ in range(4):  # every worker of the pool works again
        assert sandbox.call(tasks.add, 1, 2, timeout=10) == 3


def test_a_task_past_its_wall_clock_budget_is_killed_without_touching_other_tasks(sandbox: Sandbox) -> None:
    slow = sandbox.submit(tasks.sleep, 30, timeout=1.0)
    other = sandbox.submit(tasks.sleep, 2, timeout=10)
    started = time.monotonic()
    with pytest.raises(SandboxError) as info:
        slow.result()
    assert info.value.fault is SandboxFault.TIMEOUT
    assert time.monotonic() - started < 5
    assert other.result() == "woke up"  # the other worker's task was not disturbed
    assert sandbox.call(tasks.add, 2, 2, timeout=10) == 4


def test_memory_limit(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.call(tasks.allocate, 2048, timeout=20)
    assert info.value.fault is SandboxFault.MEMORY
    assert sandbox.call(tasks.allocate, 16, timeout=20) == 16 * 1024 * 1024


def test_cpu_budget_per_task_not_per_worker_lifetime(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.call(tasks.spin, 5, timeout=30, cpu_seconds=1)
    assert info.value.fault is SandboxFault.CPU
    # a reused worker gets its full budget again for each task
    for _ in range(2):
        assert sandbox.call(tasks.spin, 0.6, timeout=30, cpu_seconds=1) > 0


def test_a_worker_killed_from_outside_is_replaced(sandbox: Sandbox) -> None:
    running = sandbox.submit(tasks.sleep, 20, timeout=30)
    time.sleep(0.5)
    for pid in sandbox.worker_pids():
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(SandboxError) as info:
        running.result()
    assert info.value.fault is SandboxFault.CRASHED
    assert sandbox.call(tasks.add, 5, 5, timeout=10) == 10
