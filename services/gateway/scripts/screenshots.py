"""Refresh the README screenshots (docs/screenshots/*.png): runs the gateway's browser tests, which walk the whole
flow against the real services in Debian's chromium and save a PNG of each main screen.

    .venv/bin/python services/gateway/scripts/screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

if __name__ == "__main__":
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "services/gateway/tests/e2e", "-q"], cwd=ROOT, check=False
    )
    print("screenshots in", ROOT / "docs" / "screenshots")
    sys.exit(result.returncode)
