"""docker-compose.yml against the code: services, settings, topics, buckets, databases, ports (no Docker needed)."""

from __future__ import annotations

import copy
import json
import re
import secrets
from urllib.parse import urlsplit

import jsonschema
import pytest

from smartpost_shared.settings import InsecureSettingsError
from smartpost_shared.topics import SERVICES

INFRASTRUCTURE = {"kafka", "kafka-init", "kafka-acls", "minio", "minio-init", "postgres"}
ONE_SHOT = {"kafka-init", "kafka-acls", "minio-init"}


@pytest.fixture(scope="module")
def compose(kit):
    return kit.load_compose()


@pytest.fixture(scope="module")
def env_example(kit):
    return kit.read_env_example()


@pytest.fixture(scope="module")
def ports(kit):
    return kit.architecture_ports(SERVICES)


def _validator(kit):
    schema = json.loads((kit.HERE / "compose-spec.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_is_valid_against_the_compose_spec(kit, compose):
    errors = [f"{e.json_path}: {e.message}" for e in _validator(kit).iter_errors(compose)]
    assert errors == []


def test_compose_spec_validation_catches_mistakes(kit, compose):
    """The vendored schema really is strict: a misspelt key or a wrong type is rejected."""
    broken = copy.deepcopy(compose)
    broken["services"]["letters"]["healthcheck"]["intervall"] = "10s"
    assert list(_validator(kit).iter_errors(broken))
    broken = copy.deepcopy(compose)
    broken["services"]["letters"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert list(_validator(kit).iter_errors(broken))


def test_architecture_lists_a_port_for_every_service(ports):
    assert set(ports) == set(SERVICES), "docs/architecture.md must give every service of topics.SERVICES a port"


def test_compose_has_exactly_the_registered_services_and_the_infrastructure(compose):
    names = set(compose["services"])
    assert names - INFRASTRUCTURE == set(SERVICES), "compose services differ from smartpost_shared.topics.SERVICES"
    assert names >= INFRASTRUCTURE
    assert not any("zookeeper" in name for name in names), "Kafka runs in KRaft mode, without ZooKeeper"


def test_kafka_runs_in_kraft_mode_and_matches_what_services_use(kit, compose, env_example):
    kafka = compose["services"]["kafka"]
    env = kit.compose_environment(kafka, env_example)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:9093", "the controller listens on loopback only"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics must come from kafka-init, never by accident"
    advertised = {
        urlsplit(url.replace("CLIENT://", "sasl://")).netloc
        for url in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if url.startswith("CLIENT://")
    }
    for service in SERVICES:
        service_env = kit.compose_environment(compose["services"][service], env_example)
        assert service_env.get("SMARTPOST_KAFKA_BOOTSTRAP_SERVERS") in advertised, service
    assert "healthcheck" in kafka


def test_kafka_init_creates_every_topic_and_dead_letter_topic_with_its_partitions(kit, compose):
    init = compose["services"]["kafka-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert kit.created_topics(script) == kit.expected_topics()
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert init.get("restart") == "no"
    assert init["network_mode"] == "service:kafka", "topics are created over the broker's loopback listener"


def test_minio_init_creates_the_bucket_the_services_use(kit, compose, env_example):
    init = compose["services"]["minio-init"]
    env = kit.compose_environment(init, env_example)
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert re.search(r'mc mb --ignore-existing "smartpost/\$\$SMARTPOST_S3_BUCKET"', script)
    assert re.search(r'mc admin user add smartpost "\$\$SMARTPOST_S3_ACCESS_KEY" "\$\$SMARTPOST_S3_SECRET_KEY"', script)
    for service in SERVICES:
        service_env = kit.compose_environment(compose["services"][service], env_example)
        assert service_env["SMARTPOST_S3_BUCKET"] == env["SMARTPOST_S3_BUCKET"], service
        assert service_env["SMARTPOST_S3_ACCESS_KEY"] == env["SMARTPOST_S3_ACCESS_KEY"], service
        assert service_env["SMARTPOST_S3_ENDPOINT"] == "minio:9000", service
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}


def test_every_database_url_names_a_database_the_postgres_init_creates(kit, compose, env_example):
    created = set(re.findall(r"CREATE DATABASE (\w+);", kit.POSTGRES_INIT.read_text(encoding="utf-8")))
    used = set()
    for service in SERVICES:
        env = kit.compose_environment(compose["services"][service], env_example)
        url = env.get(f"{kit.env_prefix_of(service)}DATABASE_URL")
        assert url, f"{service}: no database URL (containers must not fall back to SQLite in the image)"
        parts = urlsplit(url)
        assert parts.scheme == "postgresql+psycopg", f"{service}: {parts.scheme}"
        assert parts.hostname == "postgres", service
        assert parts.username == env_example["POSTGRES_USER"], service
        assert parts.password == env_example["POSTGRES_PASSWORD"], service
        database = parts.path.lstrip("/")
        assert database in created, f"{service}: database {database} is not created by {kit.POSTGRES_INIT.name}"
        used.add(database)
    assert created == used, "postgres-init.sql creates databases no service uses"
    mounts = compose["services"]["postgres"]["volumes"]
    assert any(m.startswith("./deploy/compose/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts)


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_built_from_its_dockerfile_and_named_consistently(kit, compose, service):
    spec = compose["services"][service]
    assert spec["build"] == {"context": ".", "dockerfile": f"services/{service}/Dockerfile"}
    assert (kit.REPO / spec["build"]["dockerfile"]).is_file()
    assert spec["image"] == f"smartpost/{service}:${{SMARTPOST_VERSION:-latest}}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_waits_for_its_dependencies(compose, service):
    depends_on = compose["services"][service]["depends_on"]
    assert isinstance(depends_on, dict), f"{service}: depends_on needs conditions, not a bare list"
    assert depends_on["kafka-init"] == {"condition": "service_completed_successfully"}
    assert depends_on["kafka-acls"] == {"condition": "service_completed_successfully"}
    assert depends_on["minio-init"] == {"condition": "service_completed_successfully"}
    assert depends_on["postgres"] == {"condition": "service_healthy"}
    for target, rule in depends_on.items():
        assert target in compose["services"], f"{service} depends on unknown {target}"
        expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
        assert rule == {"condition": expected}, f"{service} -> {target}"
        if expected == "service_healthy":
            assert "healthcheck" in compose["services"][target], f"{target} has no healthcheck to wait for"


@pytest.mark.parametrize("service", SERVICES)
def test_service_healthcheck_probes_readyz_on_its_port(compose, ports, service):
    spec = compose["services"][service]
    test = spec["healthcheck"]["test"]
    assert test[0] == "CMD", f"{service}: exec form (the slim image has no curl)"
    command = " ".join(test[1:])
    assert f"http://127.0.0.1:{ports[service]}/readyz" in command, f"{service}: {command}"
    assert "urllib.request.urlopen" in command
    assert spec.get("restart") == "unless-stopped"


@pytest.mark.parametrize("service", SERVICES)
def test_service_env_points_at_kafka_minio_postgres_and_its_port(kit, compose, env_example, ports, service):
    env = kit.compose_environment(compose["services"][service], env_example)
    prefix = kit.env_prefix_of(service)
    assert env["SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["SMARTPOST_S3_ENDPOINT"] == "minio:9000"
    assert urlsplit(env[f"{prefix}DATABASE_URL"]).hostname == "postgres"
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert env[f"{prefix}HTTP_PORT"] == str(ports[service])


@pytest.mark.parametrize("service", SERVICES)
def test_service_env_matches_its_settings_class(kit, compose, env_example, service):
    """Every SMARTPOST_* variable is a field of the service's Settings, and every field that needs a value has one."""
    env = kit.compose_environment(compose["services"][service], env_example)
    assert kit.env_problems(service, env, f"docker-compose.yml {service}") == []


@pytest.mark.parametrize("service", SERVICES)
def test_service_settings_built_from_the_compose_env(kit, compose, env_example, ports, service, monkeypatch):
    """pydantic-settings really resolves the compose env to the values the stack needs."""
    env = kit.compose_environment(compose["services"][service], env_example)
    if service != "gateway":  # the gateway holds no storage secret
        with pytest.raises(InsecureSettingsError, match="placeholder"):
            kit.instantiate_settings(service, env, monkeypatch)
    # An operator replaces the example's placeholders with real secrets; only then does a service start.
    env = {k: v.replace("change-me", secrets.token_urlsafe(18)) for k, v in env.items()}
    settings = kit.instantiate_settings(service, env, monkeypatch)
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == ports[service]
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.storage.endpoint == "minio:9000"
    assert settings.storage.access_key == env_example["SMARTPOST_S3_ACCESS_KEY"]
    assert settings.storage.secret_key.get_secret_value() == env["SMARTPOST_S3_SECRET_KEY"]
    assert settings.storage.bucket == env_example["SMARTPOST_S3_BUCKET"]
    assert urlsplit(settings.database_url).hostname == "postgres"
    assert kit.loopback_in(settings) is None, f"{service}: a setting still points at loopback in the container"


def test_only_the_gateway_and_the_recipients_portal_are_published(compose):
    published = {name for name, spec in compose["services"].items() if spec.get("ports")}
    assert published == {"gateway", "portal-publisher", "minio"}, (
        "only the gateway (staff), portal-publisher (recipients' portal) and the MinIO console on loopback"
    )
    assert compose["services"]["gateway"]["ports"] == ["${SMARTPOST_GATEWAY_PUBLISH:-8100}:8100"]
    assert compose["services"]["portal-publisher"]["ports"] == ["${SMARTPOST_PORTAL_PUBLISH:-8104}:8104"]
    # The e-mail links lead to the published portal.
    notifier_env = compose["services"]["notifier"]["environment"]
    assert notifier_env["SMARTPOST_NOTIFIER_PORTAL_BASE_URL"].endswith("}/kundenportal")
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["minio"]["ports"])


def test_every_compose_variable_is_documented_in_env_example_and_vice_versa(kit, env_example):
    text = kit.COMPOSE_FILE.read_text(encoding="utf-8")
    variables = kit.compose_variables(text)
    used = {name for name, _ in variables}
    undocumented = sorted({name for name, op in variables if op not in {":-", "-"}} - set(env_example))
    assert undocumented == [], "variables without a default must be in .env.example"
    assert sorted(set(env_example) - used) == [], ".env.example defines variables docker-compose.yml never uses"
    # With .env.example as .env, every interpolation resolves (required ones included).
    kit.interpolate(text, env_example)


def test_env_example_holds_no_real_secrets(env_example):
    for name, value in env_example.items():
        if any(word in name for word in ("PASSWORD", "SECRET")):
            assert value.startswith("change-me"), f"{name} must be a change-me placeholder in .env.example"
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD"):
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", env_example[name]), f"{name}: keep it URL-safe (it goes into URLs)"


def test_interpolation_follows_compose_rules(kit):
    env = {"SET": "x", "EMPTY": ""}
    assert kit.interpolate("$${SET}-${SET}-$SET", env) == "${SET}-x-x"
    assert kit.interpolate("${EMPTY:-d}|${EMPTY-d}|${UNSET-d}", env) == "d||d"
    with pytest.raises(KeyError, match="MISSING"):
        kit.interpolate("${MISSING:?needed}", env)
    with pytest.raises(KeyError, match="UNSET"):
        kit.interpolate("${UNSET}", env)


def test_named_volumes_are_declared_and_used(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for spec in compose["services"].values():
        for mount in spec.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source and not source.startswith((".", "/")):
                used.add(source)
    assert used == declared


@pytest.mark.parametrize("service", SERVICES)
def test_service_keeps_its_data_dir_on_its_own_volume(kit, compose, env_example, service):
    spec = compose["services"][service]
    env = kit.compose_environment(spec, env_example)
    data_dir = env[f"{kit.env_prefix_of(service)}DATA_DIR"]
    assert f"{service}-data:{data_dir}" in spec["volumes"], f"{service}: data dir is not on a volume"
    assert spec.get("read_only") is True, f"{service}: read-only root filesystem"
    assert "/tmp" in spec.get("tmpfs", [])


def test_splitter_works_on_disk_not_in_the_ram_backed_tmp(kit, compose, env_example):
    """/tmp is a tmpfs (RAM) in compose: whole PDFs being split belong on the data volume, an existing directory."""
    env = kit.compose_environment(compose["services"]["splitter"], env_example)
    assert env["SMARTPOST_SPLITTER_WORK_DIR"] == env["SMARTPOST_SPLITTER_DATA_DIR"]
