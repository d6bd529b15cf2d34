"""Operations artefacts against the code: alert rules, Grafana dashboard, replicas, disruption budgets, autoscaling.

Neither Prometheus nor a cluster runs here, so the files are parsed and cross-checked: every metric an alert or a
panel uses is one the services export (``smartpost_shared.metrics.METRIC_NAMES``, each name written in the code),
every service runs at least two replicas behind a PodDisruptionBudget, and splitter and assignment scale on the
consumer lag of the group they really consume with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import yaml

from smartpost_shared.metrics import METRIC_NAMES
from smartpost_shared.settings import KafkaSettings, LeaseSettings
from smartpost_shared.topics import ALL_TOPICS, SERVICES

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "smartpost-operations.json"
METRIC = re.compile(r"\bsmartpost_[a-z0-9_]+\b")
SUFFIXES = ("_bucket", "_count", "_sum")
SCALED_ON_LAG = ("splitter", "assignment")


def _source_text() -> str:
    files = [*(REPO / "shared" / "src").rglob("*.py"), *(REPO / "services").glob("*/src/**/*.py")]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def _exported(name: str) -> str | None:
    """The exported family a series name belongs to, or None when the services export no such series."""
    for candidate in (name, *(name.removesuffix(s) for s in SUFFIXES if name.endswith(s))):
        if candidate in METRIC_NAMES:
            return candidate
    return None


def _code_name(family: str) -> str:
    """The name as written in the code: prometheus_client adds ``_total`` to counters itself."""
    return family.removesuffix("_total")


def _balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    for char in expr:
        if char == '"':
            in_string = not in_string
        if in_string:
            continue
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_string


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}
    found = []
    for group in doc["groups"]:
        assert group["name"].startswith("smartpost.")
        found += group["rules"]
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def source() -> str:
    return _source_text()


def test_every_listed_metric_is_written_in_the_code(source):
    missing = [name for name in sorted(METRIC_NAMES) if f'"{_code_name(name)}"' not in source]
    assert missing == []


def test_alert_rules_are_well_formed(rules):
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert _balanced(rule["expr"]), f"{rule['alert']}: unbalanced brackets or quotes"
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_alert_rules_cover_what_pages_someone(rules):
    paged = " ".join(r["expr"] for r in rules if r["labels"]["severity"] == "page")
    for needed in (
        "smartpost_consumer_lag",  # lag growing
        "smartpost_outbox_oldest_age_seconds",  # outbox stuck
        "smartpost_letters_oldest_waiting_seconds",  # letters stuck in splitting/assigning
        "smartpost_letters_stuck",  # letters waiting for another service past the stuck threshold (#15)
        "smartpost_dead_lettered_total",  # DLQ growing fast
        "smartpost_mails_deferred",  # SMTP failing
        "smartpost_mailpieces_submit_retrying",  # provider failing
    ):
        assert needed in paged, needed
    assert any("smartpost_dead_lettered_total" in r["expr"] and r["labels"]["severity"] == "ticket" for r in rules)


def test_alert_rules_use_only_exported_metrics(rules):
    unknown = sorted({m for r in rules for m in METRIC.findall(r["expr"]) if _exported(m) is None})
    assert unknown == []


def test_dashboard_panels_use_only_exported_metrics_and_cover_the_issue(dashboard):
    assert dashboard["uid"] == "smartpost-operations"
    assert any(v["type"] == "datasource" for v in dashboard["templating"]["list"])
    exprs = []
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        pos = panel["gridPos"]
        area = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not area & cells, f"panel {panel['title']} overlaps another"
        cells |= area
        for target in panel["targets"]:
            assert _balanced(target["expr"]), panel["title"]
            exprs.append(target["expr"])
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert sorted(m for m in used if _exported(m) is None) == []
    families = {_exported(m) for m in used}
    for wanted in (
        "smartpost_consumer_lag",
        "smartpost_outbox_backlog",
        "smartpost_dead_lettered_total",
        "smartpost_letters",
        "smartpost_letters_oldest_waiting_seconds",
        "smartpost_letters_stuck",
        "smartpost_split_pages_total",
        "smartpost_split_seconds",
        "smartpost_assignment_parts",
        "smartpost_mails",
        "smartpost_mailpieces",
        "smartpost_http_request_duration_seconds",
    ):
        assert wanted in families, wanted


def test_the_checks_catch_an_unknown_metric():
    assert _exported("smartpost_consumer_lag") == "smartpost_consumer_lag"
    assert _exported("smartpost_http_request_duration_seconds_bucket") == "smartpost_http_request_duration_seconds"
    assert _exported("smartpost_consumer_lagg") is None
    assert not _balanced("sum(rate(x[5m])")


# ------------------------------------------------------------------------------------------------ Kubernetes


def _docs(kit, kind: str) -> dict[str, dict]:
    return {d.name: d.doc for d in kit.load_k8s_docs() if d.kind == kind}


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_runs_two_replicas_behind_a_disruption_budget(kit, service):
    deployment = _docs(kit, "Deployment")[service]
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    budget = _docs(kit, "PodDisruptionBudget")[service]
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert 1 <= budget["spec"]["minAvailable"] < replicas
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("service", SERVICES)
def test_pods_are_scraped_and_shut_down_within_the_grace_period(kit, service):
    deployment = _docs(kit, "Deployment")[service]
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    app_py = (REPO / "services" / service / "src" / kit.package_of(service) / "app.py").read_text(encoding="utf-8")
    assert "install_metrics(" in app_py
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = template["spec"]["terminationGracePeriodSeconds"]
    # After the preStop pause the process stops consuming, lets its lease work finish its step (bounded by the
    # lease TTL) and commits: all of that must fit before the kubelet sends SIGKILL.
    assert grace >= pre_stop + LeaseSettings().ttl_seconds + 10


def _consumer_groups(service: str) -> dict[str, str]:
    """Topic -> consumer group as the service's code subscribes (read from the live subscriptions, not a copy)."""
    import importlib

    from smartpost_shared.messaging import make_broker

    kafka = KafkaSettings()
    broker = make_broker(kafka, service=service)
    if service == "splitter":
        consumers = importlib.import_module("smartpost_splitter.consumers")
        settings = importlib.import_module("smartpost_splitter.settings").Settings()
        consumers.register_consumers(broker, MagicMock(), settings)
    else:
        consumers = importlib.import_module("smartpost_assignment.consumers")
        consumers.register_consumers(broker, MagicMock(), MagicMock(), kafka)
    groups: dict[str, str] = {}
    for sub in broker.subscribers:
        for topic in getattr(sub, "topics", []):
            groups[str(getattr(topic, "name", topic))] = str(sub.group_id)
    return groups


@pytest.mark.parametrize("service", SCALED_ON_LAG)
def test_splitter_and_assignment_scale_on_their_consumer_lag(kit, service):
    scaled = _docs(kit, "ScaledObject")[service]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    deployment = _docs(kit, "Deployment")[service]
    assert spec["minReplicaCount"] >= 2
    assert spec["minReplicaCount"] <= deployment["spec"]["replicas"] <= spec["maxReplicaCount"]
    consumed = {t.name: t for t in ALL_TOPICS if service in t.consumers}
    assert consumed
    # More consumers in a group than partitions would idle.
    assert spec["maxReplicaCount"] <= min(t.partitions for t in consumed.values())
    kafka_triggers = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
    # One trigger per consumed topic, with the group the code really consumes it with.
    assert sorted(m["topic"] for m in kafka_triggers) == sorted(consumed)
    groups = _consumer_groups(service)
    assert sorted(groups) == sorted(consumed)
    config = _docs(kit, "ConfigMap")["smartpost-common"]["data"]
    for meta in kafka_triggers:
        assert meta["consumerGroup"] == groups[meta["topic"]] == f"{KafkaSettings().group_prefix}-{service}"
        assert meta["bootstrapServers"] == config["SMARTPOST_KAFKA_BOOTSTRAP_SERVERS"]
        assert int(meta["lagThreshold"]) >= 1
        # A new group starts at the beginning (auto_offset_reset="earliest" in smartpost_shared.messaging).
        assert meta["offsetResetPolicy"] == "earliest"
        assert meta["allowIdleConsumers"] == "false"
    assert any(t["type"] == "cpu" for t in spec["triggers"])


def test_the_keda_schema_catches_mistakes(kit):
    import jsonschema

    scaled = _docs(kit, "ScaledObject")["splitter"]
    validator = jsonschema.Draft202012Validator(kit.k8s_schema_for("ScaledObject"))
    assert not list(validator.iter_errors(scaled))
    broken = json.loads(json.dumps(scaled))
    del broken["spec"]["triggers"][0]["metadata"]["consumerGroup"]
    assert list(validator.iter_errors(broken)), "a Kafka trigger without consumerGroup must be rejected"
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["maxReplicas"] = 4  # the HPA's spelling, not KEDA's
    assert list(validator.iter_errors(broken)), "an unknown field must be rejected"
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5
    assert list(validator.iter_errors(broken)), "trigger metadata values are strings"


def test_only_the_lag_scaled_services_have_autoscalers(kit):
    assert sorted(_docs(kit, "ScaledObject")) == sorted(SCALED_ON_LAG)
    # KEDA owns the HorizontalPodAutoscaler; a second one on the same Deployment would fight it.
    assert _docs(kit, "HorizontalPodAutoscaler") == {}
