"""services/<name>/Dockerfile against the code: base image, user, install, port, health check, start module."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from smartpost_shared.topics import SERVICES


@pytest.fixture(scope="module")
def ports(kit):
    return kit.architecture_ports(SERVICES)


def _instructions(kit, service):
    path = kit.REPO / "services" / service / "Dockerfile"
    assert path.is_file(), f"{path.relative_to(kit.REPO)} is missing"
    return kit.parse_dockerfile(path)


def _all(instructions, keyword):
    return [i for i in instructions if i.keyword == keyword]


def _env_assignments(instructions) -> dict[str, str]:
    pattern = r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)"
    return {name: value for i in _all(instructions, "ENV") for name, value in re.findall(pattern, i.argument)}


def test_dockerfile_parser_joins_continuations(kit, tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text('# c\nFROM a AS b\nRUN x \\\n  # inner comment\n  && y\nCMD ["p"]\n', encoding="utf-8")
    parsed = kit.parse_dockerfile(path)
    assert [(i.keyword, i.argument) for i in parsed] == [("FROM", "a AS b"), ("RUN", "x  && y"), ("CMD", '["p"]')]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_builds_on_python_311_slim_and_runs_unprivileged(kit, service):
    instructions = _instructions(kit, service)
    bases = [i.argument.split()[0] for i in _all(instructions, "FROM")]
    assert bases, f"{service}: no FROM"
    assert all(base == "python:3.11-slim" for base in bases), f"{service}: {bases}"
    users = _all(instructions, "USER")
    assert users, f"{service}: runs as root (no USER)"
    last_user = users[-1].argument.split(":")[0]
    assert last_user not in {"root", "0"}, f"{service}: USER {last_user}"
    final_stage = max(i.line for i in _all(instructions, "FROM"))
    assert users[-1].line > final_stage, f"{service}: USER must be set in the final stage"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_installs_shared_then_the_service_with_constraints(kit, service):
    instructions = _instructions(kit, service)
    copies = [i.argument.split() for i in _all(instructions, "COPY") if not i.argument.startswith("--from")]
    sources = [args[0] for args in copies]
    assert sources == ["constraints.txt", "shared/", f"services/{service}/"], f"{service}: COPY {sources}"
    for source in sources:
        assert (kit.REPO / source).exists(), f"{service}: COPY source {source} does not exist in the repository"
    runs = " ".join(i.argument for i in _all(instructions, "RUN"))
    match = re.search(r"pip install -c constraints\.txt (\S+) (\S+)", runs)
    assert match, f"{service}: no 'pip install -c constraints.txt ./shared ./services/{service}'"
    assert match.groups() == ("./shared", f"./services/{service}")


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_exposes_its_port_and_checks_healthz(kit, ports, service):
    instructions = _instructions(kit, service)
    port = ports[service]
    assert [i.argument for i in _all(instructions, "EXPOSE")] == [str(port)]
    (healthcheck,) = _all(instructions, "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck.argument
    assert "urllib.request.urlopen" in healthcheck.argument
    env = _env_assignments(instructions)
    prefix = kit.env_prefix_of(service)
    assert env.get(f"{prefix}HTTP_HOST") == "0.0.0.0", f"{service}: must listen on all interfaces in a container"
    assert env.get(f"{prefix}HTTP_PORT") == str(port)


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_env_names_are_settings_fields(kit, service):
    env = {k: v for k, v in _env_assignments(_instructions(kit, service)).items() if k.startswith("SMARTPOST_")}
    known = kit.settings_env(kit.load_settings_class(service)).fields
    unknown = sorted(name for name in env if name.upper() not in known)
    assert unknown == [], f"{service}: Dockerfile sets variables its Settings do not read"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_starts_the_service_package(kit, service):
    instructions = _instructions(kit, service)
    cmd = _all(instructions, "CMD")
    assert len(cmd) == 1, f"{service}: exactly one CMD"
    command = json.loads(cmd[0].argument)  # exec form: signals reach Python, not a shell
    assert command == ["python", "-m", kit.package_of(service)]
    package_dir = kit.REPO / "services" / service / "src" / kit.package_of(service)
    assert (package_dir / "__main__.py").is_file(), (
        f"{service}: {package_dir.relative_to(kit.REPO)}/__main__.py does not exist (yet): "
        "`python -m` would fail in the container"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_service_project_is_installable_as_smartpost_name(kit, service):
    pyproject = kit.REPO / "services" / service / "pyproject.toml"
    assert pyproject.is_file(), f"{service}: {pyproject.relative_to(kit.REPO)} does not exist (yet)"
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    assert project["name"] == f"smartpost-{service}"
    assert any(dep.startswith("smartpost-shared") for dep in project.get("dependencies", [])), (
        f"{service}: must depend on smartpost-shared (installed from ./shared in the image)"
    )


def test_constraints_file_exists_for_the_image_builds(kit):
    assert (kit.REPO / "constraints.txt").is_file(), "constraints.txt (repository root) is missing: images pin by it"


@pytest.mark.parametrize("service", SERVICES)
def test_service_defines_the_probe_routes(kit, service):
    """The container health check and the k8s probes call /healthz and /readyz: the service must route them."""
    package_dir = kit.REPO / "services" / service / "src" / kit.package_of(service)
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(package_dir.rglob("*.py")))
    for path in ("/healthz", "/readyz"):
        assert re.search(rf"\.(get|api_route)\(\s*[\"']{path}[\"']", sources), (
            f"{service}: no route for GET {path} in {package_dir.relative_to(kit.REPO)} (yet)"
        )
