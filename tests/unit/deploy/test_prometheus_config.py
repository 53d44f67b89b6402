"""deploy/prometheus/prometheus.yml scrapes the worker and the api where compose runs them."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.deploy.artifacts import DEPLOY


def _jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _targets(job: dict[str, Any]) -> list[str]:
    return [target for group in job["static_configs"] for target in group["targets"]]


def test_worker_and_api_are_scraped_on_metrics() -> None:
    jobs = _jobs()
    assert {"cohorts-worker", "cohorts-api"} <= jobs.keys()
    assert jobs["cohorts-worker"]["metrics_path"] == jobs["cohorts-api"]["metrics_path"] == "/metrics"


def test_targets_are_the_compose_services_on_their_configured_ports() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    jobs = _jobs()
    assert _targets(jobs["cohorts-worker"]) == [f"worker:{compose['worker']['environment']['COHORTS_WORKER_WEB_PORT']}"]
    assert _targets(jobs["cohorts-api"]) == [f"api:{compose['api']['environment']['COHORTS_API_PORT']}"]


def test_job_names_are_the_ones_the_dashboard_filters_on() -> None:
    dashboard = (DEPLOY / "grafana" / "dashboards" / "cohorts.json").read_text()
    for job in ("cohorts-worker", "cohorts-api"):
        assert f'job=\\"{job}\\"' in dashboard and job in _jobs()
