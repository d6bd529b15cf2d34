"""Broker authentication and ACLs in the production configs, checked against the topic registry.

The ACL script is run for real (with stand-ins for ``kafka-configs.sh``/``kafka-acls.sh`` that record their
arguments); what it grants is compared with expectations computed here straight from ``smartpost_shared.topics``,
not from the generator, so a generator bug that hands a service a topic it does not consume fails.
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from smartpost_shared import kafka_acls
from smartpost_shared.topics import ALL_TOPICS, SERVICES

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "bootstrap-acls.sh"
USERS = (*SERVICES, "erp-integration")


def _expected(user: str) -> dict[str, set[str]]:
    """What ``user`` may do, from the registry: {"Read": topics, "Write": topics, "Describe": topics, "Group": ...}."""
    consumed = {t.name for t in ALL_TOPICS if user in t.consumers}
    produced = {t.name for t in ALL_TOPICS if t.producer == user}
    if user == "assignment":
        produced.add("masterdata.events")  # the importer publishes master data (signed by assignment)
    read = set(consumed)
    write = produced | {f"{name}.dlq" for name in consumed}
    if user == "gateway":  # dead-letter re-drive for admin staff
        read |= {t.dead_letter for t in ALL_TOPICS}
        write |= {t.name for t in ALL_TOPICS} | {t.dead_letter for t in ALL_TOPICS}
    groups = {f"smartpost-{user}"} if consumed else set()
    return {"Read": read, "Write": write, "Describe": read | write, "Group": groups}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[dict[str, str], dict[str, dict[str, set[str]]]]:
    """Run the generated script against recording stand-ins: (user -> password, user -> granted operations)."""
    root = tmp_path_factory.mktemp("kafka-bin")
    log = root / "calls.log"
    for tool in ("kafka-configs.sh", "kafka-acls.sh"):
        stub = root / tool
        stub.write_text(
            f'#!/bin/sh\nprintf "%s" "{tool}" >> "{log}"\nfor a in "$@"; do printf " %s" "$a" >> "{log}"; done\necho >> "{log}"\n'
        )
        stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "KAFKA_BIN": str(root), "KAFKA_BOOTSTRAP": "127.0.0.1:9094"}
    env |= {kafka_acls.password_variable(u): f"pw-{u}-0123456789abcdef" for u in USERS}
    subprocess.run(["sh", str(SCRIPT)], env=env, check=True, capture_output=True, timeout=30)
    passwords: dict[str, str] = {}
    grants: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for line in log.read_text().splitlines():
        tool, *args = line.split(" ")
        if tool == "kafka-configs.sh":
            name = args[args.index("--entity-name") + 1]
            config = args[args.index("--add-config") + 1]
            assert config.startswith("SCRAM-SHA-512=["), config
            passwords[name] = config.split("password=", 1)[1].rstrip("]")
        elif "--list" in args:
            continue
        else:
            user = args[args.index("--allow-principal") + 1].removeprefix("User:")
            operation = args[args.index("--operation") + 1]
            if "--group" in args:
                assert args[args.index("--resource-pattern-type") + 1] == "prefixed"
                grants[user]["Group"].add(args[args.index("--group") + 1])
                assert operation == "Read"
            else:
                grants[user][operation].add(args[args.index("--topic") + 1])
    return passwords, grants


def test_generated_files_are_up_to_date():
    assert SCRIPT.read_text() == kafka_acls.script(), "run: python -m smartpost_shared.kafka_acls > " + str(SCRIPT)
    k8s = SCRIPT.parents[1] / "k8s" / "kafka-acls.yaml"
    assert k8s.read_text() == kafka_acls.k8s_configmap(), "run: python -m smartpost_shared.kafka_acls --k8s"
    assert yaml.safe_load(k8s.read_text())["data"]["bootstrap-acls.sh"] == SCRIPT.read_text()


def test_every_user_gets_a_scram_login_with_its_own_password(recorded):
    passwords, _ = recorded
    assert passwords == {u: f"pw-{u}-0123456789abcdef" for u in USERS}


@pytest.mark.parametrize("user", USERS)
def test_acls_cover_exactly_what_the_registry_names(recorded, user):
    _, grants = recorded
    expected = _expected(user)
    got = {op: set(grants[user].get(op, set())) for op in expected}
    assert got == expected, user
    assert set(grants[user]) <= set(expected), f"{user} has operations beyond Read/Write/Describe/group"


def test_no_service_may_read_a_topic_it_does_not_consume(recorded):
    _, grants = recorded
    for user in USERS:
        consumed = {t.name for t in ALL_TOPICS if user in t.consumers}
        foreign = {name for name in grants[user].get("Read", set()) if not name.endswith(".dlq")} - consumed
        assert not foreign, f"{user} may read {foreign}"
    assert grants["notifier"]["Write"] >= {"notifier.events"}
    assert "letters.events" not in grants["splitter"]["Write"], "only letters writes letters.events"


def test_the_script_refuses_to_run_without_a_password(tmp_path):
    env = {"PATH": os.environ["PATH"], "KAFKA_BIN": str(tmp_path), "KAFKA_BOOTSTRAP": "127.0.0.1:9094"}
    result = subprocess.run(["sh", str(SCRIPT)], check=False, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "no broker password for letters" in result.stderr


# --- docker-compose.yml -------------------------------------------------------------------------------------------


def test_compose_broker_accepts_only_scram_logins_on_the_network_and_enforces_acls(kit):
    compose = kit.load_compose()
    env = kit.compose_environment(compose["services"]["kafka"], kit.read_env_example())
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://")
        host = address.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            assert protocols[name].startswith("SASL_"), f"{listener} is reachable from the network without SASL"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "ScramLoginModule" in env["KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG"]


def test_compose_acl_job_runs_the_generated_script_with_every_password(kit):
    compose = kit.load_compose()
    job = compose["services"]["kafka-acls"]
    assert job["network_mode"] == "service:kafka"
    assert job["restart"] == "no"
    assert "./deploy/kafka/bootstrap-acls.sh:/opt/smartpost/bootstrap-acls.sh:ro" in job["volumes"]
    assert job["entrypoint"] == ["/bin/sh", "/opt/smartpost/bootstrap-acls.sh"]
    assert job["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    assert set(job["environment"]) == {"KAFKA_BOOTSTRAP"} | {kafka_acls.password_variable(u) for u in USERS}


@pytest.fixture(scope="module")
def compose(kit):
    return kit.load_compose()


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_logs_in_as_its_own_broker_user(kit, compose, service):
    example = kit.read_env_example()
    env = kit.compose_environment(compose["services"][service], example)
    assert env["SMARTPOST_KAFKA_SECURITY_PROTOCOL"] in {"SASL_PLAINTEXT", "SASL_SSL"}
    assert env["SMARTPOST_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["SMARTPOST_KAFKA_SASL_USERNAME"] == service
    raw = compose["services"][service]["environment"]["SMARTPOST_KAFKA_SASL_PASSWORD"]
    variable = kafka_acls.password_variable(service)
    assert raw.startswith("${" + variable + ":?"), f"{service} must use the password the ACL job sets for it"
    assert compose["services"]["kafka-acls"]["environment"][variable] == raw
    assert example[variable].startswith("change-me"), ".env.example must hold a placeholder"


# --- deploy/k8s ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s_docs(kit):
    return kit.load_k8s_docs()


def _k8s(docs, kind, name):
    found = [d.doc for d in docs if d.kind == kind and d.name == name]
    assert len(found) == 1, f"{kind} {name}"
    return found[0]


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_service_logs_in_as_its_own_broker_user(k8s_docs, service):
    common = _k8s(k8s_docs, "ConfigMap", "smartpost-common")["data"]
    assert common["SMARTPOST_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert common["SMARTPOST_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert _k8s(k8s_docs, "ConfigMap", f"smartpost-{service}")["data"]["SMARTPOST_KAFKA_SASL_USERNAME"] == service
    secret = _k8s(k8s_docs, "Secret", f"smartpost-{service}")["stringData"]
    assert secret["SMARTPOST_KAFKA_SASL_PASSWORD"].startswith("change-me")
    deployment = _k8s(k8s_docs, "Deployment", service)
    sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": f"smartpost-{service}"}} in sources
    assert {"secretRef": {"name": f"smartpost-{service}"}} in sources


def test_k8s_acl_job_runs_the_generated_script_with_each_services_password(kit, k8s_docs):
    job = _k8s(k8s_docs, "Job", "smartpost-kafka-acls")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"] if "valueFrom" in item}
    for service in SERVICES:
        ref = refs[kafka_acls.password_variable(service)]
        assert ref == {"name": f"smartpost-{service}", "key": "SMARTPOST_KAFKA_SASL_PASSWORD"}, service
    admin = _k8s(k8s_docs, "Secret", "smartpost-kafka-admin")["stringData"]
    assert kafka_acls.password_variable("erp-integration") in admin
    assert {"secretRef": {"name": "smartpost-kafka-admin"}} in container["envFrom"]
    assert pod["volumes"] == [{"name": "script", "configMap": {"name": "smartpost-kafka-acls"}}]
    script = "\n".join(container["args"])
    assert "sh /opt/smartpost/bootstrap-acls.sh" in script
    assert "ScramLoginModule" in script
    assert "kafka-acls.yaml" in (kit.K8S_DIR / "kustomization.yaml").read_text()
    topics = "\n".join(
        _k8s(k8s_docs, "Job", "smartpost-kafka-topics")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert "--command-config /tmp/admin.properties" in topics, "the topics Job must log in as the admin"
