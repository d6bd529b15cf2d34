"""Write JSON Schemas, golden examples (new ones only) and the combined AsyncAPI document.

Run after an intended contract change: ``.venv/bin/python scripts/export_contracts.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from smartpost_shared.contracts.asyncapi import asyncapi_document
from smartpost_shared.contracts.examples import example_messages
from smartpost_shared.contracts.schemas import write_schema_files

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    for path in write_schema_files(example_messages()):
        print("wrote", path.relative_to(ROOT))
    target = ROOT / "docs" / "asyncapi.json"
    target.write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    print("wrote", target.relative_to(ROOT))
