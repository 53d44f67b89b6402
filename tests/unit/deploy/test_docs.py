"""docs/operating.md and docs/api-guide.md stay in step with the code they describe."""

from __future__ import annotations

import re

import pytest

from api.main import create_app
from cohorts.settings import Settings
from stream.metrics import WorkerMetrics
from tests.unit.deploy.artifacts import ROOT

OPERATING = (ROOT / "docs" / "operating.md").read_text()
API_GUIDE = (ROOT / "docs" / "api-guide.md").read_text()


def _api_routes() -> list[tuple[str, str]]:
    """(METHOD, path) of every PostHog-shaped route the api serves."""
    app = create_app(Settings(kafka_bootstrap="127.0.0.1:1"), consume=False)
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/projects/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    )


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    assert f"`COHORTS_{field.upper()}`" in OPERATING


@pytest.mark.parametrize("family", sorted({f.name for f in WorkerMetrics().registry.collect()}))
def test_every_worker_metric_is_in_the_metrics_list(family: str) -> None:
    assert re.search(rf"`{family}(_total)?`", OPERATING), family


def test_operating_guide_covers_the_three_ways_to_run_and_the_status_command() -> None:
    for text in ("cohorts up", "docker compose -f deploy/docker-compose.yml up", "kubectl apply -k deploy/k8s"):
        assert text in OPERATING
    assert "cohorts status" in OPERATING and "COHORTS_LOG_FORMAT=json" in OPERATING


def test_api_routes_are_found() -> None:
    """Guard for the next test: the app really lists the cohort routes."""
    assert ("GET", "/api/projects/{project_id}/cohorts/") in _api_routes()


@pytest.mark.parametrize(("method", "path"), _api_routes())
def test_api_guide_has_a_curl_example_for_every_route(method: str, path: str) -> None:
    pattern = re.escape(path).replace(r"\{project_id\}", r"\$PROJECT").replace(r"\{cohort_id\}", r"\d+")
    calls = [line for line in API_GUIDE.splitlines() if "curl" in line or line.startswith("  ")]
    text = "\n".join(calls)
    assert re.search(pattern, text), f"no example for {method} {path}"
    if method not in {"GET", "HEAD"}:
        assert re.search(rf"-X {method}\b[^\n]*\n?[^\n]*{pattern}", text), f"no {method} example for {path}"


def test_api_guide_authenticates_with_a_bearer_personal_api_key() -> None:
    assert "Authorization: Bearer $KEY" in API_GUIDE and "phx_" in API_GUIDE
