"""Issue #16: the README lists every port a local run or the compose file opens (the fake provider's 8107 was
missing once). A new service, stack process or published compose port without a line in the README fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from smartpost_shared.devstack import Stack
from smartpost_shared.localrun import FAKE_PROVIDER, SERVICES

ROOT = Path(__file__).resolve().parents[2]


def _port_paragraph() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"Every port of a local run.*?(?:\n\n)", readme, flags=re.DOTALL)
    assert found, "the README's paragraph listing every port is gone"
    return found.group(0)


def test_every_local_port_is_in_the_readme() -> None:
    paragraph = _port_paragraph()
    stack_ports = {f.name: f.default for f in dataclasses.fields(Stack) if f.name.endswith("_port")}
    assert stack_ports, "Stack has no port defaults any more"
    expected = {name: port for name, (_module, port) in SERVICES.items()}
    expected |= {"fake print provider": FAKE_PROVIDER[1], **stack_ports}
    missing = {name: port for name, port in expected.items() if not re.search(rf"\b{port}\b", paragraph)}
    assert missing == {}, f"ports not in the README: {missing}"


def test_every_published_compose_port_is_in_the_readme() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    published = set(re.findall(r"^\s*-\s*\"(?:[\d.]+:)?(?:\$\{[A-Z_]+:-)?(\d+)\}?:\d+\"", compose, flags=re.MULTILINE))
    assert {"8100", "8104"} <= published, published
    paragraph = _port_paragraph()
    assert {p for p in published if not re.search(rf"\b{p}\b", paragraph)} == set()
