"""Several api processes share one state through Kafka (design §2).

Two apps on separate data dirs read and write the same topics: what is written through one is
read through the other, ids stay unique, concurrent updates of one cohort are serialised, and a
wiped data dir is rebuilt from Kafka alone.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cohorts.settings import Settings
from cohorts.topics import Topics
from cohorts.wire import CalculationReport, CatalogRecord, MembershipChange
from tests.integration.api_harness import (
    Access,
    Running,
    eventually,
    person_record,
    produce,
    provision,
    read_topic,
    running_api,
    share_auth,
    write_retries,
)

pytestmark = pytest.mark.kafka


def person_filters() -> dict[str, Any]:
    leaf = {"type": "person", "key": "email", "operator": "icontains", "value": "@acme.com"}
    return {"properties": {"type": "AND", "values": [leaf]}}


@pytest.fixture
def pair(make_topics, make_settings, tmp_path: Path) -> tuple[Topics, Settings, Settings, Access]:
    """Topics, two data dirs with the same auth data, and the project both serve."""
    topics = make_topics(partitions=2)
    first = make_settings(topics, tmp_path / "a")
    second = make_settings(topics, tmp_path / "b")
    access = provision(first)
    share_auth(first, second)
    return topics, first, second, access


def snapshot(api: Running, cohort_ids: list[int], static_id: int | None = None) -> dict[str, Any]:
    """Everything the api shows about the project, read without writing (no retrieve: it logs a view)."""
    state: dict[str, Any] = {
        "list": api.ok("GET", "cohorts/"),
        "activity": api.ok("GET", "cohorts/activity/?limit=100"),
        "views": api.ok("GET", "file_system/log_view/"),
    }
    for cohort_id in cohort_ids:
        state[f"activity {cohort_id}"] = api.ok("GET", f"cohorts/{cohort_id}/activity/?limit=100")
        state[f"history {cohort_id}"] = api.ok("GET", f"cohorts/{cohort_id}/calculation_history/")
    if static_id is not None:
        state["members"] = api.ok("GET", f"cohorts/{static_id}/persons/")
        state["members csv"] = api.call("GET", f"cohorts/{static_id}/persons/?format=csv").text
    return state


def converged(api: Running, expected: dict[str, Any], *args: Any) -> Callable[[], bool]:
    return lambda: snapshot(api, *args) == expected


def add_when_known(api: Running, cohort_id: int, people: list[str]) -> None:
    """Add persons once this process has read them from the person topic."""
    path = f"cohorts/{cohort_id}/add_persons_to_static_cohort/"
    eventually(lambda: all(api.ctx.persons.exists(api.project_id, p) for p in people))
    api.ok("PATCH", path, json={"person_ids": people})


def test_changes_through_one_process_are_read_through_the_other(pair) -> None:
    """Scenario: definitions, edits, static members, activity and views written through A are
    served by B; A reads its own writes at once, B after its feeder caught up."""
    topics, first, second, access = pair
    people = [str(uuid.uuid4()) for _ in range(2)]
    emails = ["a@acme.com", "b@acme.com"]
    produce(
        first.bootstrap,
        topics.persons,
        [person_record(access.project_id, p, {"email": e}) for p, e in zip(people, emails, strict=True)],
    )
    with running_api(first, access) as a, running_api(second, access) as b:
        dynamic = a.create(name="dyn", description="first", filters=person_filters())
        assert a.ok("GET", f"cohorts/{dynamic['id']}/")["description"] == "first"  # read-your-writes
        patched = a.ok("PATCH", f"cohorts/{dynamic['id']}/", json={"name": "dyn2", "description": "second"})
        assert (patched["name"], patched["pending_version"]) == ("dyn2", 2)
        static = a.create(name="list", is_static=True)
        add_when_known(a, static["id"], people)
        a.ok("PATCH", f"cohorts/{static['id']}/remove_person_from_static_cohort/", json={"person_id": people[1]})
        assert a.ok("GET", f"cohorts/{static['id']}/")["count"] == 1
        a.ok("POST", "file_system/log_view/", 204, json={"type": "insight", "ref": "7"})

        expected = snapshot(a, [dynamic["id"], static["id"]], static["id"])
        eventually(converged(b, expected, [dynamic["id"], static["id"]], static["id"]))

        assert [row["name"] for row in expected["list"]["results"]] == ["list", "dyn2"]
        assert expected["activity"]["total_count"] == 5
        assert [p["id"] for p in expected["members"]["results"]] == [people[0]]
        assert {v["ref"] for v in expected["views"]} == {str(dynamic["id"]), str(static["id"]), "7"}
        from_b = b.ok("GET", f"cohorts/{dynamic['id']}/")
        assert (from_b["description"], from_b["created_by"]["email"]) == ("second", "ann@acme.com")
        assert from_b == a.ok("GET", f"cohorts/{dynamic['id']}/")


def test_concurrent_creates_through_two_processes_get_unique_ids(pair) -> None:
    _, first, second, access = pair
    with running_api(first, access) as a, running_api(second, access) as b:
        ids: list[int] = []
        lock = threading.Lock()

        def create(api: Running, name: str) -> None:
            for i in range(4):
                cohort = api.create(name=f"{name}{i}")
                with lock:
                    ids.append(cohort["id"])

        threads = [threading.Thread(target=create, args=(api, name)) for api, name in ((a, "a"), (b, "b"), (a, "c"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(ids) == len(set(ids)) == 12
        listed = lambda api: sorted(row["id"] for row in api.ok("GET", "cohorts/")["results"])  # noqa: E731
        eventually(lambda: listed(a) == listed(b) == sorted(ids))


def test_concurrent_patches_of_one_cohort_are_serialised_with_increasing_versions(pair) -> None:
    """Scenario: A and B patch one cohort at the same time. Each PATCH applies to the latest
    row (none is lost), the catalog's versions for the cohort go 1, 2, 3... without a repeat,
    and both processes end on the same row."""
    topics, first, second, access = pair
    with running_api(first, access) as a, running_api(second, access) as b:
        cohort = a.create(name="shared", filters=person_filters())
        path = f"cohorts/{cohort['id']}/"
        eventually(lambda: b.call("GET", path).status_code == 200)
        statuses: list[int] = []
        lock = threading.Lock()

        def patch(api: Running, name: str) -> None:
            for i in range(3):
                response = api.call("PATCH", path, json={"description": f"{name}{i}"})
                with lock:
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=patch, args=(api, name)) for api, name in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(statuses) <= {200, 409} and statuses.count(200) >= 3
        applied = statuses.count(200)
        # The reservation, its tombstone and the create, then one record per applied PATCH.
        messages = read_topic(first.bootstrap, topics.catalog, 1, expect=3 + applied)
        versions = [
            CatalogRecord.from_bytes(m.value()).version for m in messages if m.key() == str(cohort["id"]).encode()
        ]
        assert versions == list(range(1, applied + 2))
        eventually(lambda: a.ok("GET", path)["pending_version"] == b.ok("GET", path)["pending_version"] == applied + 1)
        final_a, final_b = a.ok("GET", path), b.ok("GET", path)
        assert final_a == final_b
        updates = a.ok("GET", f"{path}activity/?limit=100")["results"]
        assert len([e for e in updates if e["activity"] == "updated"]) == applied


def test_alternating_patches_fence_the_other_process_and_apply_to_the_latest_row(pair) -> None:
    """Scenario: A, B, A, B... patch one cohort. Each process's first write to the cohort fences
    the other's producer, so the other's next write is fenced, re-read and run again: every
    PATCH answers 200 with the version after the previous one."""
    _, first, second, access = pair
    with running_api(first, access) as a, running_api(second, access) as b:
        cohort = a.create(name="shared", filters=person_filters())
        path = f"cohorts/{cohort['id']}/"
        eventually(lambda: b.call("GET", path).status_code == 200)
        versions = []
        for i in range(2):
            for api in (a, b):
                body = api.ok("PATCH", path, json={"description": f"{i}"} if api is a else {"name": f"b{i}"})
                versions.append(body["pending_version"])
        assert versions == [2, 3, 4, 5]
        assert write_retries(a) >= 1 and write_retries(b) >= 1
        final = eventually(lambda: (body := a.ok("GET", path))["pending_version"] == 5 and body)
        assert (final["name"], final["description"]) == ("b1", "1")


def test_a_wiped_data_dir_is_rebuilt_from_kafka(pair) -> None:
    """Scenario: A and B write; A stops, its api data dir is deleted, A starts again and shows
    exactly what it showed before, including the worker's membership and reports."""
    topics, first, second, access = pair
    person = str(uuid.uuid4())
    produce(first.bootstrap, topics.persons, [person_record(access.project_id, person, {"email": "a@acme.com"})])
    with running_api(second, access) as b:
        with running_api(first, access) as a:
            dynamic = a.create(name="dyn", filters=person_filters())
            a.ok("PATCH", f"cohorts/{dynamic['id']}/", json={"description": "edited"})
            static = b.create(name="list", is_static=True)
            add_when_known(b, static["id"], [person])
            a.ok("GET", f"cohorts/{dynamic['id']}/")
            change = MembershipChange(access.project_id, dynamic["id"], person, "entered", "2026-01-01T00:00:00Z", 2)
            produce(first.bootstrap, topics.membership_changed, [change.to_bytes()])
            reports = [
                CalculationReport(
                    access.project_id, dynamic["id"], 2, p, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 1 - p
                ).to_bytes()
                for p in range(topics.partitions)
            ]
            produce(first.bootstrap, topics.calculation_reports, reports)
            eventually(lambda: a.ok("GET", "cohorts/")["results"][1]["count"] == 1)
            eventually(lambda: a.ok("GET", "cohorts/activity/")["total_count"] == 4)
            ids = [dynamic["id"], static["id"]]
            before = snapshot(a, ids, static["id"])
        shutil.rmtree(first.data_dir / "api")
        with running_api(first, access) as restarted:
            # Ready = caught up with the catalog and the api log; the worker's topics may lag.
            eventually(converged(restarted, before, ids, static["id"]))
            after = snapshot(restarted, ids, static["id"])
    assert after == before
    rows = {row["name"]: row for row in after["list"]["results"]}
    assert (rows["dyn"]["description"], rows["dyn"]["version"], rows["dyn"]["count"]) == ("edited", 2, 1)
    assert rows["list"]["count"] == 1 and after["history " + str(dynamic["id"])]["count"] == 1
