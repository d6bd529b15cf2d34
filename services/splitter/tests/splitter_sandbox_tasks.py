"""Module-level tasks for the sandbox tests (a spawned worker imports them by name)."""

from __future__ import annotations

import os
import time


def pid() -> int:
    return os.getpid()


def add(a: int, b: int) -> int:
    return a + b


def abort() -> None:
    os.abort()  # what a pdfium CHECK failure does


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def spin(seconds: float) -> int:
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def fail() -> None:
    raise ValueError("kaputt")
