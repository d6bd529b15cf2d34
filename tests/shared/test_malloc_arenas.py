"""Every service runs with two malloc arenas, in the images and when started locally (README, session 9).

glibc keeps up to 8 arenas per core for a process's threads; memory freed in one is seldom returned, which cost the
letters service 35-64 MB of its peak at 10,000 pages. The setting is an environment variable read by the C library
at process start, so it must be in the image and in the local runner, not in a service's settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smartpost_shared.devstack import Stack
from smartpost_shared.localrun import MALLOC_ARENA_MAX, SERVICES, LocalSystem, free_ports_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))


def test_every_service_has_an_image() -> None:
    assert len(DOCKERFILES) == 7


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_image_runs_with_two_malloc_arenas(dockerfile: Path) -> None:
    runtime_stage = dockerfile.read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^\s*MALLOC_ARENA_MAX=2\b", runtime_stage, re.MULTILINE)


def test_locally_started_services_get_the_same_setting_unless_the_operator_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(tmp_path, kafka_port=1, s3_port=2, smtp_port=3)
    system = LocalSystem(stack, tmp_path / "data", ports=free_ports_for(list(SERVICES)))
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert MALLOC_ARENA_MAX == "2"
    assert {system.env_for(s)["MALLOC_ARENA_MAX"] for s in SERVICES} == {"2"}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert system.env_for("letters")["MALLOC_ARENA_MAX"] == "4"
