"""Refresh the README screenshots (docs/screenshots/*.png) by running the gateway's browser tests.

The tests walk the whole flow against the real services in Debian's chromium and save a PNG of each main screen.

    .venv/bin/python services/gateway/scripts/screenshots.py
"""  # noqa: INP001 - a script, not a package

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

if __name__ == "__main__":
    command = [sys.executable, "-m", "pytest", "services/gateway/tests/e2e", "-q"]
    result = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603 - our own test suite
    sys.stdout.write(f"screenshots in {ROOT / 'docs' / 'screenshots'}\n")
    sys.exit(result.returncode)
