"""Helpers for the deployment tests: parse compose/k8s/Dockerfiles and compare them with the code.

Nothing here talks to Docker or Kubernetes (neither exists on these machines): the artefacts are parsed and checked
against the topic registry, the services' Settings classes and docs/architecture.md. The helpers are handed to the
test modules through the ``kit`` fixture (test modules cannot import each other under ``--import-mode=importlib``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath, BaseModel, SecretStr
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from collections.abc import Iterable

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
K8S_DIR = REPO / "deploy" / "k8s"
ARCHITECTURE = REPO / "docs" / "architecture.md"
POSTGRES_INIT = REPO / "deploy" / "compose" / "postgres-init.sql"
HERE = Path(__file__).resolve().parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def package_of(service: str) -> str:
    return "smartpost_" + service.replace("-", "_")


def env_prefix_of(service: str) -> str:
    return "SMARTPOST_" + service.upper().replace("-", "_") + "_"


# --------------------------------------------------------------------------------------------- architecture.md


def architecture_ports(services: tuple[str, ...]) -> dict[str, int]:
    """Ports of the SmartPost services from the table in docs/architecture.md (row label starts with the name)."""
    ports: dict[str, int] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*([a-z][a-z-]*)\b[^|]*\|\s*(\d+)\s*\|\s*$", line)
        if match and match.group(1) in services:
            ports[match.group(1)] = int(match.group(2))
    return ports


# --------------------------------------------------------------------------------------------- compose


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def read_env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert "=" in line, f".env.example:{number}: not NAME=value: {raw!r}"
        name, value = line.split("=", 1)
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f".env.example:{number}: bad variable name {name!r}"
        assert name not in values, f".env.example:{number}: {name} defined twice"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]  # compose strips quotes ('...' also stops interpolation of $ in the value)
        values[name] = value
    return values


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def compose_variables(text: str) -> list[tuple[str, str | None]]:
    """(name, operator) of every ${...}/$NAME interpolation in a compose file text ($$ is an escape)."""
    found: list[tuple[str, str | None]] = []
    for match in _INTERPOLATION.finditer(text):
        if match.group("escaped"):
            continue
        name = match.group("braced") or match.group("plain")
        found.append((name, match.group("op")))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        if op in {":-", "-"}:
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else str(current)
        if op in {":?", "?"}:
            if current is None or (op == ":?" and current == ""):
                msg = f"required variable {name} is not set: {arg}"
                raise KeyError(msg)
            return current
        if op in {":+", "+"}:
            return arg if current else ""
        if current is None:
            msg = f"variable {name} is not set and has no default"
            raise KeyError(msg)
        return current

    return _INTERPOLATION.sub(replace, value)


def compose_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """A compose service's container environment (mapping or list form), interpolated with ``env``."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    else:
        pairs = {key: "" if value is None else str(value) for key, value in raw.items()}
    return {key: interpolate(value, env) for key, value in pairs.items()}


# --------------------------------------------------------------------------------------------- topics and buckets

_CREATE_CALL = re.compile(r"^\s*create\s+(?P<topic>[A-Za-z0-9._-]+)\s+(?P<partitions>\d+)\s*$", re.MULTILINE)


def created_topics(script: str) -> dict[str, int]:
    """Topics a setup script creates through its ``create <topic> <partitions>`` helper, checked for duplicates."""
    definition = re.search(r"create\(\)\s*\{(?P<body>[^}]*)\}", script)
    assert definition, "the topic script defines no create() helper"
    body = definition.group("body")
    assert "kafka-topics.sh" in body, "create() does not call kafka-topics.sh"
    assert "--create" in body, "create() does not pass --create"
    assert "--if-not-exists" in body, "create() is not idempotent (--if-not-exists)"
    assert re.search(r'--topic\s+"\$\$?1"', body), 'create() does not pass --topic "$1"'
    assert re.search(r'--partitions\s+"\$\$?2"', body), 'create() does not pass --partitions "$2"'
    topics: dict[str, int] = {}
    for match in _CREATE_CALL.finditer(script):
        name = match.group("topic")
        assert name not in topics, f"topic {name} is created twice"
        topics[name] = int(match.group("partitions"))
    return topics


def expected_topics() -> dict[str, int]:
    from smartpost_shared.topics import ALL_TOPICS

    wanted: dict[str, int] = {}
    for topic in ALL_TOPICS:
        wanted[topic.name] = topic.partitions
        wanted[topic.dead_letter] = topic.partitions
    return wanted


# --------------------------------------------------------------------------------------------- settings


def load_settings_class(service: str) -> type[BaseSettings]:
    """``smartpost_<pkg>.settings.Settings`` of a service; fails the test with a clear message if it is missing."""
    package = package_of(service)
    source = REPO / "services" / service / "src"
    settings_file = source / package / "settings.py"
    if not settings_file.is_file():
        pytest.fail(
            f"{service}: {settings_file.relative_to(REPO)} does not exist (yet), so the deployment env cannot be "
            "checked against its Settings class"
        )
    try:
        module = importlib.import_module(f"{package}.settings")
    except ModuleNotFoundError as exc:
        if exc.name not in {package, f"{package}.settings"}:
            raise
        sys.path.insert(0, str(source))  # not installed: import it from its source tree
        importlib.invalidate_caches()
        module = importlib.import_module(f"{package}.settings")
    settings_class = getattr(module, "Settings", None)
    if not (isinstance(settings_class, type) and issubclass(settings_class, BaseSettings)):
        pytest.fail(f"{service}: {package}.settings has no pydantic-settings class named Settings")
    return settings_class


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation (``X``, ``X | None``, ``Optional[X]``)."""
    origin = typing.get_origin(annotation)
    if origin in {typing.Union, types.UnionType}:
        return [cls for arg in typing.get_args(annotation) for cls in _model_classes(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _alias_names(alias: Any) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [name for choice in alias.choices for name in _alias_names(choice)]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    return []


@dataclass
class EnvField:
    """One environment variable a settings class reads."""

    path: str  # dotted attribute path, e.g. "kafka.bootstrap_servers"
    required: bool
    default: Any
    # Why the default must not reach a deployment (a loopback address, a development secret), or None.
    unsafe_default: str | None = None


@dataclass
class SettingsEnv:
    settings_class: type[BaseSettings]
    fields: dict[str, EnvField] = field(default_factory=dict)  # upper-cased env name -> field

    @property
    def required(self) -> set[str]:
        return {name for name, info in self.fields.items() if info.required}


def unsafe_default(value: Any) -> str | None:
    """Why a default value is unfit for a container: it points at loopback or carries a development secret."""
    if isinstance(value, SecretStr):
        return "a development secret" if value.get_secret_value() else None
    if isinstance(value, str):
        return f"loopback ({value!r})" if any(host in value for host in LOOPBACK) else None
    if isinstance(value, BaseModel):
        return _first(unsafe_default(getattr(value, name)) for name in type(value).model_fields)
    if isinstance(value, dict):
        return _first(unsafe_default(item) for item in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return _first(unsafe_default(item) for item in value)
    return None


def loopback_in(value: Any) -> str | None:
    """The first loopback address anywhere in a (settings) value, or None."""
    if isinstance(value, str):
        return value if any(host in value for host in LOOPBACK) else None
    if isinstance(value, BaseModel):
        return _first(loopback_in(getattr(value, name)) for name in type(value).model_fields)
    if isinstance(value, dict):
        return _first(loopback_in(item) for item in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return _first(loopback_in(item) for item in value)
    return None


def _first(reasons: Iterable[str | None]) -> str | None:
    return next((reason for reason in reasons if reason), None)


def settings_env(settings_class: type[BaseSettings]) -> SettingsEnv:
    """Every environment variable ``settings_class`` reads, resolved the way pydantic-settings resolves them.

    Covers the class's ``env_prefix``, aliases, ``env_nested_delimiter`` for nested models, and nested
    ``BaseSettings`` fields built by a default factory (``KafkaSettings`` reads ``SMARTPOST_KAFKA_*`` itself).
    """
    result = SettingsEnv(settings_class)
    _collect(settings_class, result, path="", own_prefix=None, via_delimiter=None)
    return result


def _collect(
    model: type[BaseModel], result: SettingsEnv, *, path: str, own_prefix: str | None, via_delimiter: str | None
) -> None:
    config = model.model_config
    prefix = str(config.get("env_prefix", "")) if own_prefix is None else own_prefix
    delimiter = config.get("env_nested_delimiter") if issubclass(model, BaseSettings) else None
    for name, info in model.model_fields.items():
        dotted = f"{path}.{name}" if path else name
        aliases = _alias_names(info.validation_alias) or _alias_names(info.alias)
        names = aliases or [prefix + name]
        if via_delimiter is not None:
            names = [via_delimiter + name]
        nested = _model_classes(info.annotation)
        settings_factory = any(issubclass(cls, BaseSettings) for cls in nested) and info.default_factory is not None
        if info.is_required():
            default, reason = None, None
        elif settings_factory:
            # Its own fields are collected below; calling the factory here would read this process's environment.
            default, reason = None, None
        else:
            default = info.get_default(call_default_factory=True)
            reason = unsafe_default(default)
        for env_name in names:
            result.fields.setdefault(
                env_name.upper(), EnvField(dotted, required=info.is_required(), default=default, unsafe_default=reason)
            )
        for nested_class in nested:
            if issubclass(nested_class, BaseSettings) and info.default_factory is not None:
                # Built by its default factory, it reads the environment with its own prefix.
                _collect(nested_class, result, path=dotted, own_prefix=None, via_delimiter=None)
            if delimiter:
                for env_name in names:
                    _collect(nested_class, result, path=dotted, own_prefix="", via_delimiter=env_name + str(delimiter))


ALLOWED_PLAIN_ENV = frozenset({"TZ", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONFAULTHANDLER"})


def env_problems(  # noqa: C901 - one pass over names, one over fields
    service: str, env: dict[str, str], where: str, settings_class: type[BaseSettings] | None = None
) -> list[str]:
    """Compare a container environment with the service's Settings: unknown names, missing required ones."""
    known = settings_env(settings_class or load_settings_class(service))
    problems: list[str] = []
    own_prefix = env_prefix_of(service)
    for name in sorted(env):
        upper = name.upper()
        if upper in known.fields:
            continue
        if not upper.startswith("SMARTPOST_"):
            if upper not in ALLOWED_PLAIN_ENV:
                problems.append(f"{where}: {name} is not a SmartPost setting (only SMARTPOST_* reach Settings)")
            continue
        hint = "" if upper.startswith(own_prefix) or "_" not in upper else f" (this service's prefix is {own_prefix})"
        problems.append(f"{where}: {name} matches no field of {package_of(service)}.settings.Settings{hint}")
    set_names = {name.upper() for name in env}
    by_path: dict[str, set[str]] = {}
    for env_name, info in known.fields.items():
        by_path.setdefault(info.path, set()).add(env_name)
    cls = settings_class or load_settings_class(service)
    required_secrets = set(getattr(cls, "required_secrets", ()))
    for env_name, info in sorted(known.fields.items()):
        if _covered(info.path, by_path, set_names):
            continue
        if info.path in required_secrets:
            problems.append(f"{where}: {info.path} is a required secret without default; set {env_name}")
        elif info.required:
            problems.append(f"{where}: required setting {info.path} is not set (env {env_name})")
        elif info.unsafe_default:
            problems.append(f"{where}: {info.path} would default to {info.unsafe_default}; set {env_name}")
    # A field reachable through several names only needs one; report each missing field once.
    return sorted(set(problems))


def _covered(path: str, by_path: dict[str, set[str]], set_names: set[str]) -> bool:
    """Whether ``path`` gets a value: set itself, inside a parent set as a whole (JSON), or through a child."""
    for other, names in by_path.items():
        related = other == path or path.startswith(other + ".") or other.startswith(path + ".")
        if related and names & set_names:
            return True
    return False


def instantiate_settings(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """Build the service's Settings from exactly ``env`` (the process's own SMARTPOST_* variables removed)."""
    settings_class = load_settings_class(service)
    for name in list(os.environ):
        if name.upper().startswith("SMARTPOST_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_class()


# --------------------------------------------------------------------------------------------- k8s


@dataclass(frozen=True)
class K8sDoc:
    file: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name"))

    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}: {self.kind} {self.name}"


def load_k8s_docs() -> list[K8sDoc]:
    docs: list[K8sDoc] = []
    for path in sorted(K8S_DIR.glob("*.yaml")) + sorted(K8S_DIR.glob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"
            docs.append(K8sDoc(path, doc))
    return docs


def k8s_schema_for(kind: str) -> dict[str, Any]:
    if kind == "ScaledObject":  # KEDA's custom resource: a minimal strict schema kept here (NOTICE.md)
        keda: dict[str, Any] = json.loads((HERE / "keda-scaledobject-schema.json").read_text(encoding="utf-8"))
        return keda
    vendored = json.loads((HERE / "k8s-schema.json").read_text(encoding="utf-8"))
    assert kind in vendored["kinds"], f"no vendored schema for kind {kind} (tests/deploy/vendor_k8s_schema.py)"
    return {"$schema": vendored["$schema"], "$defs": vendored["$defs"], **vendored["kinds"][kind]}


_QUANTITY_SUFFIX = {
    "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def quantity(value: str | float) -> float:
    """A Kubernetes resource quantity (``500m``, ``2``, ``512Mi``) as a number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match, f"not a resource quantity: {value!r}"
    assert match.group(2) in _QUANTITY_SUFFIX, f"unknown quantity suffix: {value!r}"
    return float(match.group(1)) * _QUANTITY_SUFFIX[match.group(2)]


# --------------------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str
    line: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, argument = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip(), start))
    assert not pending, f"{path}: dangling line continuation at the end"
    return instructions


# --------------------------------------------------------------------------------------------- the fixture


@pytest.fixture(scope="session")
def kit() -> types.SimpleNamespace:
    """The helpers above, for the test modules."""
    return types.SimpleNamespace(
        REPO=REPO,
        COMPOSE_FILE=COMPOSE_FILE,
        ENV_EXAMPLE=ENV_EXAMPLE,
        K8S_DIR=K8S_DIR,
        POSTGRES_INIT=POSTGRES_INIT,
        HERE=HERE,
        LOOPBACK=LOOPBACK,
        package_of=package_of,
        env_prefix_of=env_prefix_of,
        architecture_ports=architecture_ports,
        load_compose=load_compose,
        read_env_example=read_env_example,
        compose_variables=compose_variables,
        interpolate=interpolate,
        compose_environment=compose_environment,
        created_topics=created_topics,
        expected_topics=expected_topics,
        load_settings_class=load_settings_class,
        settings_env=settings_env,
        unsafe_default=unsafe_default,
        loopback_in=loopback_in,
        env_problems=env_problems,
        instantiate_settings=instantiate_settings,
        load_k8s_docs=load_k8s_docs,
        k8s_schema_for=k8s_schema_for,
        quantity=quantity,
        parse_dockerfile=parse_dockerfile,
    )
