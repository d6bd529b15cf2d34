"""Export and compatibility check of the wire contracts.

``shared/schemas/<EventType>/v<N>.schema.json`` holds the JSON Schema of every event payload version and
``v<N>.example.json`` a golden example envelope. Tests compare the code with these files, so removing or retyping
a field without bumping ``schema_version`` (and keeping the old version) fails CI.
Regenerate after an intended change: ``python scripts/export_contracts.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smartpost_shared.contracts.envelope import EnvelopeHeader, PayloadRef, registered_payloads

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


def payload_schema(event_type: str, version: int) -> dict[str, Any]:
    cls = registered_payloads()[(event_type, version)]
    schema: dict[str, Any] = cls.model_json_schema(mode="validation")
    schema["title"] = f"{event_type} v{version}"
    return schema


def envelope_schema() -> dict[str, Any]:
    schema: dict[str, Any] = EnvelopeHeader.model_json_schema(mode="validation")
    schema["title"] = "Envelope"
    schema["properties"]["payload"] = {"type": "object", "description": "the event payload (see event schemas)"}
    ref = PayloadRef.model_json_schema(mode="validation")
    ref["description"] = (
        "claim check instead of payload: messages above 512 KiB are stored whole in object storage under key "
        "(accounts/<account_id>/events/<event_type>/<event_id>.json); no message exceeds 1 MiB"
    )
    schema["properties"]["payload_ref"] = ref
    schema["oneOf"] = [{"required": ["payload"]}, {"required": ["payload_ref"]}]
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return node


def _type_signature(schema: dict[str, Any], node: dict[str, Any], depth: int = 0) -> Any:
    """A comparable description of a field's type (refs resolved, docs and defaults ignored)."""
    node = _resolve(schema, node)
    if depth > 8:
        return "..."
    if "anyOf" in node:
        return ("anyOf", sorted((_type_signature(schema, n, depth + 1) for n in node["anyOf"]), key=repr))
    if "enum" in node:
        return ("enum", tuple(sorted(map(str, node["enum"]))))
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        return (
            "object",
            tuple(sorted((k, _type_signature(schema, v, depth + 1)) for k, v in node["properties"].items())),
        )
    if kind == "array":
        return ("array", _type_signature(schema, node.get("items", {}), depth + 1))
    return (kind, node.get("format"), node.get("pattern"))


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Differences that would break a consumer or producer of ``old``: removed or retyped fields, new required ones."""
    problems: list[str] = []
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name, old_field in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"field removed: {where}")
            continue
        old_node, new_node = _resolve(old, old_field), _resolve(new, new_props[name])
        if old_node.get("type") == "object" and new_node.get("type") == "object" and "properties" in old_node:
            sub_old = {**old_node, "$defs": old.get("$defs", {})}
            sub_new = {**new_node, "$defs": new.get("$defs", {})}
            problems += breaking_changes(sub_old, sub_new, f"{where}.")
        elif _type_signature(old, old_field) != _type_signature(new, new_props[name]):
            problems.append(f"field retyped: {where}")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"new required field: {path}{name}")
    return problems


def stored_versions() -> dict[tuple[str, int], Path]:
    found: dict[tuple[str, int], Path] = {}
    for file in sorted(SCHEMA_DIR.glob("*/v*.schema.json")):
        version = int(file.name.split(".")[0].removeprefix("v"))
        found[(file.parent.name, version)] = file
    return found


def write_schema_files(examples: dict[tuple[str, int], dict[str, Any]]) -> list[Path]:
    written: list[Path] = []
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    (SCHEMA_DIR / "envelope.schema.json").write_text(json.dumps(envelope_schema(), indent=2, sort_keys=True) + "\n")
    for event_type, version in sorted(registered_payloads()):
        folder = SCHEMA_DIR / event_type
        folder.mkdir(exist_ok=True)
        schema_file = folder / f"v{version}.schema.json"
        schema_file.write_text(json.dumps(payload_schema(event_type, version), indent=2, sort_keys=True) + "\n")
        written.append(schema_file)
        example_file = folder / f"v{version}.example.json"
        if (event_type, version) in examples and not example_file.exists():
            example_file.write_text(json.dumps(examples[(event_type, version)], indent=2, sort_keys=True) + "\n")
            written.append(example_file)
    return written
