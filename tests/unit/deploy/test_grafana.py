"""deploy/grafana: provisioning and the dashboard, checked against the metrics the code registers.

Every PromQL expression may name only series that a metrics module registers (or that Prometheus
itself adds, such as `up`), so a renamed metric breaks this test rather than a panel in production.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api.metrics import ApiMetrics
from stream.metrics import WorkerMetrics
from tests.unit.deploy.artifacts import DEPLOY

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "cohorts.json"
#: Series Prometheus adds to every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: Sample names each metric type exposes (prometheus_client, text format 0.0.4).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def registered_series(registry: CollectorRegistry) -> dict[str, str]:
    """Every sample name the registry can expose -> its metric family name."""
    return {family.name + suffix: family.name for family in registry.collect() for suffix in _SUFFIXES[family.type]}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, labels or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    names = re.findall(r"(?<![\w:.])[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()", expr)
    return {name for name in names if name.lower() not in _PROMQL_WORDS}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _expressions() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _worker_series() -> dict[str, str]:
    return registered_series(WorkerMetrics().registry)


def test_metric_names_finds_series_and_skips_functions_labels_and_ranges() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job="x", le!="1"}[$__rate_interval]))) / b'
    assert metric_names(expr) == {"a_seconds_bucket", "b"}
    assert metric_names("sum(up) and on (job) c_total offset 5m") == {"up", "c_total"}


def test_registered_series_expands_counters_and_histograms() -> None:
    series = _worker_series()
    assert series["cohorts_worker_flips_total"] == "cohorts_worker_flips"
    assert series["cohorts_worker_fold_seconds_bucket"] == "cohorts_worker_fold_seconds"
    assert "cohorts_worker_flips" not in series  # a counter is exposed as _total only


def test_dashboard_is_valid_json_with_unique_panel_ids_on_the_grid() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "cohorts-overview" and dashboard["title"] == "Cohorts"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("expr", _expressions())
def test_every_expression_names_only_registered_series(expr: str) -> None:
    known = _worker_series().keys() | registered_series(ApiMetrics().registry).keys() | PROMETHEUS_SERIES
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= known, f"unknown series {sorted(names - known)} in {expr!r}"


def test_every_worker_metric_is_on_the_dashboard() -> None:
    """Scenario: a metric added to stream/metrics.py without a panel fails here, naming it."""
    used = {name for expr in _expressions() for name in metric_names(expr)}
    series = _worker_series()
    shown = {series[name] for name in used if name in series}
    assert set(series.values()) - shown == set()


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [datasource] = provisioned["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    for panel in _panels():
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]


def test_dashboard_provider_loads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cohorts.yml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"] == "/etc/grafana/dashboards"
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert f"./grafana/dashboards:{entry['options']['path']}:ro" in compose["services"]["grafana"]["volumes"]


def test_expected_panels_are_present() -> None:
    titles = {p["title"] for p in _panels()}
    assert {
        "Messages in by topic",
        "Messages out by topic",
        "Dead letters by reason",
        "Membership flips by status",
        "Fold latency",
        "Consumer lag by topic",
        "Deadlines",
        "RocksDB bytes by partition",
        "API requests by route and status",
        "API latency p99 by route",
        "API view lag by topic",
    } <= titles
