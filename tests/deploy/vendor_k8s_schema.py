"""Regenerate ``k8s-schema.json`` (the Kubernetes schemas the manifest test validates against).

Source: the PyPI package ``kubernetes-validate`` (Apache-2.0, https://github.com/willthames/kubernetes-validate),
which ships the JSON schemas derived from the Kubernetes OpenAPI spec (Apache-2.0, The Kubernetes Authors).
Only the kinds under deploy/k8s/ and the definitions they reach are kept, without descriptions, so the vendored
file stays small. Run from the repository root::

    pip download kubernetes-validate==1.37.0 --no-deps -d /tmp/kv
    python tests/deploy/vendor_k8s_schema.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

K8S_VERSION = "v1.33.0-local-strict"
KINDS = {
    "Namespace": "namespace-v1.json",
    "ConfigMap": "configmap-v1.json",
    "Secret": "secret-v1.json",
    "Service": "service-v1.json",
    "Deployment": "deployment-apps-v1.json",
    "Job": "job-batch-v1.json",
    "PodDisruptionBudget": "poddisruptionbudget-policy-v1.json",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler-autoscaling-v2.json",
    "NetworkPolicy": "networkpolicy-networking-v1.json",
}
# Kind files point into _definitions.json; definitions point at each other locally.
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def _strip(node: Any, refs: set[str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIXES):
                name = value.split("$defs/", 1)[1]
                refs.add(name)
                out[key] = f"#/$defs/{name}"
                continue
            out[key] = _strip(value, refs)
        return out
    if isinstance(node, list):
        return [_strip(item, refs) for item in node]
    return node


def main(wheel: str) -> None:
    base = f"kubernetes_validate/kubernetes-json-schema/{K8S_VERSION}/"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(base + "_definitions.json"))["$defs"]
        kinds_raw = {kind: json.loads(archive.read(base + name)) for kind, name in KINDS.items()}
    pending: set[str] = set()
    kinds = {kind: _strip(schema, pending) for kind, schema in kinds_raw.items()}
    for schema in kinds.values():
        schema.pop("$schema", None)
        schema.pop("$id", None)
    kept: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        found: set[str] = set()
        kept[name] = _strip(definitions[name], found)
        pending |= found - kept.keys()
    document = {
        "$comment": (
            f"Kubernetes {K8S_VERSION} JSON schemas for {', '.join(KINDS)}, pruned to the reachable definitions, "
            "descriptions removed. From the PyPI package kubernetes-validate 1.37.0 (Apache-2.0, "
            "https://github.com/willthames/kubernetes-validate), derived from the Kubernetes OpenAPI spec "
            "(Apache-2.0, The Kubernetes Authors). Regenerate with tests/deploy/vendor_k8s_schema.py."
        ),
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "kinds": kinds,
        "$defs": dict(sorted(kept.items())),
    }
    target = Path(__file__).with_name("k8s-schema.json")
    target.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {target} ({target.stat().st_size} bytes, {len(kept)} definitions)")


if __name__ == "__main__":
    main(sys.argv[1])
