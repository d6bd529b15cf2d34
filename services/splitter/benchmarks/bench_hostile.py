"""Hostile and real-world PDFs through the splitter's sandbox: outcome classes, time, stored bytes.

    .venv/bin/python services/splitter/benchmarks/bench_hostile.py [--corpus DIR ...] [--shared-pages 400]

1. the crafted corpus of the tests (``tests/splitter_hostile_corpus.py``) with the default budgets, each case
   followed by a control letter: outcome, seconds, workers replaced;
2. the shared-image case of issue #17 (every page names all images in one dictionary): stored bytes of the parts
   against the upload, and what copying the shared dictionary into every part would store;
3. optionally every ``*.pdf`` under the given folders (e.g. py-pdf/sample-files, the pdf.js or qpdf test files,
   fetched by you; nothing is committed), split with one letter per page: outcome classes.

Deliberately empty at import time (imports inside ``main``): the sandbox workers are spawned processes that
import the main script again.
"""

from __future__ import annotations

if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).parent))
    from hostilebench import main

    main()
