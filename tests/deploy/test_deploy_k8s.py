"""deploy/k8s/*.yaml against the code: Deployments, Services, probes, resources, env, setup Jobs (no cluster needed)."""

from __future__ import annotations

import copy
import re
import secrets

import jsonschema
import pytest
import yaml

from smartpost_shared.settings import InsecureSettingsError
from smartpost_shared.topics import SERVICES

NAMESPACE = "smartpost"
ALLOWED_KINDS = {
    "NetworkPolicy",
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "Job",
    "Kustomization",
    "PodDisruptionBudget",
    "ScaledObject",
}
EXTERNAL = ("kafka", "minio", "postgres", "zookeeper")
# Kubernetes-only extras of the image environment (never read by Settings).
JOB_NAMES = {"smartpost-kafka-topics", "smartpost-kafka-acls", "smartpost-minio-buckets"}


@pytest.fixture(scope="module")
def docs(kit):
    return kit.load_k8s_docs()


@pytest.fixture(scope="module")
def ports(kit):
    return kit.architecture_ports(SERVICES)


def _one(docs, kind, name):
    found = [d for d in docs if d.kind == kind and d.name == name]
    assert len(found) == 1, f"expected exactly one {kind} {name} in deploy/k8s, found {len(found)}"
    return found[0]


def _container(deployment_or_job):
    containers = deployment_or_job.doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment_or_job.where()}: one container per pod"
    return containers[0]


def _resolved_env(docs, container, where) -> dict[str, str]:
    """The container's environment: envFrom ConfigMaps/Secrets (which must exist) plus inline ``env``."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            kind, name = "ConfigMap", source["configMapRef"]["name"]
        else:
            kind, name = "Secret", source["secretRef"]["name"]
        defined = [d for d in docs if d.kind == kind and d.name == name]
        assert defined, f"{where}: envFrom {kind} {name} is not defined in deploy/k8s"
        data = defined[0].doc.get("data") or defined[0].doc.get("stringData") or {}
        for key, value in data.items():
            assert key not in env, f"{where}: {key} comes from two sources"
            env[key] = str(value)
    for item in container.get("env", []):
        assert "value" in item, f"{where}: inline env {item['name']} must be a literal (use envFrom for secrets)"
        env[item["name"]] = str(item["value"])
    return env


def test_every_document_is_valid_against_the_kubernetes_schema(kit, docs):
    errors = []
    for document in docs:
        if document.kind == "Kustomization":
            continue
        validator = jsonschema.Draft202012Validator(kit.k8s_schema_for(document.kind))
        errors += [f"{document.where()}: {e.json_path}: {e.message}" for e in validator.iter_errors(document.doc)]
    assert errors == []


def test_kubernetes_schema_validation_catches_mistakes(kit, docs):
    deployment = copy.deepcopy(_one(docs, "Deployment", "letters").doc)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpget"] = {"path": "/readyz"}
    validator = jsonschema.Draft202012Validator(kit.k8s_schema_for("Deployment"))
    assert list(validator.iter_errors(deployment)), "an unknown field must be rejected (strict schema)"
    deployment = copy.deepcopy(_one(docs, "Deployment", "letters").doc)
    deployment["spec"]["replicas"] = "two"
    assert list(validator.iter_errors(deployment)), "a wrong type must be rejected"


def test_only_known_kinds_in_one_namespace(docs):
    for document in docs:
        assert document.kind in ALLOWED_KINDS, f"{document.where()}: unexpected kind"
        if document.kind not in {"Namespace", "Kustomization"}:
            assert document.doc["metadata"].get("namespace") == NAMESPACE, document.where()
    _one(docs, "Namespace", NAMESPACE)


def test_kafka_minio_postgres_are_external(docs):
    """No workload runs the infrastructure: the cluster's own Kafka, MinIO and PostgreSQL are used."""
    for document in docs:
        if document.kind not in {"Deployment", "StatefulSet", "DaemonSet", "Service"}:
            continue
        assert not any(word in document.name for word in EXTERNAL), f"{document.where()}: infrastructure is external"
        if document.kind == "Deployment":
            image = _container(document)["image"]
            assert image.startswith("smartpost/"), f"{document.where()}: {image}"


def test_workloads_are_exactly_the_registered_services(docs):
    deployments = {d.name for d in docs if d.kind == "Deployment"}
    services = {d.name for d in docs if d.kind == "Service"}
    assert deployments == set(SERVICES)
    assert services == set(SERVICES)


def test_kustomization_lists_every_manifest_but_the_secret_example(kit, docs):
    (kustomization,) = [d for d in docs if d.kind == "Kustomization"]
    resources = kustomization.doc["resources"]
    files = {p.name for p in kit.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert sorted(resources) == sorted(files)
    assert kustomization.doc["namespace"] == NAMESPACE
    assert not any(d.kind == "Secret" for d in docs if d.file.name != "secrets.example.yaml"), (
        "Secrets live only in secrets.example.yaml (copied and filled in per installation)"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_and_service_fit_together(docs, ports, service):
    deployment = _one(docs, "Deployment", service)
    spec = deployment.doc["spec"]
    selector = spec["selector"]["matchLabels"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items(), f"{service}: selector does not match the pod labels"
    container = _container(deployment)
    assert container["name"] == service
    assert container["ports"] == [{"name": "http", "containerPort": ports[service], "protocol": "TCP"}]
    svc = _one(docs, "Service", service).doc["spec"]
    assert svc["selector"].items() <= pod_labels.items(), f"{service}: Service selects no pod of the Deployment"
    assert svc["ports"] == [{"name": "http", "port": ports[service], "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_readyz_and_healthz(docs, service):
    container = _container(_one(docs, "Deployment", service))
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Liveness must be more patient than readiness: a flapping dependency makes a pod unready, not restarted.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= (
        readiness["periodSeconds"] * readiness["failureThreshold"]
    )


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_has_resource_requests_and_limits(kit, docs, service):
    resources = _container(_one(docs, "Deployment", service))["resources"]
    for resource in ("cpu", "memory"):
        request = kit.quantity(resources["requests"][resource])
        limit = kit.quantity(resources["limits"][resource])
        assert 0 < request <= limit, f"{service}: {resource} request {request} > limit {limit}"
    assert kit.quantity(resources["limits"]["memory"]) >= 256 * 2**20, f"{service}: less than 256Mi will OOM"


def test_quantities_parse(kit):
    assert kit.quantity("500m") == 0.5
    assert kit.quantity("2") == 2
    assert kit.quantity("512Mi") == 512 * 2**20
    with pytest.raises(AssertionError):
        kit.quantity("12 GB")


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_the_image_unprivileged_as_the_dockerfile_user(kit, docs, compose_image_repos, service):
    deployment = _one(docs, "Deployment", service)
    container = _container(deployment)
    pod = deployment.doc["spec"]["template"]["spec"]
    repo, _, tag = container["image"].partition(":")
    assert repo == compose_image_repos[service], f"{service}: image differs from docker-compose.yml"
    assert tag == deployment.doc["metadata"]["labels"]["app.kubernetes.io/version"], f"{service}: version label"
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = kit.parse_dockerfile(kit.REPO / "services" / service / "Dockerfile")
    user = [i.argument for i in dockerfile if i.keyword == "USER"][-1]
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0], f"{service}: uid differs from Dockerfile"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/smartpost/data"} <= mounts, f"{service}: writable /tmp and data dir needed"


def test_all_services_use_one_release_tag(docs):
    tags = {_container(d)["image"].partition(":")[2] for d in docs if d.kind == "Deployment"}
    assert len(tags) == 1, f"images of one release differ in tag: {tags}"
    assert "latest" not in tags


@pytest.fixture(scope="module")
def compose_image_repos(kit):
    compose = kit.load_compose()
    return {name: compose["services"][name]["image"].partition(":")[0] for name in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_env_comes_from_configmaps_and_secrets(docs, service):
    container = _container(_one(docs, "Deployment", service))
    refs = container["envFrom"]
    assert {"configMapRef": {"name": "smartpost-common"}} in refs
    assert {"configMapRef": {"name": f"smartpost-{service}"}} in refs
    assert {"secretRef": {"name": "smartpost-s3"}} in refs
    assert {"secretRef": {"name": f"smartpost-{service}"}} in refs


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_env_matches_its_settings_class(kit, docs, service):
    deployment = _one(docs, "Deployment", service)
    env = _resolved_env(docs, _container(deployment), deployment.where())
    assert kit.env_problems(service, env, deployment.where()) == []


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_env_builds_settings_for_the_cluster(kit, docs, ports, service, monkeypatch):
    deployment = _one(docs, "Deployment", service)
    env = _resolved_env(docs, _container(deployment), deployment.where())
    # The example Secrets hold placeholders that no service accepts; an operator puts real secrets there.
    with pytest.raises(InsecureSettingsError, match="placeholder"):
        kit.instantiate_settings(service, env, monkeypatch)
    env = {k: v.replace("change-me", secrets.token_urlsafe(18)) for k, v in env.items()}
    settings = kit.instantiate_settings(service, env, monkeypatch)
    common = _one(docs, "ConfigMap", "smartpost-common").doc["data"]
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == ports[service]
    assert settings.kafka.bootstrap_servers == common["SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.storage.endpoint == common["SMARTPOST_S3_ENDPOINT"]
    assert settings.storage.bucket == common["SMARTPOST_S3_BUCKET"]
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert kit.loopback_in(settings) is None, f"{service}: a setting still points at loopback inside the pod"


def test_topics_job_creates_every_topic_and_dead_letter_topic(kit, docs):
    job = _one(docs, "Job", "smartpost-kafka-topics")
    container = _container(job)
    script = "\n".join(container["args"])
    assert kit.created_topics(script) == kit.expected_topics()
    assert '--bootstrap-server "$SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"' in script
    env = _resolved_env(docs, container, job.where())
    assert "SMARTPOST_KAFKA_BOOTSTRAP_SERVERS" in env
    assert int(env["KAFKA_REPLICATION_FACTOR"]) >= 1


def test_buckets_job_creates_the_bucket_and_the_service_user(docs):
    job = _one(docs, "Job", "smartpost-minio-buckets")
    container = _container(job)
    script = "\n".join(container["args"])
    env = _resolved_env(docs, container, job.where())
    for name in ("SMARTPOST_S3_ENDPOINT", "SMARTPOST_S3_BUCKET", "SMARTPOST_S3_ACCESS_KEY", "SMARTPOST_S3_SECRET_KEY",
                 "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):  # fmt: skip
        assert name in env, f"buckets Job lacks {name}"
        assert f"${name}" in script, f"buckets Job does not use {name}"
    assert 'mc mb --ignore-existing "smartpost/$SMARTPOST_S3_BUCKET"' in script


@pytest.mark.parametrize("name", sorted(JOB_NAMES))
def test_jobs_are_bounded_and_unprivileged(kit, docs, name):
    job = _one(docs, "Job", name)
    spec = job.doc["spec"]
    assert spec["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert spec["backoffLimit"] >= 1
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    resources = _container(job)["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()


def test_secret_example_holds_only_placeholders(docs):
    for document in docs:
        if document.kind != "Secret":
            continue
        for key, value in document.doc["stringData"].items():
            if any(word in key for word in ("PASSWORD", "SECRET")) or key.endswith("DATABASE_URL"):
                assert "change-me" in value, f"{document.where()}: {key} must be a placeholder"


def test_readme_documents_the_external_endpoints_and_secrets(kit, docs):
    readme = (kit.REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    common = _one(docs, "ConfigMap", "smartpost-common").doc["data"]
    for key in ("SMARTPOST_KAFKA_BOOTSTRAP_SERVERS", "SMARTPOST_S3_ENDPOINT"):
        assert key in readme, f"deploy/README.md must document {key}"
        assert common[key] in readme, f"deploy/README.md must give the expected endpoint {common[key]}"
    for document in docs:
        if document.kind == "Secret":
            assert document.name in readme, f"deploy/README.md must explain the Secret {document.name}"
    assert "postgres.postgres.svc.cluster.local" in readme


def test_manifests_are_plain_yaml_without_templating(kit):
    for path in kit.K8S_DIR.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\{\{|\$\{", text), f"{path.name}: no templating (apply with kubectl/kustomize as is)"
        list(yaml.safe_load_all(text))


# --- NetworkPolicies: only the flows of the README's diagram ------------------------------------------------------

# The splitter answers split-strategy proposals at upload.
GATEWAY_CALLS = {"letters", "assignment", "portal-publisher", "print-dispatch", "notifier", "splitter"}
PUBLISHED = {"gateway", "portal-publisher", "print-dispatch"}  # staff UI, recipient portal, provider webhooks


def _policies(docs):
    return {d.name: d.doc for d in docs if d.kind == "NetworkPolicy"}


def _peers(rule):
    out = set()
    for peer in rule.get("from", rule.get("to", [])):
        if "podSelector" in peer:
            out.add(("pod", peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]))
        elif "namespaceSelector" in peer:
            out.add(("ns", peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]))
        else:
            out.add(("ip", peer["ipBlock"]["cidr"]))
    return out


def test_everything_is_denied_unless_a_policy_allows_it(docs):
    deny = _policies(docs)["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    labels = {
        d.doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for d in docs
        if d.kind in {"Deployment", "Job"}
    }
    selected = {
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for name, p in _policies(docs).items()
        if name != "default-deny"
    }
    assert labels == selected, "every pod has exactly the policy of its own name"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_is_reached_only_by_its_callers_on_its_own_port(docs, ports, service):
    spec = _policies(docs)[service]["spec"]
    callers = set()
    for rule in spec.get("ingress", []):
        assert rule.get("from"), f"{service}: an ingress rule without 'from' would admit everyone"
        assert [p["port"] for p in rule["ports"]] == [ports[service]]
        callers |= _peers(rule)
    expected = {("ns", "monitoring")}
    if service in GATEWAY_CALLS:
        expected.add(("pod", "gateway"))
    if service in PUBLISHED:
        expected.add(("ns", "ingress-nginx"))
    assert callers == expected


def test_the_gateway_may_call_exactly_the_services_it_is_configured_for(docs, ports):
    spec = _policies(docs)["gateway"]["spec"]
    config = _one(docs, "ConfigMap", "smartpost-gateway").doc["data"]
    configured = {
        (url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1]))
        for key, url in config.items()
        if key.endswith("_URL") and key.startswith("SMARTPOST_GATEWAY_")
    }
    allowed = {
        (name, rule["ports"][0]["port"]) for rule in spec["egress"] for kind, name in _peers(rule) if kind == "pod"
    }
    assert allowed == configured
    assert {name for name, _ in allowed} == GATEWAY_CALLS
    assert all(ports[name] == port for name, port in allowed)


def test_only_mail_and_print_leave_the_cluster(docs):
    for name, policy in _policies(docs).items():
        for rule in policy["spec"].get("egress", []):
            if any(kind == "ip" for kind, _ in _peers(rule)):
                wanted = {"notifier": {25, 465, 587}, "portal-publisher": {25, 465, 587}, "print-dispatch": {443}}
                assert {p["port"] for p in rule["ports"]} == wanted[name], name
