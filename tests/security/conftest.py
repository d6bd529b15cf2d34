"""The attack suite reports itself: every test here is one attack, and a failing test is an attack that succeeded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest
    from _pytest.terminal import TerminalReporter

_OUTCOMES: dict[str, bool] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/security/" not in report.nodeid.replace("\\", "/"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _OUTCOMES[report.nodeid] = _OUTCOMES.get(report.nodeid, True) and report.passed


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if _OUTCOMES:
        succeeded = sum(1 for held in _OUTCOMES.values() if not held)
        terminalreporter.write_line(f"security suite: {len(_OUTCOMES)} attacks, {succeeded} succeeded")
