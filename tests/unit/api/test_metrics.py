"""`GET /metrics`: the api's own registry, requests by route template, cohort counts."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.unit.api.conftest import Api, person_filters


def families(api: Api) -> dict:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def request_labels(api: Api) -> set[tuple[str, str, str]]:
    samples = families(api)["cohorts_api_request_seconds"].samples
    return {(s.labels["method"], s.labels["route"], s.labels["status"]) for s in samples if s.name.endswith("_count")}


def test_requests_are_labelled_by_route_template_and_status_never_by_raw_path(api: Api) -> None:
    cohort = api.create(name="x")
    api.get(f"cohorts/{cohort['id']}/")
    api.get("cohorts/123456/")
    api.client.get("/nowhere")
    labels = request_labels(api)
    assert ("POST", "/api/projects/{project_id}/cohorts/", "201") in labels
    assert ("GET", "/api/projects/{project_id}/cohorts/{cohort_id}/", "200") in labels
    assert ("GET", "/api/projects/{project_id}/cohorts/{cohort_id}/", "404") in labels
    assert ("GET", "unmatched", "404") in labels
    assert not any("123456" in route for _, route, _ in labels)


def test_a_body_over_the_limit_is_counted_as_413(api: Api) -> None:
    api.post("cohorts/", content=b"{" + b" " * (2 << 20) + b"}", headers={"content-type": "application/json"})
    assert any(status == "413" for _, _, status in request_labels(api))


def test_cohorts_gauge_counts_non_deleted_cohorts_by_type(api: Api) -> None:
    api.create(name="d", filters=person_filters())
    static = api.create(name="s", is_static=True)
    api.create(name="s2", is_static=True)
    api.patch(f"cohorts/{static['id']}/", json={"deleted": True})
    samples = {s.labels["type"]: s.value for s in families(api)["cohorts_api_cohorts"].samples}
    assert samples == {"static": 1.0, "dynamic": 1.0}


def test_each_app_has_its_own_registry(make_api: Callable[[], Api]) -> None:
    first = make_api()
    first.create(name="x")
    assert ("POST", "/api/projects/{project_id}/cohorts/", "201") in request_labels(first)
    first.stop()
    second = make_api()
    assert not any(method == "POST" for method, _, _ in request_labels(second))


def test_metrics_are_not_in_the_openapi_schema(api: Api) -> None:
    assert "/metrics" not in api.client.get("/api/schema/").json()["paths"]
