"""deploy/docker-compose.yml: wired as the code expects (structure checked in Python, no Docker needed)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cohorts.settings import Settings
from tests.unit.deploy.artifacts import DEPLOY

COMPOSE = DEPLOY / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in _compose()["services"][service]["environment"].items()}


def test_all_services_are_there() -> None:
    assert {"kafka", "topics", "worker", "api", "prometheus", "grafana"} <= _compose()["services"].keys()


def test_kafka_is_the_apache_image_in_kraft_mode_with_a_listener_for_containers_and_one_for_the_host() -> None:
    kafka = _compose()["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["HOST"] == "localhost:9092" and "9092:9092" in kafka["ports"]
    assert _env("worker")["COHORTS_KAFKA_BOOTSTRAP"] == advertised["INTERNAL"] == "kafka:19092"
    assert "healthcheck" in kafka
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])


@pytest.mark.parametrize("service", ["topics", "worker", "api"])
def test_service_containers_use_the_project_image_and_real_settings(service: str) -> None:
    spec = _compose()["services"][service]
    env = _env(service)
    assert spec["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert env["COHORTS_KAFKA_BOOTSTRAP"] == "kafka:19092"
    fields = {f"COHORTS_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields
    Settings(**{k.removeprefix("COHORTS_").lower(): v for k, v in env.items()})
    assert spec["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_worker_and_api_wait_for_topics_and_keep_their_own_data_volume() -> None:
    services = _compose()["services"]
    mounts = {}
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
        [volume] = services[name]["volumes"]
        source, target = volume.split(":")
        assert target == _env(name)["COHORTS_DATA_DIR"] and source in _compose()["volumes"]
        mounts[name] = source
    assert mounts["worker"] != mounts["api"]  # RocksDB locks a data dir per process
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["worker"]["command"] == ["worker"] and services["api"]["command"] == ["api"]


def test_published_ports_match_the_settings() -> None:
    services = _compose()["services"]
    api_port = _env("api")["COHORTS_API_PORT"]
    worker_port = _env("worker")["COHORTS_WORKER_WEB_PORT"]
    assert f"{api_port}:{api_port}" in services["api"]["ports"]
    assert f"{worker_port}:{worker_port}" in services["worker"]["ports"]
    assert _env("api")["COHORTS_API_HOST"] == "0.0.0.0" and _env("worker")["COHORTS_WORKER_WEB_HOST"] == "0.0.0.0"
    assert "9090:9090" in services["prometheus"]["ports"] and "3000:3000" in services["grafana"]["ports"]


def test_health_checks_hit_the_real_health_routes() -> None:
    services = _compose()["services"]
    assert "/_ready" in services["api"]["healthcheck"]["test"][-1]
    assert f":{_env('worker')['COHORTS_WORKER_WEB_PORT']}/" in services["worker"]["healthcheck"]["test"][-1]


def test_bind_mounted_files_exist() -> None:
    """Scenario: prometheus.yml and Grafana provisioning are bind-mounted relative to deploy/."""
    for service in ("prometheus", "grafana"):
        for volume in _compose()["services"][service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    grafana = _compose()["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/etc/grafana/dashboards/cohorts.json"
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]
