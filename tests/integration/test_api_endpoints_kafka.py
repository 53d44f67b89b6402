"""Every endpoint of the api against the real broker (no in-memory publisher).

One app serves the module (its own topics and data dir); each test gets its own project, so
tests do not see each other's cohorts. Persons, membership changes and calculation reports are
produced to their topics as PostHog and the worker would; everything the api writes goes through
Kafka and is read back from the views its feeder folds.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cohorts.topics import Topics
from cohorts.wire import CalculationReport, MembershipChange
from infra.kafka_admin import ensure_topics
from tests.integration.api_harness import Running, eventually, person_record, produce, provision, running_api

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def served(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Topics]]:
    from cohorts.settings import Settings

    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}_", partitions=2)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        partitions=topics.partitions,
        data_dir=tmp_path_factory.mktemp("api-endpoints"),
    )
    with running_api(settings) as api:
        yield api, topics


@pytest.fixture
def api(served: tuple[Running, Topics]) -> Running:
    """The module's app, called as a key of a project of this test's own."""
    running, _ = served
    return running.as_project(provision(running.settings, name=f"p-{uuid.uuid4().hex[:6]}"))


@pytest.fixture
def topics(served: tuple[Running, Topics]) -> Topics:
    return served[1]


def person_filters() -> dict[str, Any]:
    leaf = {"type": "person", "key": "email", "operator": "icontains", "value": "@acme.com"}
    return {"properties": {"type": "AND", "values": [leaf]}}


def persons(api: Running, topics: Topics, *emails: str) -> list[str]:
    """Persons produced to the person topic, returned once the api knows them."""
    people = [str(uuid.uuid4()) for _ in emails]
    records = [
        person_record(api.project_id, p, {"email": e}, created_at=f"2025-01-0{i + 1} 00:00:00.000000")
        for i, (p, e) in enumerate(zip(people, emails, strict=True))
    ]
    produce(api.settings.bootstrap, topics.persons, records)
    eventually(lambda: all(api.ctx.persons.exists(api.project_id, p) for p in people))
    return people


def calculated(api: Running, topics: Topics, cohort_id: int, version: int, members: list[str]) -> None:
    """What the worker would emit for one calculation: flips, then every partition's report."""
    changes = [
        MembershipChange(api.project_id, cohort_id, p, "entered", "2026-01-01T00:00:00Z", version).to_bytes()
        for p in members
    ]
    produce(api.settings.bootstrap, topics.membership_changed, changes)
    reports = [
        CalculationReport(
            api.project_id,
            cohort_id,
            version,
            partition,
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:02Z",
            len(members) if partition == 0 else 0,
        ).to_bytes()
        for partition in range(topics.partitions)
    ]
    produce(api.settings.bootstrap, topics.calculation_reports, reports, key=str(cohort_id).encode())
    eventually(lambda: api.ok("GET", f"cohorts/{cohort_id}/")["version"] == version)


def test_create_list_retrieve_patch_put_and_delete_is_405(api: Running) -> None:
    first = api.create(name="Alpha", description="a", filters=person_filters())
    second = api.create(name="Beta", is_static=True)
    assert (first["version"], first["pending_version"], first["is_calculating"]) == (None, 1, True)
    assert first["created_by"]["email"] == "ann@acme.com" and first["cohort_type"] == "realtime"
    page = api.ok("GET", "cohorts/?limit=1")
    assert page["count"] == 2 and [r["id"] for r in page["results"]] == [second["id"]] and page["next"]
    assert [r["id"] for r in api.ok("GET", "cohorts/?type=static")["results"]] == [second["id"]]
    assert api.ok("GET", "cohorts/?search=alp")["results"][0]["search_match_type"] == "exact"
    assert api.ok("GET", f"cohorts/{first['id']}/") == first
    patched = api.ok("PATCH", f"cohorts/{first['id']}/", json={"name": "Alpha 2"})
    assert (patched["name"], patched["description"], patched["pending_version"]) == ("Alpha 2", "a", 2)
    put = api.ok("PUT", f"cohorts/{first['id']}/", json={"description": "b"})
    assert (put["name"], put["description"], put["pending_version"]) == ("Alpha 2", "b", 3)
    assert api.ok("PATCH", f"cohorts/{first['id']}/", json={"description": "b"})["pending_version"] == 3
    response = api.call("DELETE", f"cohorts/{first['id']}/")
    assert (response.status_code, response.content) == (405, b"")
    deleted = api.ok("PATCH", f"cohorts/{second['id']}/", json={"deleted": True})
    assert deleted["deleted"] is True
    assert [r["id"] for r in api.ok("GET", "cohorts/")["results"]] == [first["id"]]
    assert api.call("GET", "cohorts/999999/").status_code == 404


def test_validation_errors_write_nothing(api: Running) -> None:
    response = api.call("POST", "cohorts/", json={"filters": {"properties": {"type": "AND", "values": [{}]}}})
    assert response.status_code == 400 and set(response.json()) == {"type", "code", "detail", "attr"}
    response = api.call("POST", "cohorts/", json={"is_static": False, "query": {"kind": "HogQLQuery"}})
    assert response.status_code == 400
    assert api.ok("GET", "cohorts/")["count"] == 0
    assert api.ok("GET", "cohorts/activity/")["total_count"] == 0


def test_activity_of_one_cohort_and_of_all(api: Running) -> None:
    cohort = api.create(name="x")
    api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"name": "y"})
    api.ok("PATCH", f"cohorts/{cohort['id']}/", json={"deleted": True})
    other = api.create(name="z")
    entries = api.ok("GET", f"cohorts/{cohort['id']}/activity/")["results"]
    assert [e["activity"] for e in entries] == ["deleted", "updated", "created"]
    assert entries[1]["detail"]["changes"] == [
        {"type": "Cohort", "action": "changed", "field": "name", "before": "x", "after": "y"}
    ]
    everything = api.ok("GET", "cohorts/activity/?limit=2")
    assert everything["total_count"] == 4 and everything["next"] is not None
    assert everything["results"][0]["item_id"] == str(other["id"])
    assert api.call("GET", "cohorts/999999/activity/").status_code == 404


def test_static_members_added_removed_and_listed_as_json_and_csv(api: Running, topics: Topics) -> None:
    ann, bob = persons(api, topics, "ann@acme.com", "bob@acme.com")
    cohort = api.create(name="list", is_static=True, _create_static_person_ids=[ann])
    assert cohort["count"] == 1 and cohort["last_import_total_count"] == 1
    path = f"cohorts/{cohort['id']}/"
    assert api.ok("PATCH", f"{path}add_persons_to_static_cohort/", json={"person_ids": [bob, ann]}) == {"success": True}
    listed = api.ok("GET", f"{path}persons/")["results"]
    assert [p["id"] for p in listed] == [bob, ann] and listed[0]["properties"] == {"email": "bob@acme.com"}
    rows = list(csv.DictReader(io.StringIO(api.call("GET", f"{path}persons/?format=csv").text)))
    assert [row["email"] for row in rows] == ["bob@acme.com", "ann@acme.com"]
    api.ok("PATCH", f"{path}remove_person_from_static_cohort/", json={"person_id": bob})
    assert [p["id"] for p in api.ok("GET", f"{path}persons/")["results"]] == [ann]
    assert api.ok("GET", path)["count"] == 1
    refused = api.call("PATCH", f"{path}add_persons_to_static_cohort/", json={"person_ids": [str(uuid.uuid4())]})
    assert (refused.status_code, refused.json()["detail"]) == (400, "No valid users to add to cohort")
    activities = [e["activity"] for e in api.ok("GET", f"{path}activity/")["results"]]
    assert activities == ["person_removed_manually", "persons_added_manually", "created"]


def test_csv_upload_creates_a_static_cohort(api: Running, topics: Topics) -> None:
    (ann,) = persons(api, topics, "ann@acme.com")
    files = {"csv": ("ids.csv", b"email\nann@acme.com\nnobody@acme.com\n", "text/csv")}
    response = api.call("POST", "cohorts/", data={"name": "upload", "is_static": "true"}, files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["count"], body["last_import_total_count"], body["last_import_unmatched_count"]) == (1, 2, 1)
    assert [p["id"] for p in api.ok("GET", f"cohorts/{body['id']}/persons/")["results"]] == [ann]


def test_calculation_history_persons_and_duplicate_as_static(api: Running, topics: Topics) -> None:
    ann, bob = persons(api, topics, "ann@acme.com", "bob@acme.com")
    cohort = api.create(name="dyn", filters=person_filters())
    calculated(api, topics, cohort["id"], 1, [ann, bob])
    body = api.ok("GET", f"cohorts/{cohort['id']}/")
    assert (body["count"], body["is_calculating"], body["last_calculation"]) == (
        2,
        False,
        "2026-01-01T00:00:02.000000Z",
    )
    history = api.ok("GET", f"cohorts/{cohort['id']}/calculation_history/")
    assert history["count"] == 1 and history["results"][0]["filters"] == cohort["filters"]
    assert history["results"][0]["count"] == 2 and history["results"][0]["is_successful"] is True
    found = api.ok("GET", f"cohorts/{cohort['id']}/persons/?search=bob")["results"]
    assert [p["id"] for p in found] == [bob]
    copy = api.ok("GET", f"cohorts/{cohort['id']}/duplicate_as_static_cohort/")
    assert (copy["name"], copy["is_static"], copy["count"]) == ("dyn (static copy)", True, 2)
    assert sorted(p["id"] for p in api.ok("GET", f"cohorts/{copy['id']}/persons/")["results"]) == sorted([ann, bob])
    refused = api.call("GET", f"cohorts/{copy['id']}/duplicate_as_static_cohort/")
    assert refused.status_code == 400


def test_file_system_views_are_logged_by_retrieve_and_post(api: Running) -> None:
    cohort = api.create(name="x")
    api.ok("GET", f"cohorts/{cohort['id']}/")
    assert api.ok("POST", "file_system/log_view/", 204, json={"type": "insight", "ref": "9"}) is None
    views = api.ok("GET", "file_system/log_view/")
    assert [(v["type"], v["ref"]) for v in views] == [("insight", "9"), ("cohort", str(cohort["id"]))]
    assert api.ok("GET", "file_system/log_view/?type=cohort&limit=1") == views[1:]


def test_metrics_report_requests_by_route_consumer_positions_and_cohorts(api: Running, topics: Topics) -> None:
    cohort = api.create(name="counted", is_static=True)
    api.ok("GET", f"cohorts/{cohort['id']}/")
    response = api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    requests = families["cohorts_api_request_seconds"].samples
    routes = {(s.labels["method"], s.labels["route"], s.labels["status"]) for s in requests}
    assert ("GET", "/api/projects/{project_id}/cohorts/{cohort_id}/", "200") in routes
    assert ("POST", "/api/projects/{project_id}/cohorts/", "201") in routes
    assert not any(str(cohort["id"]) in route for _, route, _ in routes)
    static = [s.value for s in families["cohorts_api_cohorts"].samples if s.labels["type"] == "static"]
    assert static and static[0] >= 1

    def catalog_position() -> float:
        text = api.client.get("/metrics").text
        samples = [
            s
            for f in text_string_to_metric_families(text)
            if f.name == "cohorts_api_consumer_position"
            for s in f.samples
            if s.labels["topic"] == topics.catalog
        ]
        return samples[0].value if samples else 0

    assert eventually(lambda: catalog_position() > cohort["id"])
    assert "cohorts_api_dead_letters" in families and "cohorts_api_consumer_lag" in families
