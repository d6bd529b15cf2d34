"""The letters service collects reference cycles less often (smartpost_shared.runtime): full-heap pauses of 76-150 ms
fell into its HTTP answers while it held a 4,000-part letter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from smartpost_shared.runtime import GC_THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]


def test_tune_gc_raises_the_thresholds_and_freezes_the_startup_objects() -> None:
    code = (
        "import gc; from smartpost_shared.runtime import tune_gc; tune_gc(); "
        "print(gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == f"{GC_THRESHOLDS} True"
    assert GC_THRESHOLDS[0] > 700  # CPython's default would not change anything


def test_the_letters_service_tunes_the_gc_before_serving() -> None:
    main = ROOT / "services/letters/src/smartpost_letters/__main__.py"
    calls = [
        node.func.id
        for node in ast.walk(ast.parse(main.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    assert "tune_gc" in calls
