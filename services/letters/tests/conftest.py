"""Makes the letters test kit importable (``from letters_testkit import ...``) under --import-mode=importlib."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
