"""deploy/k8s: every manifest against the real Kubernetes schemas (offline), then what the service needs.

Schemas come from `kubernetes-validate` (bundled, strict: unknown fields fail). The rest checks
the manifests against the code: settings names, ports, probe paths, one data dir per worker pod.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from cohorts.settings import Settings
from tests.unit.deploy.artifacts import DEPLOY, load_documents

K8S = DEPLOY / "k8s"
#: Oldest Kubernetes these manifests promise to work on, and the newest whose schemas are bundled.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def _objects() -> list[dict[str, Any]]:
    """Parsed once; tests read them and never change them."""
    return [doc for path in MANIFESTS for doc in load_documents(path)]


def _one(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def _config() -> dict[str, str]:
    return _one("ConfigMap", "cohorts-config")["data"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly_against_kubernetes_schemas(path: Path, version: str) -> None:
    for doc in load_documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    """Scenario: `replica` instead of `replicas`: proves the validator is strict, not a no-op."""
    worker = _one("StatefulSet", "cohorts-worker")
    broken = {**worker, "spec": {**worker["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_once() -> None:
    [kustomization] = load_documents(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    assert kustomization["namespace"] == "cohorts"
    assert {o["metadata"].get("namespace") for o in _objects() if o["kind"] != "Namespace"} == {"cohorts"}


def test_configmap_sets_only_real_settings_and_points_at_the_bundled_kafka() -> None:
    fields = {f"COHORTS_{name.upper()}" for name in Settings.model_fields}
    config = _config()
    assert set(config) <= fields
    Settings(**{k.removeprefix("COHORTS_").lower(): v for k, v in config.items()})
    host, port = config["COHORTS_KAFKA_BOOTSTRAP"].split(":")
    kafka = _one("Service", host)
    assert int(port) in [p["port"] for p in kafka["spec"]["ports"]]
    assert config["COHORTS_API_HOST"] == "0.0.0.0" and config["COHORTS_WORKER_WEB_HOST"] == "0.0.0.0"


def test_worker_is_a_statefulset_with_one_data_dir_per_pod() -> None:
    """Scenario: each worker pod gets its own PVC from volumeClaimTemplates, mounted at COHORTS_DATA_DIR."""
    worker = _one("StatefulSet", "cohorts-worker")
    [claim] = worker["spec"]["volumeClaimTemplates"]
    container = _container(worker)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == _config()["COHORTS_DATA_DIR"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "volumes" not in worker["spec"]["template"]["spec"]  # no shared volume that two pods could open
    assert container["args"] == ["worker"]
    assert 1 <= worker["spec"]["replicas"] <= int(_config()["COHORTS_PARTITIONS"])
    assert worker["spec"]["serviceName"] == "cohorts-worker"


def test_worker_probes_and_scrape_annotations_use_its_web_port() -> None:
    worker = _one("StatefulSet", "cohorts-worker")
    container = _container(worker)
    port = int(_config()["COHORTS_WORKER_WEB_PORT"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert named[container[probe]["httpGet"]["port"]] == port
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


def test_api_probes_hit_its_health_routes_on_the_api_port() -> None:
    from api.routers.health import router

    routes = {route.path for route in router.routes}
    api = _one("Deployment", "cohorts-api")
    container = _container(api)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/_ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_health"
    assert {"/_ready", "/_health"} <= routes
    assert named["http"] == int(_config()["COHORTS_API_PORT"])
    assert container["args"] == ["api"]


def test_api_keeps_its_data_dir_on_a_claim_and_never_runs_two_pods_on_it() -> None:
    """Scenario: RocksDB locks the data dir, so a rolling update (old and new pod at once) would fail."""
    api = _one("Deployment", "cohorts-api")
    assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"]["type"] == "Recreate"
    [volume] = api["spec"]["template"]["spec"]["volumes"]
    claim = _one("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    [mount] = _container(api)["volumeMounts"]
    assert mount["mountPath"] == _config()["COHORTS_DATA_DIR"]


def test_api_service_selects_the_api_pods() -> None:
    service = _one("Service", "cohorts-api")
    labels = _one("Deployment", "cohorts-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("StatefulSet", "cohorts-worker"),
        ("Deployment", "cohorts-api"),
        ("StatefulSet", "kafka"),
        ("Job", "cohorts-topics"),
    ],
)
def test_every_container_has_requests_limits_and_runs_unprivileged(kind: str, name: str) -> None:
    workload = _one(kind, name)
    container = _container(workload)
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize(
    ("kind", "name"), [("StatefulSet", "cohorts-worker"), ("Job", "cohorts-topics"), ("Deployment", "cohorts-api")]
)
def test_service_containers_take_all_settings_from_the_configmap(kind: str, name: str) -> None:
    container = _container(_one(kind, name))
    assert container["envFrom"] == [{"configMapRef": {"name": "cohorts-config"}}]
    assert container["image"].split(":")[0] == "cohorts-stream"
    assert "env" not in container  # one place for settings


def test_kafka_quorum_voters_match_the_statefulset() -> None:
    """Scenario: node id = pod ordinal; the voter list names every pod of the StatefulSet, no more."""
    kafka = _one("StatefulSet", "kafka")
    container = _container(kafka)
    env = {e["name"]: e["value"] for e in container["env"]}
    replicas = kafka["spec"]["replicas"]
    headless = kafka["spec"]["serviceName"]
    expected = ",".join(f"{i}@kafka-{i}.{headless}:9093" for i in range(replicas))
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == expected
    assert container["image"] == "apache/kafka:4.1.1"
    assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) < int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) <= replicas
    assert _one("Service", headless)["spec"]["publishNotReadyAddresses"] is True
    assert kafka["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == container["volumeMounts"][0]["name"]


def test_pod_disruption_budgets_select_existing_workloads() -> None:
    for budget in (o for o in _objects() if o["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        matches = [
            o
            for o in _objects()
            if o["kind"] in {"StatefulSet", "Deployment"}
            and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, budget["metadata"]["name"]
