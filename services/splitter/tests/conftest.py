"""Makes the splitter's test kits importable (``from splitter_hostile_corpus import ...``) under
--import-mode=importlib; sandbox workers inherit the path, so they can import test tasks by name too."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
